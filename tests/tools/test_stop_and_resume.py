"""Preemption and interrupted writes, end to end through tools/train.py and
tools/dist_train.sh on the toy config (8 iterations per epoch):

- SIGTERM saves the current iteration, exits 143, and ``--resume`` continues
  exactly where it stopped (same final weights as an uninterrupted run);
- under 2 ranks, a signal that reaches one rank only stops both after the
  same iteration with one checkpoint;
- a second signal stops at once, even in the middle of the stop's save;
- SIGKILL during a checkpoint write leaves the previous checkpoint and
  ``last_checkpoint`` intact and no truncated file under a checkpoint name.

Signals come either from the run itself at a fixed iteration
(``SignalAtIterHook``) or from the test, which waits on events (files), never
on fixed sleeps.
"""
import os
import signal
import subprocess
import sys

import pytest
import torch

from fuller.testing.processes import (cpu_ranks_env, wait_for,
                                      with_default_signals)
from fuller.testing.tools import REPO, TOY_CONFIG, free_port

ITERS_PER_EPOCH = 8  # 32 toy samples / batch 4


def _load(path):
    import fuller  # noqa: F401  (mmengine meta types are safe globals)
    return torch.load(path, map_location='cpu')


def _config(tmp_path, name, body):
    """A config file inheriting the toy config, with ``body`` appended."""
    path = tmp_path / f'{name}.py'
    path.write_text(f'_base_ = [{str(REPO / TOY_CONFIG)!r}]\n{body}\n')
    return path


def _start(cmd, log):
    """Start ``cmd`` in a process group of its own (signal it as a job
    scheduler does: the whole group, data-loader workers included)."""
    with open(log, 'w') as out:
        return subprocess.Popen(
            with_default_signals(cmd), cwd=REPO, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, OMP_NUM_THREADS='1'))


def _finish(proc, timeout=120):
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode


