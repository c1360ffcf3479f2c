"""tools/benchmark_decoder_attention.py: both modes measured in their own
processes and compared; bad sizes refused in one line."""
import os.path as osp
import subprocess
import sys

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOOL = osp.join(REPO, 'tools', 'benchmark_decoder_attention.py')


def _run(*argv):
    return subprocess.run([sys.executable, TOOL, *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_reports_both_modes_side_by_side():
    proc = _run('--batch', '1', '--proposals', '8', '--cells', '400',
                '--channels', '16', '--heads', '2', '--ffn', '16',
                '--dropout', '0.0', '--steps', '2', '--threads', '1')
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith('decoder layer, cpu, batch 1, 8 queries x 400')
    assert lines[1].split() == ['explicit', 'fused', 'fused/explicit']
    for label in ('step s', 'peak MiB above start'):
        row = next(line for line in lines if line.startswith(label))
        explicit, fused, ratio = map(float, row[len(label):].split())
        assert explicit >= 0 and fused >= 0
        if label == 'step s':
            assert explicit > 0 and fused > 0 and ratio > 0


def test_bad_sizes_exit_with_one_line():
    proc = _run('--channels', '30', '--heads', '4')
    assert proc.returncode == 2
    assert 'must be a multiple of --heads' in proc.stderr.splitlines()[-1]
