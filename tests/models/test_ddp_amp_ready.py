"""CPU twins of the GPU-only crash classes of the paper setting.

- DDP without ``find_unused_parameters``: one training step of every
  experiment model (the paper ones at a reduced input, LiDAR on pillars)
  gives every trainable parameter a gradient.
- Mixed precision: a training step under CPU autocast (float16, bfloat16)
  gives finite losses; the camera geometry and the BEV pooling stay float32.
"""
import glob
import json
import os.path as osp

import pytest
import torch

from model_test_utils import (REPO, build_model, first_cameras, load_cfg,
                              loss_and_backward, paper_batch,
                              reduce_paper_model)
from fuller.models.ops import bev_pool
from fuller.models.synthetic import synthetic_batch

EXPERIMENTS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', 'fuller', '*.py')))
FULLER_WRAPPER = dict(
    type='FullerOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
    calibration=dict(inter=dict(type='IMTLG'), intra=dict(type='EqualNorm')))


#: The reduced paper models here: every paper module at its paper width, on
#: a 20x20 decoder grid (6 m half range), a 12x12 map (1 m) and one 32x88
#: camera: a small fraction of the paper size's cost (CPU float16/bfloat16
#: convolutions are slow fallback kernels, ~100x float32's time).
PAPER_SIZE = dict(half_range=6.0, image_size=(32, 88), map_step=1.0)


def _model_cfg(path):
    """The model a config trains, made CPU-runnable (paper: reduced)."""
    model = load_cfg(path).model
    if '_nus_' not in path:
        return model
    return reduce_paper_model(model, **PAPER_SIZE)


def _key(path):
    return json.dumps(_model_cfg(path).to_dict(), sort_keys=True, default=str)


def _groups():
    """Experiment configs grouped by model: configs that differ only in
    their calibration share one build and one step (run with FULLER's
    calibration, which reaches every junction)."""
    groups = {}
    for path in EXPERIMENTS:
        groups.setdefault(_key(path), []).append(path)
    return sorted(groups.values())


GROUPS = _groups()
AUTOCAST_MODELS = {'cpu': 'configs/fuller/fuller_cpu_naive.py',
                   'paper_reduced': 'configs/fuller/fuller_nus_naive.py'}
_KEPT = {}


def _built(path):
    """The model of a config; the models the autocast tests use again are
    built once for the module (no optimizer step is taken, so they stay as
    built)."""
    key = _key(path)
    if key in _KEPT:
        return _KEPT[key]
    torch.manual_seed(0)
    model = build_model(_model_cfg(path))
    if path in AUTOCAST_MODELS.values():
        _KEPT[key] = model
    return model


def _batch(path):
    """Batch 1, one camera: every module runs (CPU float16/bfloat16 kernels
    are slow, so the camera branch is kept to one view)."""
    if '_nus_' in path:
        return paper_batch(batch_size=1, num_cams=1, **PAPER_SIZE)
    return first_cameras(synthetic_batch(batch_size=1, num_points=1000), 1)


@pytest.mark.parametrize('paths', GROUPS,
                         ids=['+'.join(osp.basename(p)[7:-3] for p in g)
                              for g in GROUPS])
def test_every_trainable_parameter_gets_a_gradient(paths):
    model = _built(paths[0])
    losses, missing = loss_and_backward(model, FULLER_WRAPPER,
                                        _batch(paths[0]))
    assert all(torch.isfinite(v).all() for k, v in losses.items()
               if 'loss' in k)
    model.zero_grad(set_to_none=True)
    assert not missing, (f'{paths}: {len(missing)} trainable parameters got '
                         f'no gradient (DDP would fail): {missing}')


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16],
                         ids=['float16', 'bfloat16'])
@pytest.mark.parametrize('name', list(AUTOCAST_MODELS))
def test_autocast_training_step_is_finite(name, dtype):
    path = AUTOCAST_MODELS[name]
    model = _built(path)
    with torch.autocast('cpu', dtype=dtype):
        losses, missing = loss_and_backward(model, FULLER_WRAPPER,
                                            _batch(path))
    logged = {k: v for k, v in losses.items() if 'loss' in k}
    assert {k.split('.')[0] for k in logged} == {'det', 'seg'}
    for k, v in logged.items():
        assert v.dtype == torch.float32 and torch.isfinite(v).all(), (k, v)
    model.zero_grad(set_to_none=True)
    assert not missing


def _paper_view_transform():
    cfg = load_cfg('configs/_base_/models/bevfusion_nus.py').model
    return build_model(cfg.view_transform)


def _nuscenes_like_geometry(batch_size=1):
    """Ring cameras of a 1600x900 image resized by 0.44 and cropped to the
    paper's 256x704 input, as the nuScenes pipeline does."""
    from fuller.models.synthetic import ring_cameras
    cams = ring_cameras((900, 1600))
    n = cams['lidar2img'].shape[0]
    lidar2img = torch.as_tensor(cams['lidar2img']).expand(batch_size, n, 4, 4)
    aug = torch.eye(4)
    aug[0, 0] = aug[1, 1] = 0.44
    aug[1, 3] = -(900 * 0.44 - 256)  # bottom crop
    img_aug = aug.expand(batch_size, n, 4, 4)
    return lidar2img, img_aug, torch.eye(4).expand(batch_size, 4, 4)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16],
                         ids=['float16', 'bfloat16'])
def test_view_transform_geometry_is_float32_under_autocast(dtype):
    vt = _paper_view_transform()
    lidar2img, img_aug, lidar_aug = _nuscenes_like_geometry()
    # the case that matters: pixel x depth in the original image is beyond
    # float16's range
    u_orig = (vt.frustum[..., 0].max() - img_aug[0, 0, 0, 3]) / 0.44
    assert float(u_orig * vt.frustum[..., 2].max()) > 65504
    ref = vt.get_geometry(lidar2img, img_aug, lidar_aug)
    with torch.autocast('cpu', dtype=dtype):
        got = vt.get_geometry(lidar2img, img_aug, lidar_aug)
    assert got.dtype == torch.float32
    assert torch.equal(got, ref)


def test_bev_pool_sums_half_features_in_float32():
    # 4096 points of 16.0 in one cell: 65536 overflows float16
    feats = torch.full((4096, 2), 16.0, dtype=torch.float16)
    coords = torch.zeros((4096, 4), dtype=torch.long)
    out = bev_pool(feats, coords, 1, (1, 2, 2))
    assert out.dtype == torch.float32
    assert out[0, :, 0, 0, 0].tolist() == [65536.0, 65536.0]
    assert torch.isinf(feats.sum(0)).all()  # what a float16 sum gives
    # float64 (gradcheck) keeps its precision
    assert bev_pool(feats.double(), coords, 1, (1, 2, 2)).dtype == \
        torch.float64