def _uninterrupted_params(work_dir):
    """Final parameters of an uninterrupted toy run, trained in this process
    (saves a tools/train.py start-up) with the tools' one thread."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(REPO / TOY_CONFIG))
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = cfg.visualizer.name = f'toy_ref_{os.getpid()}'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Runner.from_cfg(cfg).train()
    finally:
        torch.set_num_threads(threads)
    return torch.load(work_dir / 'params_rank0.pth')


def test_sigterm_saves_the_iteration_and_resume_continues_exactly(
        tool, tmp_path):

    # SIGTERM arrives before iteration 11 (epoch 2, batch 4 of 8).
    stop_cfg = _config(tmp_path, 'toy_sigterm', (
        "custom_hooks = [dict(type='DumpParametersHook'),\n"
        "                dict(type='SignalAtIterHook', iter=11)]"))
    work = tmp_path / 'run'
    stopped = tool('tools/train.py', stop_cfg, '--work-dir', work,
                   check=False)
    out = stopped.stdout + stopped.stderr
    assert stopped.returncode == 143, out[-3000:]
    ckpt = work / 'iter_12.pth'
    lines = [ln for ln in out.splitlines() if 'Stopped by SIGTERM' in ln]
    assert len(lines) == 1 and str(ckpt) in lines[0], out[-3000:]
    assert (work / 'last_checkpoint').read_text() == str(ckpt)
    meta = _load(ckpt)['meta']
    assert (meta['epoch'], meta['iter']) == (1, 12)
    assert not (work / 'params_rank0.pth').exists()  # it did stop

    resumed = tool('tools/train.py', TOY_CONFIG, '--work-dir', work,
                   '--resume')
    out = resumed.stdout + resumed.stderr
    assert 'Continuing epoch 2 after its first 4 of 8 iterations' in out
    assert _load(work / 'epoch_2.pth')['meta']['iter'] == 2 * ITERS_PER_EPOCH
    # Same batches, same order, same optimizer state: the weights match
    # the uninterrupted run's (the tolerance only allows for
    # non-deterministic GPU kernels; replaying 4 batches moves them more).
    want = _uninterrupted_params(tmp_path / 'ref')
    got = torch.load(work / 'params_rank0.pth')
    for name, value in want.items():
        assert torch.allclose(got[name], value, rtol=1e-4, atol=1e-5), name


def test_dist_ranks_stop_together_when_one_is_signalled(tool, tmp_path):
    # Only rank 1 gets SIGTERM, before its iteration 5 (2 ranks: 4 per epoch).
    cfg = _config(tmp_path, 'toy_rank1_sigterm', (
        "custom_hooks = [dict(type='SignalAtIterHook', iter=5, rank=1)]"))
    work = tmp_path / 'dist'
    proc = tool('bash', 'tools/dist_train.sh', cfg, 2, '--work-dir', work,
                env=dict(PORT=str(free_port()), **cpu_ranks_env(2)),
                timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    # Both ranks finished exactly 6 iterations: they agreed on the stop.
    assert [(work / f'done_rank{r}.txt').read_text() for r in (0, 1)] == \
        ['6', '6'], out[-3000:]
    ckpt = work / 'iter_6.pth'
    assert (work / 'last_checkpoint').read_text() == str(ckpt)
    assert _load(ckpt)['meta']['iter'] == 6
    assert sorted(p.name for p in work.glob('iter_*')) == ['iter_6.pth']
    assert sum('Stopped by SIGTERM' in ln for ln in out.splitlines()) == 1


def _blocking_checkpoints(block_on, event, **hook_args):
    """Config lines: the checkpoint hook writes through the blocking
    backend (``hook_args``: more checkpoint-hook arguments)."""
    extra = ''.join(f'{k}={v!r}, ' for k, v in hook_args.items())
    return (
        f"default_hooks = dict(checkpoint=dict({extra}backend_args=dict(\n"
        f"    backend='fuller_blocking_local', block_on={block_on!r},\n"
        f"    event_file={str(event)!r})))\n")


def test_second_signal_stops_at_once(tmp_path):
    """The first SIGTERM, sent to the whole process group as Slurm does
    (a data-loader worker included), starts the stop's save (made to hang);
    the second ends the process without waiting for it."""
    event = tmp_path / 'save_started'
    cfg = _config(tmp_path, 'toy_hanging_stop', (
        _blocking_checkpoints('iter_', event)
        + "custom_hooks = [dict(type='GracefulStopHook', repeat_grace=0)]\n"
        + 'train_cfg = dict(max_epochs=1000)\n'
        + 'train_dataloader = dict(num_workers=1)'))
    work, log = tmp_path / 'run', tmp_path / 'train.log'
    proc = _start([sys.executable, 'tools/train.py', cfg, '--work-dir', work],
                  log)
    try:
        wait_for((work / 'last_checkpoint').exists, 'first checkpoint',
                 proc=proc, log=str(log))
        os.killpg(proc.pid, signal.SIGTERM)
        wait_for(event.exists, 'stop checkpoint being written', proc=proc,
                 log=str(log))
        proc.send_signal(signal.SIGTERM)
    finally:
        returncode = _finish(proc)
    assert returncode == -signal.SIGTERM, log.read_text()[-3000:]
    # Nothing half-written was published.
    last = (work / 'last_checkpoint').read_text()
    assert os.path.basename(last).startswith('epoch_')
    _load(last)
    assert not list(work.glob('iter_*.pth'))


def test_sigkill_during_checkpoint_write_keeps_the_previous_one(tmp_path):
    # max_keep_ckpts=1: mmengine would delete epoch_1 before writing epoch_2.
    event = tmp_path / 'write_started'
    cfg = _config(tmp_path, 'toy_hanging_write',
                  _blocking_checkpoints('epoch_2', event, max_keep_ckpts=1))
    work, log = tmp_path / 'run', tmp_path / 'train.log'
    proc = _start([sys.executable, 'tools/train.py', cfg, '--work-dir', work],
                  log)
    try:
        wait_for(event.exists, 'epoch_2 checkpoint being written', proc=proc,
                 log=str(log))
        proc.kill()
    finally:
        _finish(proc)
    last = (work / 'last_checkpoint').read_text()
    assert last == str(work / 'epoch_1.pth')
    assert _load(last)['meta']['epoch'] == 1
    # The interrupted write sits under a temporary name only: every file
    # named like a checkpoint loads.
    assert (work / 'epoch_2.pth.tmp').stat().st_size > 0
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    with pytest.raises(Exception):
        _load(work / 'epoch_2.pth.tmp')


def test_handlers_keep_ignored_signals_and_skip_forwarded_copies():
    """In-process: a signal the process was told to ignore stays ignored (a
    background job's SIGINT); a repeat within ``repeat_grace`` (torchrun's
    forwarded copy of a Ctrl-C) is not a second request; uninstall
    restores the previous handlers."""
    from fuller.engine import GracefulStopHook
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.getsignal(signal.SIGTERM)
    hook = GracefulStopHook(repeat_grace=600)
    try:
        hook.install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == hook._on_signal
        os.kill(os.getpid(), signal.SIGTERM)
        assert hook.requested == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # still alive: within the grace
        assert hook.requested == signal.SIGTERM
    finally:
        hook.uninstall()
        signal.signal(signal.SIGINT, old_int)
    assert signal.getsignal(signal.SIGTERM) == old_term


def test_train_adds_the_stop_hook_once():
    from mmengine.config import Config

    from fuller.engine.graceful_stop import add_graceful_stop
    cfg = Config(dict(custom_hooks=[dict(type='DumpParametersHook')]))
    add_graceful_stop(cfg)
    add_graceful_stop(cfg)
    assert [h['type'] for h in cfg.custom_hooks] == [
        'DumpParametersHook', 'GracefulStopHook']
    own = [dict(type='GracefulStopHook', repeat_grace=0)]
    cfg = Config(dict(custom_hooks=own))
    add_graceful_stop(cfg)
    assert cfg.custom_hooks == own
