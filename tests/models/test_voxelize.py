"""The torch hard voxeliser gives mmcv's ``Voxelization`` output tensor for
tensor: the real nuScenes sweep at the paper's voxel size and at pillars,
synthetic clouds where both caps bite, range edges, train and eval mode."""
import functools
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv.ops import Voxelization

from fuller.models.ops import TorchHardVoxelization, hard_voxelize
from model_test_utils import REPO, load_cfg

PAPER = dict(voxel_size=[0.075, 0.075, 0.2],
             point_cloud_range=[-54.0, -54.0, -5.0, 54.0, 54.0, 3.0])
PILLARS = dict(voxel_size=[0.6, 0.6, 8.0],
               point_cloud_range=[-54.0, -54.0, -5.0, 54.0, 54.0, 3.0])

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def _pair_of_layers(training: bool, **cfg):
    ours = TorchHardVoxelization(**cfg).train(training)
    ref = Voxelization(**cfg).train(training)
    return ours, ref


def _assert_same(ours, ref, points, device='cpu'):
    """Both layers on ``points``: identical voxels, coors, num_points."""
    got = ours.to(device)(points.to(device))
    want = ref(points.to(device)) if device == 'cpu' or _mmcv_cuda() \
        else ref(points)
    names = ('voxels', 'coors', 'num_points')
    for name, g, w in zip(names, got, want):
        assert g.device.type == device
        g = g.cpu()
        w = w.cpu()
        assert g.dtype == w.dtype, (name, g.dtype, w.dtype)
        assert g.shape == w.shape, (name, g.shape, w.shape)
        assert torch.equal(g, w), name
    return got


@functools.lru_cache(maxsize=None)
def _mmcv_cuda() -> bool:
    """Whether mmcv's voxeliser runs on CUDA here (mmcv built with its CUDA
    ops). Tried on a tiny cloud: ``mmcv.ops.get_compiling_cuda_version``
    crashed the interpreter (SIGSEGV) with the CUDA 13 build of mmcv 2.1.0
    on an H100, so the op itself is the probe."""
    if not torch.cuda.is_available():
        return False
    layer = Voxelization(max_num_points=1, max_voxels=1, **PILLARS)
    try:
        layer(torch.zeros(1, 4, device='cuda'))
    except (RuntimeError, NotImplementedError, AssertionError):
        return False
    return True


@pytest.fixture(scope='module')
def sweep(nuscenes_demo) -> torch.Tensor:
    files = glob.glob(osp.join(nuscenes_demo, '*LIDAR_TOP*.pcd.bin'))
    assert len(files) == 1, files
    pts = np.fromfile(files[0], dtype=np.float32).reshape(-1, 5)
    return torch.from_numpy(pts.copy())


@pytest.mark.parametrize('device', DEVICES)
def test_real_sweep_paper_voxels(sweep, device):
    """0.075 m voxels, 10 points each, in eval mode (no voxel cap bites)
    and in train mode with a voxel cap below the voxel count. (Two mmcv
    CPU calls: each clears a dense 1440x1440x40 grid, ~1 s.)"""
    ours, ref = _pair_of_layers(False, max_num_points=10,
                                max_voxels=(6000, 160000), **PAPER)
    voxels, coors, num = _assert_same(ours, ref, sweep, device)
    assert 6000 < len(coors) < len(sweep)  # eval: the larger cap
    assert num.max() > 1  # several points per voxel somewhere
    ours.train()
    ref.train()
    voxels, coors, num = _assert_same(ours, ref, sweep, device)
    assert len(coors) == 6000  # train: the smaller cap bites


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('training', [True, False])
def test_real_sweep_pillars(sweep, device, training):
    """0.6 m pillars with 20 points each: max_num_points bites in many
    pillars near the car; max_voxels (train) bites too."""
    ours, ref = _pair_of_layers(training, max_num_points=20,
                                max_voxels=(2000, 30000), **PILLARS)
    voxels, coors, num = _assert_same(ours, ref, sweep, device)
    assert (num == 20).sum() > 10
    assert (len(coors) == 2000) == training
    # padding after the last point of each voxel is zero
    slot = torch.arange(20)[None, :].expand(len(num), 20)
    assert not voxels.cpu()[slot >= num.cpu()[:, None]].any()


def _cloud(n, seed, low=-3.0, high=3.0, channels=4, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, channels, generator=g, dtype=torch.float64)
    pts[:, :3] = low + (high - low) * pts[:, :3]
    return pts.to(dtype)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('seed', [0, 1])
def test_synthetic_clouds_both_caps(device, training, seed):
    """Dense clouds on a small grid, partly outside the range: many points
    per voxel (max_num_points bites) and more voxels than max_voxels in
    train mode; eval mode keeps all voxels."""
    cfg = dict(voxel_size=[0.5, 0.5, 0.5],
               point_cloud_range=[-2.0, -2.0, -1.0, 2.0, 2.0, 1.0],
               max_num_points=5, max_voxels=(50, 1000))
    ours, ref = _pair_of_layers(training, **cfg)
    pts = _cloud(40000, seed)  # ~15% in range: ~23 points per voxel
    voxels, coors, num = _assert_same(ours, ref, pts, device)
    assert (num == 5).all()
    assert len(coors) == (50 if training else 8 * 8 * 4)


