"""`make demo-quick` smoke: the whole demo driver on the session's tiny
synthetic nuScenes set, with the real tools/train.py and tools/test.py."""
import json
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
VARIANTS = ['det_only', 'seg_only', 'naive', 'inter', 'intra', 'fuller']
PLOTS = ['task_cosine.png', 'modality_ratio.png', 'calibration_weights.png',
         'task_grad_norms.png', 'losses.png', 'metrics.png']


def _demo(root, out):
    proc = subprocess.run(
        [sys.executable, 'tools/run_demo.py', '--quick', '--data-root', root,
         '--out', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1500,
        env=dict(__import__('os').environ, OMP_NUM_THREADS='2'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_demo_quick_end_to_end(synthetic_nuscenes, tmp_path):
    out = tmp_path / 'demo'
    stdout = _demo(synthetic_nuscenes.root, out)
    assert f'run {len(VARIANTS)}/{len(VARIANTS)}' in stdout

    table = json.loads((out / 'results.json').read_text())['table']
    assert list(table) == VARIANTS
    assert table['det_only']['mIoU'] is None
    assert table['seg_only']['mAP'] is None and table['seg_only']['NDS'] is None
    for variant in VARIANTS:
        cols = table[variant]
        assert cols['train_time_s']['mean'] > 0
        for metric in ('mAP', 'NDS', 'mIoU'):
            if cols.get(metric) is not None:
                assert 0.0 <= cols[metric]['mean'] <= 1.0, (variant, metric)
    for variant in ('naive', 'inter', 'intra', 'fuller'):
        assert all(table[variant][m] is not None for m in ('mAP', 'NDS', 'mIoU'))
        assert any(k.startswith('IoU.') for k in table[variant])
        # evaluated with each sensor dropped (tools/test.py --drop-modality)
        for column in ('drop_lidar.mAP', 'drop_lidar.mIoU', 'drop_camera.mAP',
                       'drop_camera.mIoU'):
            assert 0.0 <= table[variant][column]['mean'] <= 1.0, (variant, column)
        work = out / 'seed0' / variant
        assert json.loads((work / 'test_metrics_drop_lidar.json').read_text())[
            'drop_modality'] == 'lidar'
    # the single-task models fuse both sensors too: their one task is dropped
    assert table['det_only']['drop_lidar.mAP'] and table['det_only']['drop_lidar.mIoU'] is None
    assert table['seg_only']['drop_camera.mIoU'] and table['seg_only']['drop_camera.mAP'] is None
    # How much of each task's step into the shared backbone was kept: all of
    # it without task calibration; MetaBalance keeps the larger task's
    # gradient whole and raises the smaller one's toward it.
    for variant in ('naive', 'intra'):
        assert table[variant]['det_step']['mean'] == pytest.approx(1.0)
    for variant in ('inter', 'fuller'):
        steps = sorted(table[variant][f'{t}_step']['mean'] for t in ('det', 'seg'))
        assert steps[0] == pytest.approx(1.0) and steps[1] > 1.05, (variant, steps)

    # The gradient statistics behind the plots were logged for every
    # multi-task run (the task cosine needs two tasks).
    for variant in ('naive', 'inter', 'intra', 'fuller'):
        logs = list((out / 'seed0' / variant).glob('*/vis_data/scalars.json'))
        assert logs and 'fuller/task_cos' in logs[0].read_text(), variant

    markdown = (out / 'results.md').read_text()
    assert 'smoke run' in markdown.split('|')[0]  # said before the table
    for variant in VARIANTS:
        assert f'| {variant} |' in markdown
    assert 'LiDAR dropped (mAP / mIoU)' in markdown and 'camera probe' not in markdown
    for name in PLOTS:
        assert (out / 'plots' / name).stat().st_size > 10_000, name

    # Run again: finished runs are reused, nothing is retrained or overwritten.
    ckpts = sorted((out / 'seed0' / 'fuller').glob('epoch_*.pth'))
    mtimes = [p.stat().st_mtime for p in ckpts]
    again = _demo(synthetic_nuscenes.root, out)
    assert again.count('reusing') == len(VARIANTS)
    assert [p.stat().st_mtime for p in ckpts] == mtimes
