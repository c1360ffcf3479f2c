"""End-to-end runs of tools/train.py and tools/dist_train.sh on the toy config:
resume on torch >= 2.6 checkpoints, interrupted runs, 2-process gloo DDP
(on CPU unless there are 2 GPUs)."""
import hashlib
import os
import signal
import subprocess
import sys

import torch

from fuller.testing.processes import (cpu_ranks_env, wait_for,
                                      with_default_signals)
from fuller.testing.tools import REPO, TOY_CONFIG, free_port

ITERS_PER_EPOCH = 8  # 32 toy samples / batch 4


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load(path):
    # Plain torch.load: weights_only=True on torch >= 2.6. It works because
    # importing fuller registered mmengine's checkpoint types as safe.
    import fuller  # noqa: F401
    return torch.load(path, map_location='cpu')


def test_resume_continues_with_same_state(tool, tmp_path):
    work = tmp_path / 'run'
    tool('tools/train.py', TOY_CONFIG, '--work-dir', work)
    ckpt2 = work / 'epoch_2.pth'
    before = {p.name: _digest(p) for p in work.glob('epoch_*.pth')}
    assert set(before) == {'epoch_1.pth', 'epoch_2.pth'}

    state2 = _load(ckpt2)
    assert state2['meta']['epoch'] == 2 and state2['meta']['iter'] == 2 * ITERS_PER_EPOCH

    # The resumed runner starts exactly where epoch 2 ended.
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(REPO / TOY_CONFIG))
    cfg.work_dir = str(work)
    cfg.resume = True
    cfg.train_cfg.max_epochs = 3
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    assert runner.epoch == 2 and runner.iter == 2 * ITERS_PER_EPOCH
    resumed_opt = runner.optim_wrapper.state_dict()
    saved_opt = state2['optimizer']
    assert resumed_opt['param_groups'][0]['lr'] == saved_opt['param_groups'][0]['lr']
    for key, saved in saved_opt['state'].items():
        # The runner's state lives on the model's device (CUDA where there
        # is one); the loaded checkpoint on the CPU.
        assert torch.equal(resumed_opt['state'][key]['momentum_buffer'].cpu(),
                           saved['momentum_buffer'])
    del runner

    # Through the tool: resume to 3 epochs.
    proc = tool('tools/train.py', TOY_CONFIG, '--work-dir', work, '--resume',
                '--cfg-options', 'train_cfg.max_epochs=3')
    assert 'resumed epoch: 2' in (proc.stdout + proc.stderr)
    state3 = _load(work / 'epoch_3.pth')
    assert state3['meta']['epoch'] == 3 and state3['meta']['iter'] == 3 * ITERS_PER_EPOCH
    # The earlier run's checkpoints were not rewritten.
    assert {n: _digest(work / n) for n in before} == before


def test_interrupted_run_keeps_work_dir(tool, tmp_path):
    """Ctrl-C (SIGINT to the process group, data-loader worker included, at
    whatever iteration it lands) saves the iteration and exits 130; the
    work dir keeps every checkpoint."""
    work = tmp_path / 'interrupted'
    log = tmp_path / 'train.log'
    cmd = with_default_signals([
        sys.executable, 'tools/train.py', TOY_CONFIG, '--work-dir', work,
        '--cfg-options', 'train_cfg.max_epochs=1000',
        'train_dataloader.num_workers=1'])
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env=dict(os.environ, OMP_NUM_THREADS='1'))
    try:
        wait_for((work / 'last_checkpoint').exists, 'first checkpoint',
                 proc=proc, log=str(log))
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 130, text[-3000:]
    stop_lines = [ln for ln in text.splitlines() if 'Stopped by SIGINT' in ln]
    assert len(stop_lines) == 1, text[-3000:]
    last = (work / 'last_checkpoint').read_text()
    assert last in stop_lines[0] and last.endswith('.pth')
    state = _load(last)
    assert f"iter_{state['meta']['iter']}.pth" == os.path.basename(last)
    kept = sorted(p.name for p in work.glob('*.pth'))
    assert any(n.startswith('epoch_') for n in kept), kept

    # A new run on the same work dir is refused instead of overwriting it.
    again = tool('tools/train.py', TOY_CONFIG, '--work-dir', work, check=False)
    assert again.returncode != 0
    assert 'already holds checkpoints' in again.stderr
    assert sorted(p.name for p in work.glob('*.pth')) == kept


def test_dist_train_two_gloo_ranks_stay_identical(tool, tmp_path):
    work = tmp_path / 'dist'
    tool('bash', 'tools/dist_train.sh', TOY_CONFIG, 2, '--work-dir', work,
         env=dict(PORT=str(free_port()), **cpu_ranks_env(2)), timeout=600)
    rank0 = torch.load(work / 'params_rank0.pth')
    rank1 = torch.load(work / 'params_rank1.pth')
    assert rank0.keys() == rank1.keys()
    init = _load(work / 'epoch_1.pth')['state_dict']
    moved = 0
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name
        moved += int(not torch.equal(value, init[name]))
    assert moved > 0, 'parameters did not change after epoch 1'
    state = _load(work / 'epoch_2.pth')
    # 2 ranks x batch 4 -> 4 iterations per epoch.
    assert state['meta']['iter'] == 2 * ITERS_PER_EPOCH // 2


# Each rank runs this under torchrun: rank 0 is still busy (a checkpoint
# write) when rank 1 is done; an object with a reference cycle is dropped
# inside the block, as tools/train.py drops its Runner.
_CLOSING_RANK = '''
import os, sys, time, weakref
import torch.distributed as dist
from fuller.engine.runner_setup import process_group_closed_at_end
out = sys.argv[1]
dist.init_process_group('gloo')
rank = dist.get_rank()
seen = {}
with process_group_closed_at_end():
    runner = {}
    runner['self'] = runner  # freed by the collector only
    class Model: pass
    runner['model'] = Model()
    weakref.finalize(runner['model'],
                     lambda: seen.update(group_alive=dist.is_initialized()))
    del runner
    if rank == 0:
        time.sleep(1.0)
        open(f'{out}/busy_done', 'w').close()
with open(f'{out}/left_{rank}', 'w') as f:
    f.write(f"{os.path.exists(out + '/busy_done')} "
            f"{seen.get('group_alive')} {dist.is_initialized()}")
'''


def test_ranks_close_the_process_group_together(tool, tmp_path):
    """The end of a distributed run (process_group_closed_at_end): no rank
    leaves before every rank's work is done, what the caller dropped is
    collected while the process group still exists, and the group is closed
    afterwards. A rank that left early or left the DDP model to interpreter
    finalisation died in gloo now and then (SIGABRT), failing the job."""
    script = tmp_path / 'closing_rank.py'
    script.write_text(_CLOSING_RANK)
    tool(sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={free_port()}', script, tmp_path,
         env=cpu_ranks_env(2), timeout=300)
    for rank in (0, 1):
        busy_done, collected_alive, still_open = (
            tmp_path / f'left_{rank}').read_text().split()
        assert busy_done == 'True', f'rank {rank} left before rank 0 finished'
        assert collected_alive == 'True', (
            f'rank {rank}: the dropped object was not collected before the '
            'process group closed')
        assert still_open == 'False', f'rank {rank}: process group left open'
