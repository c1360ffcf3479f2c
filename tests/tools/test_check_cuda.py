"""tools/check_cuda.sh: argument errors, its plan, and one item for real on
CPU (the distributed one: dist_train.sh with 2 gloo ranks on a CPU config,
with the GPUs hidden, so it runs the same on a machine with one GPU).

The GPU items themselves need CUDA and are not run by the test suite."""
import pytest
import torch

from fuller.testing.tools import free_port, run_tool

SCRIPT = 'tools/check_cuda.sh'


@pytest.mark.parametrize('args, message', [
    ([], '--data-root DIR is required'),
    (['--data-root', '/nonexistent/dir'], 'no such directory'),
    (['--data-root', '.', '--iters', '0'], '--iters must be a positive'),
    (['--data-root', '.', '--iters'], '--iters needs a value'),
    (['--data-root', '.', '--device', 'tpu'], '--device must be cuda or cpu'),
    (['--data-root', '.', '--setting', 'foo'], 'fuller_foo_naive.py not found'),
    (['--data-root', '.', '--items', 'train'], "unknown item 'train'"),
    (['--data-root', '.', '--bogus'], "unknown argument '--bogus'"),
    (['--data-root', '.', '--work-dir', 'configs'], 'already holds files'),
])
def test_argument_errors_are_one_line(args, message):
    proc = run_tool('bash', SCRIPT, *args, check=False)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert '\n' not in err and err.startswith('tools/check_cuda.sh: error:')
    assert message in err, err
    assert proc.stdout == ''


def test_dry_run_plans_every_item_and_writes_nothing(tmp_path):
    work = tmp_path / 'cc'
    proc = run_tool('bash', SCRIPT, '--data-root', tmp_path, '--work-dir',
                    work, '--dry-run', '--iters', '3')
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('DRY')]
    items = [ln.split()[1] for ln in lines]
    assert items == ['naive-fp32', 'fuller-fp32', 'naive-amp', 'fuller-amp',
                     'test', 'dist']
    plan = dict(zip(items, lines))
    for item in items[:4]:
        assert 'tools/train.py' in plan[item]
        assert ('--amp' in plan[item]) == item.endswith('amp')
        assert f'{item.split("-")[0]}_short.py' in plan[item]
    assert f'{work}/fuller-fp32/iter_3.pth' in plan['test']
    assert 'tools/dist_train.sh' in plan['dist']
    assert not work.exists()


def test_cpu_dist_item_trains_two_gloo_ranks(synthetic_nuscenes, tmp_path):
    """The CPU FULLER config through dist_train.sh, 2 ranks, 2 iterations:
    fails where a module built is unused (DDP without
    find_unused_parameters)."""
    work = tmp_path / 'cc'
    proc = run_tool('bash', SCRIPT, '--device', 'cpu', '--setting', 'cpu',
                    '--items', 'dist', '--iters', '2', '--data-root',
                    synthetic_nuscenes.root, '--work-dir', work,
                    env=dict(PORT=str(free_port())), timeout=600, check=False)
    log = (work / 'dist.log').read_text() if (work / 'dist.log').exists() \
        else ''
    assert proc.returncode == 0, proc.stdout + proc.stderr + log[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if 'dist' in ln
                and ln.startswith(('PASS', 'FAIL')))
    assert line.startswith('PASS') and 's/iter, peak n/a (CPU)' in line
    assert 'find_unused_parameters' not in log
    import fuller  # noqa: F401  (checkpoint types, torch >= 2.6)
    state = torch.load(work / 'dist' / 'iter_2.pth', map_location='cpu')
    assert state['meta']['iter'] == 2
    # the run's own log file holds mmengine's environment block, where the
    # world size is printed as "GPU number" (CPU ranks included)
    run_log = next((work / 'dist').glob('*/*.log')).read_text()
    assert 'Distributed training: True' in run_log
    assert 'GPU number: 2' in run_log
