"""tools/test.py --drop-modality and --out on a trained CPU model: the
dropped sensor's files are never read, the predictions are dumped, and the
same works under dist_test.sh (2 gloo ranks). Tiny synthetic set."""
import json
import pickle

import numpy as np
import pytest
import torch

from fuller.testing.processes import cpu_ranks_env
from fuller.testing.tools import REPO, free_port

NAIVE = str(REPO / 'configs/fuller/fuller_cpu_naive.py')


def _test(tool, root, ckpt, out_dir, *extra, launcher=()):
    pred, metrics = out_dir / 'pred.pkl', out_dir / 'metrics.json'
    tool(*(launcher or ('tools/test.py',)), NAIVE, ckpt, *(('2',) if launcher else ()),
         '--data-root', root, '--work-dir', out_dir, '--out', pred,
         '--metrics-out', metrics, *extra, timeout=900,
         env=dict(PORT=str(free_port()), **cpu_ranks_env(2)) if launcher else None)
    with open(pred, 'rb') as f:
        samples = pickle.load(f)
    return samples, json.loads(metrics.read_text())


def _predictions(samples):
    return {s['sample_idx']: (s['pred_instances_3d']['bboxes_3d'].tensor,
                              s['pred_instances_3d']['scores_3d'], s['pred_masks_bev'])
            for s in samples}


def _same(a, b):
    return a.keys() == b.keys() and all(
        torch.equal(torch.as_tensor(x), torch.as_tensor(y))
        for k in a for x, y in zip(a[k], b[k]))


def _overwrite(files, write):
    assert files, 'no sensor files found: the test would prove nothing'
    for path in files:
        write(path)


def _noise_points(path):
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    pts = rng.uniform(-30, 30, (5000, 5)).astype(np.float32)
    pts.tofile(path)


def _noise_image(path):
    import cv2
    img = cv2.imread(str(path))
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    cv2.imwrite(str(path), rng.integers(0, 255, img.shape, dtype=np.uint8))


@pytest.mark.parametrize('sensor', ['lidar', 'camera'])
def test_dropped_sensor_files_change_no_prediction(tool, tmp_path, trained, sensor):
    root, ckpt = trained
    both, _ = _test(tool, root, ckpt, tmp_path / 'both')
    dropped, metrics = _test(tool, root, ckpt, tmp_path / 'dropped', '--drop-modality', sensor)
    assert metrics['drop_modality'] == sensor and metrics['predictions'].endswith('pred.pkl')
    assert any(k.endswith('mIoU') for k in metrics['metrics'])
    assert any(k.endswith('mAP') for k in metrics['metrics'])
    assert len(dropped) == len(both) == 4  # the tiny set's val samples
    assert not _same(_predictions(both), _predictions(dropped)), \
        'the sensor did not matter to this model: the test proves nothing'
    if sensor == 'lidar':
        _overwrite(sorted((root / 'samples' / 'LIDAR_TOP').glob('*.bin'))
                   + sorted((root / 'sweeps' / 'LIDAR_TOP').glob('*.bin')), _noise_points)
    else:
        _overwrite(sorted(root.glob('samples/CAM_*/*.jpg'))
                   + sorted(root.glob('sweeps/CAM_*/*.jpg')), _noise_image)
    again, _ = _test(tool, root, ckpt, tmp_path / 'again', '--drop-modality', sensor)
    assert _same(_predictions(dropped), _predictions(again))
    changed, _ = _test(tool, root, ckpt, tmp_path / 'changed')
    assert not _same(_predictions(both), _predictions(changed)), \
        'overwriting the files did not reach the model'


def test_sensor_drop_under_dist_test(tool, tmp_path, trained):
    root, ckpt = trained
    single, _ = _test(tool, root, ckpt, tmp_path / 'one', '--drop-modality', 'camera')
    dist, metrics = _test(tool, root, ckpt, tmp_path / 'two', '--drop-modality', 'camera',
                          launcher=('bash', 'tools/dist_test.sh'))
    assert metrics['drop_modality'] == 'camera'
    assert sorted(s['sample_idx'] for s in dist) == sorted(s['sample_idx'] for s in single)
    ious = {k: v for k, v in metrics['metrics'].items() if k.endswith('mIoU')}
    assert ious and all(0 <= v <= 1 for v in ious.values())
