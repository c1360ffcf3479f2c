"""Helpers of the model tests: config loading and model building.

(A module of its own, not conftest.py: several test folders have a
conftest.py, and ``from conftest import ...`` would be ambiguous.)
"""
import copy
import os
import os.path as osp
from typing import Dict, List, Tuple

from mmengine.config import Config

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
# the real nuScenes sample; FULLER_NUSCENES_DEMO as in tests/conftest.py
DEMO = os.environ.get('FULLER_NUSCENES_DEMO') or osp.abspath(
    osp.join(REPO, '..', 'shared', 'data', 'nuscenes-demo'))


#: the sample's cameras, in the order of its info file
DEMO_CAMS = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK',
             'CAM_BACK_LEFT', 'CAM_BACK_RIGHT')
DEMO_ORIG_HW = (900, 1600)
#: the paper setting's network input and the image augmentation that gives
#: it: 1600x900 -> 704x396 (scale 0.44), keep the bottom 256 rows
DEMO_NET_HW = (256, 704)
DEMO_SCALE, DEMO_CROP_TOP = 0.44, 140


def load_demo_sample() -> dict:
    """The real nuScenes keyframe of ``DEMO`` as float64 tensors.

    Returns ``points`` (P, 3) LiDAR xyz, ``lidar2cam`` / ``lidar2img``
    (6, 4, 4), ``lidar2ego`` (4, 4) and ``img_aug`` (6, 4, 4), the resize and
    crop to ``DEMO_NET_HW``. Skips the calling test where the sample is
    missing.
    """
    import numpy as np
    import pytest
    import torch
    pkl = osp.join(DEMO, 'n015-2018-07-24-11-22-45+0800.pkl')
    if not osp.exists(pkl):
        pytest.skip(f'nuScenes demo sample missing: {pkl} (see '
                    '../shared/data/README.md)')
    import mmengine
    info = mmengine.load(pkl)['data_list'][0]
    pts = np.fromfile(osp.join(DEMO, info['lidar_points']['lidar_path']),
                      dtype=np.float32).reshape(-1, 5)
    lidar2img, lidar2cam = [], []
    for cam in DEMO_CAMS:
        k = np.eye(4)
        k[:3, :3] = info['images'][cam]['cam2img']
        l2c = np.array(info['images'][cam]['lidar2cam'])
        lidar2cam.append(l2c)
        lidar2img.append(k @ l2c)
    aug = np.eye(4)
    aug[0, 0] = aug[1, 1] = DEMO_SCALE
    aug[1, 3] = -DEMO_CROP_TOP
    return dict(points=torch.from_numpy(pts[:, :3]).double(),
                lidar2img=torch.tensor(np.stack(lidar2img)),
                lidar2cam=torch.tensor(np.stack(lidar2cam)),
                lidar2ego=torch.tensor(info['lidar_points']['lidar2ego'],
                                       dtype=torch.float64),
                img_aug=torch.tensor(aug).expand(len(DEMO_CAMS), 4, 4))


def load_cfg(rel_path: str) -> Config:
    """Load a config by its path relative to the repository root."""
    return Config.fromfile(osp.join(REPO, rel_path))


def build_model(model_cfg):
    """Build a model config with the mmdet3d ``MODELS`` registry."""
    from fuller.registry import MODELS
    return MODELS.build(model_cfg)


def reduce_paper_model(model_cfg=None, half_range: float = 54.0,
                       image_size=(64, 176), map_step: float = 0.5):
    """``fuller.testing.paper_model_reduced`` (the paper model at a small
    input, LiDAR on pillars) of ``model_cfg`` (a ``configs/fuller/
    fuller_nus_*`` model, default the base one), shrunk further for tests
    that only need every module to run once.

    ``half_range`` < 54 shrinks the BEV range (same cell sizes, fewer cells:
    6 m gives a 20x20 decoder grid), ``image_size`` (a multiple of 8) the
    input and ``map_step`` the map grid; every module keeps its paper size.
    """
    from fuller.testing import paper_model_reduced
    r = float(half_range)
    pcr = [-r, -r, -5.0, r, r, 3.0]
    cfg = copy.deepcopy(
        model_cfg or load_cfg('configs/_base_/models/bevfusion_nus.py').model)
    cfg.data_preprocessor.voxel_layer.point_cloud_range = pcr
    cfg = paper_model_reduced(cfg)  # pillars on the range set above
    cfg.view_transform.image_size = list(image_size)
    cfg.view_transform.feature_size = [s // 8 for s in image_size]
    cfg.view_transform.xbound = cfg.view_transform.ybound = [-r, r, 0.3]
    if cfg.get('bbox_head'):
        cfg.bbox_head.bbox_coder.pc_range = pcr
    if cfg.get('seg_head'):
        m = _map_half_range(r)
        cfg.seg_head.input_bounds = [[-r, r, 0.6]] * 2
        cfg.seg_head.output_bounds = [[-m, m, map_step]] * 2
    return cfg


def _map_half_range(half_range: float) -> float:
    return 50.0 if half_range >= 54.0 else float(half_range)


def paper_batch(batch_size: int = 1, num_points: int = 2000, seed: int = 0,
                half_range: float = 54.0, image_size=(64, 176),
                num_cams: int = 6, map_step: float = 0.5):
    """A synthetic batch for :func:`reduce_paper_model` (same half_range,
    image_size and map_step); ``num_cams`` < 6 keeps the first cameras of the ring (the
    camera branch costs in proportion)."""
    from fuller.models.synthetic import synthetic_batch
    r, m = float(half_range), _map_half_range(half_range)
    n_map = int(round(2 * m / map_step))
    batch = synthetic_batch(batch_size=batch_size, image_size=image_size,
                            point_cloud_range=(-r, -r, -5.0, r, r, 3.0),
                            map_size=(n_map, n_map), num_points=num_points,
                            seed=seed)
    return first_cameras(batch, num_cams)


def first_cameras(batch: dict, num_cams: int) -> dict:
    """Keep the first ``num_cams`` cameras of a synthetic batch (images and
    their per-camera matrices), in place; returns the batch."""
    batch['inputs']['imgs'] = [x[:num_cams] for x in batch['inputs']['imgs']]
    for ds in batch['data_samples']:
        ds.set_metainfo({
            k: ds.metainfo[k][:num_cams]
            for k in ('lidar2img', 'cam2img', 'lidar2cam', 'cam2lidar',
                      'img_aug_matrix')})
    return batch


def loss_and_backward(model, wrapper_cfg: dict,
                      batch: dict) -> Tuple[Dict, List[str]]:
    """One training step without the optimizer update: the forward under
    the wrapper's context (junctions armed, autocast for AMP wrappers), the
    backward through the wrapper (calibration). Returns the loss dict and
    the names of the trainable parameters left without a gradient (those
    DistributedDataParallel would refuse without find_unused_parameters).
    """
    from mmengine.optim import build_optim_wrapper
    model.train()
    model.zero_grad(set_to_none=True)
    wrapper = build_optim_wrapper(model, copy.deepcopy(wrapper_cfg))
    with wrapper.optim_context(model):
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        losses = model._run_forward(data, mode='loss')
    loss, _ = model.parse_losses(losses)
    wrapper.backward(loss)
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    return losses, missing