def test_range_edges_and_odd_grids():
    """Points at exactly min and max of the range, just outside it, NaN, a
    range that is not a whole number of voxels (mmcv rounds the grid), few
    points per voxel (mixed counts), float64 input."""
    cfg = dict(voxel_size=[0.3, 0.7, 1.1],
               point_cloud_range=[-1.0, -2.0, -1.5, 1.45, 2.0, 1.5],
               max_num_points=3, max_voxels=(40, 400))
    pts = _cloud(400, 2, low=-2.5, high=2.5)
    lo, hi = cfg['point_cloud_range'][:3], cfg['point_cloud_range'][3:]
    edge = []
    for x in (lo[0], hi[0], np.nextafter(np.float32(lo[0]), -9),
              np.nextafter(np.float32(hi[0]), -9), 0.0):
        for y in (lo[1], hi[1], 0.1):
            for z in (lo[2], hi[2], 0.2):
                edge.append([x, y, z, 7.0])
    edge.append([float('nan'), 0.0, 0.0, 1.0])
    edge.append([0.0, 1e30, 0.0, 1.0])
    pts = torch.cat([torch.tensor(edge, dtype=torch.float32), pts])
    for training in (True, False):
        ours, ref = _pair_of_layers(training, **cfg)
        _, _, num = _assert_same(ours, ref, pts)
        assert num.min() < 3 and num.max() == 3
    ours, ref = _pair_of_layers(False, **cfg)
    _assert_same(ours, ref, pts.double())
    # empty cloud and a cloud wholly outside the range
    for cloud in (pts[:0], pts[:1] + 100):
        v, c, n = ours(cloud)
        assert v.shape == (0, 3, 4) and c.shape == (0, 3) and n.shape == (0, )


def test_first_points_kept_in_input_order():
    """Independent of mmcv: a voxel holds its first max_num_points points in
    input order; with the voxel cap, the voxels whose first point comes
    first are kept, numbered in that order."""
    # voxel (x index) of each point, in input order
    xs = torch.tensor([2, 0, 2, 1, 2, 0, 2, 2, 1, 3], dtype=torch.float32)
    pts = torch.stack([xs + 0.5, torch.full_like(xs, 0.5),
                       torch.full_like(xs, 0.5), torch.arange(10.)], dim=1)
    voxels, coors, num = hard_voxelize(
        pts, torch.ones(3), torch.zeros(3), [4, 1, 1], max_num_points=3,
        max_voxels=2)
    assert coors.tolist() == [[0, 0, 2], [0, 0, 0]]
    assert num.tolist() == [3, 2]
    assert voxels[0, :, 3].tolist() == [0.0, 2.0, 4.0]
    assert voxels[1, :, 3].tolist() == [1.0, 5.0, 0.0]
    assert not voxels[1, 2].any()


def test_bad_settings_fail_clearly():
    with pytest.raises(ValueError, match='max_voxels'):
        TorchHardVoxelization(max_num_points=5, max_voxels=(0, 10), **PAPER)
    with pytest.raises(ValueError, match='max_num_points'):
        TorchHardVoxelization(max_num_points=-1, **PAPER)
    with pytest.raises(ValueError, match='voxelizer'):
        from fuller.models import FullerDataPreprocessor
        FullerDataPreprocessor(voxelizer='cuda')


def test_every_config_uses_the_torch_voxeliser():
    """The default of every experiment config; the data preprocessor keeps
    mmdet3d's voxel_dict contract with either voxeliser."""
    from fuller.registry import MODELS
    from fuller.models.synthetic import synthetic_batch
    seen = 0
    for path in sorted(glob.glob(osp.join(REPO, 'configs', 'fuller',
                                          '*.py'))):
        dp_cfg = load_cfg(osp.relpath(path, REPO)).model.data_preprocessor
        dp = MODELS.build(dp_cfg)
        if dp.voxel:
            assert isinstance(dp.voxel_layer, TorchHardVoxelization), path
            seen += 1
    assert seen >= 10
    cfg = load_cfg('configs/fuller/fuller_cpu_fuller.py')
    dp_cfg = cfg.model.data_preprocessor
    batch = synthetic_batch(batch_size=2, num_points=3000,
                            point_cloud_range=dp_cfg.voxel_layer
                            .point_cloud_range)
    outs = {}
    for impl in ('torch', 'mmcv'):
        dp = MODELS.build(dict(dp_cfg, voxelizer=impl)).train()
        outs[impl] = dp(batch, True)['inputs']['voxels']
    assert set(outs['torch']) == {'voxels', 'coors', 'num_points',
                                  'voxel_centers'}
    for key, value in outs['mmcv'].items():
        assert torch.equal(outs['torch'][key], value), key
    assert outs['torch']['coors'][:, 0].unique().tolist() == [0, 1]
