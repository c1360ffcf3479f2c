"""create_data output, the multi-task dataset and its transforms, the map
labels under BEV augmentation, and the real nuScenes sample."""
import copy
import json
import os.path as osp
import shutil

import mmengine
import numpy as np
import pytest
import torch
from mmdet3d.structures import LiDARInstance3DBoxes
from mmdet3d.utils import register_all_modules

import fuller  # noqa: F401
from fuller.datasets import (CLASS_NAMES, MAP_CLASSES, BEVGlobalAug,
                             LoadBEVSegmentation, MapRasterizer,
                             MultiViewImageAug, apply_bev_transform,
                             bev_aug_matrix, check_map_expansion)
from fuller.registry import DATASETS

register_all_modules(init_default_scope=True)
REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _points_in_boxes(points, boxes) -> torch.Tensor:
    """(P, N) bool: point p inside box n (mmcv's CPU op)."""
    from mmcv.ops import points_in_boxes_cpu
    pts = torch.as_tensor(points, dtype=torch.float32)[None, :, :3]
    return points_in_boxes_cpu(pts, boxes.tensor[None, :, :7].float())[
        0].bool()


def _build(cfg_dataset, **overrides):
    return DATASETS.build(dict(copy.deepcopy(cfg_dataset), **overrides))


# ----------------------------------------------------------- info files
def test_create_data_adds_locations_and_sweeps(synthetic_nuscenes):
    train = mmengine.load(synthetic_nuscenes.train_infos)
    val = mmengine.load(synthetic_nuscenes.val_infos)
    assert len(train['data_list']) == 4 and len(val['data_list']) == 4
    for infos in (train, val):
        assert infos['metainfo']['version'] == 'v1.0-mini'
        for info in infos['data_list']:
            assert info['map_location'] in infos['metainfo']['map_locations']
            assert set(info['images']) == {
                'CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK',
                'CAM_BACK_LEFT', 'CAM_BACK_RIGHT'}
            assert info['instances']
            assert 1 <= len(info['lidar_sweeps']) <= 2  # --max-sweeps 2
        assert len(infos['data_list'][-1]['lidar_sweeps']) == 2
    assert {i['map_location'] for i in train['data_list']} != {
        i['map_location'] for i in val['data_list']}


# -------------------------------------------------------------- dataset
def test_train_sample_packs_the_contract(synthetic_nuscenes_cfg):
    cfg = synthetic_nuscenes_cfg
    ds = _build(cfg.train_dataloader.dataset)
    assert len(ds) == 4
    assert tuple(ds.metainfo['classes']) == CLASS_NAMES
    assert ds.metainfo['version'] == 'v1.0-mini'
    out = ds[0]
    imgs, pts = out['inputs']['imgs'], out['inputs']['points']
    assert imgs.shape == (6, 3, 64, 176) and imgs.dtype == torch.float32
    assert pts.ndim == 2 and pts.shape[1] == 5 and len(pts) > 1000
    sample = out['data_samples']
    meta = sample.metainfo
    for key in ('lidar2img', 'cam2img', 'lidar2cam', 'cam2lidar',
                'img_aug_matrix'):
        assert np.asarray(meta[key]).shape == (6, 4, 4), key
    assert np.asarray(meta['lidar_aug_matrix']).shape == (4, 4)
    assert meta['map_location'] in ('singapore-onenorth', 'boston-seaport')
    np.testing.assert_allclose(meta['lidar2img'],
                               meta['cam2img'] @ meta['lidar2cam'])
    np.testing.assert_allclose(meta['cam2lidar'] @ meta['lidar2cam'],
                               np.tile(np.eye(4), (6, 1, 1)), atol=1e-5)
    assert sample.gt_masks_bev.shape == (len(MAP_CLASSES), 100, 100)
    assert sample.gt_masks_bev.dtype == torch.uint8
    assert sample.gt_masks_bev[0].float().mean() > 0.05  # drivable area
    boxes = sample.gt_instances_3d.bboxes_3d
    assert isinstance(boxes, LiDARInstance3DBoxes) and len(boxes) > 5
    labels = sample.gt_instances_3d.labels_3d
    assert labels.min() >= 0 and labels.max() < len(CLASS_NAMES)


def test_points_project_into_images_through_the_matrices(
        synthetic_nuscenes_cfg):
    """Augmented LiDAR points mapped back by lidar_aug_matrix and through
    img_aug_matrix @ lidar2img land on pixels of every final image."""
    ds = _build(synthetic_nuscenes_cfg.train_dataloader.dataset)
    np.random.seed(1)
    out = ds[1]
    meta = out['data_samples'].metainfo
    pts = out['inputs']['points'][:, :3].double().numpy()
    orig = np.c_[pts, np.ones(len(pts))] @ np.linalg.inv(
        meta['lidar_aug_matrix']).T
    seen = 0
    for n in range(6):
        cam = orig @ (meta['img_aug_matrix'][n] @ meta['lidar2img'][n]).T
        front = cam[:, 2] > 1
        uv = cam[front, :2] / cam[front, 2:3]
        inside = ((uv[:, 0] >= 0) & (uv[:, 0] < 176) & (uv[:, 1] >= 0)
                  & (uv[:, 1] < 64))
        assert inside.sum() > 300, f'camera {n} sees no points'
        seen += inside.sum()
    # Six cameras see all around, but only +7..-18 deg of elevation (the
    # crop keeps the lower image part): not the dense near rings.
    assert seen > 0.15 * len(pts)


def test_image_aug_matrix_tracks_pixels():
    """A bright dot moves exactly where img_aug_matrix sends it."""
    img = np.zeros((270, 480, 3), np.float32)
    img[150:152, 300:302] = 255.0
    aug = MultiViewImageAug(final_dim=(64, 176), resize_lim=(0.4, 0.4),
                            rot_lim=(5.0, 5.0), rand_flip=True, is_train=True)
    checked = 0
    for seed in range(4):
        np.random.seed(seed)
        res = aug(dict(img=[img.copy()],
                       img_aug_matrix=np.eye(4)[None]))
        out = res['img'][0]
        if out.max() < 50:
            continue  # cropped away
        v, u = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
        pred = res['img_aug_matrix'][0] @ np.array([301.0, 151.0, 1.0, 1.0])
        assert abs(pred[0] - (u + 0.5)) < 1.0 and abs(pred[1] - (v + 0.5)) < 1.0
        checked += 1
    assert checked >= 2


# ------------------------------------------------------- BEV augmentation
def _map_sample(synthetic_nuscenes_cfg):
    cfg = synthetic_nuscenes_cfg
    ds = _build(cfg.val_dataloader.dataset, pipeline=[])
    info = ds.get_data_info(2)
    loader = LoadBEVSegmentation(cfg.train_dataloader.dataset.data_root,
                                 xbound=(-50, 50, 1.0), ybound=(-50, 50, 1.0))
    return info, loader


def test_map_labels_rotate_and_flip_with_the_augmentation(
        synthetic_nuscenes_cfg):
    info, loader = _map_sample(synthetic_nuscenes_cfg)
    base = loader(dict(copy.deepcopy(info)))['gt_masks_bev']
    assert base.shape == (6, 100, 100) and base[0].any()

    def labels(mat):
        res = dict(copy.deepcopy(info))
        apply_bev_transform(res, mat)
        return loader(res)['gt_masks_bev']

    def agree(a, b):
        return (a == b).mean()

    # 90 deg counter-clockwise: (x, y) -> (-y, x) is np.rot90 of the grid.
    assert agree(labels(bev_aug_matrix(rotation=np.pi / 2)),
                 np.rot90(base, 1, axes=(1, 2))) > 0.995
    # flip_x mirrors y (the column axis), flip_y mirrors x (the row axis).
    assert agree(labels(bev_aug_matrix(flip_x=True)),
                 base[:, :, ::-1]) > 0.995
    assert agree(labels(bev_aug_matrix(flip_y=True)),
                 base[:, ::-1, :]) > 0.995
    # A general one: resample the base labels through the inverse.
    mat = bev_aug_matrix(rotation=0.3, scale=1.08, translation=(1.5, -2, 0),
                         flip_x=True)
    aug = labels(mat)
    c = np.arange(100) - 49.5
    gx, gy = np.meshgrid(c, c, indexing='ij')
    back = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size),
                     np.ones(gx.size)], 1) @ np.linalg.inv(mat).T
    i = np.floor(back[:, 0] + 50).astype(int)
    j = np.floor(back[:, 1] + 50).astype(int)
    ok = (i >= 0) & (i < 100) & (j >= 0) & (j < 100)
    expect = base[:, i[ok], j[ok]]
    got = aug.reshape(6, -1)[:, ok]
    assert (expect[0] == got[0]).mean() > 0.97  # drivable area
    assert (expect == got).mean() > 0.97
    # ...and differs from not transforming at all.
    assert (base.reshape(6, -1)[:, ok] == got).mean() < (expect == got).mean()


def test_points_boxes_and_labels_move_together(synthetic_nuscenes_cfg):
    """After a random BEV aug the LiDAR ground points on ped crossings /
    stop lines still fall on those labels (paint is brighter)."""
    cfg = synthetic_nuscenes_cfg
    ds = _build(cfg.train_dataloader.dataset)
    np.random.seed(3)
    means = []
    for idx in range(2):
        out = ds[idx]
        mat = np.asarray(out['data_samples'].metainfo['lidar_aug_matrix'])
        assert not np.allclose(mat, np.eye(4))
        pts = out['inputs']['points'].numpy()
        masks = out['data_samples'].gt_masks_bev.numpy().astype(bool)
        scale = np.cbrt(abs(np.linalg.det(mat[:3, :3])))
        ground = pts[pts[:, 2] < mat[2, 3] - 1.65 * scale]
        ij = np.floor(ground[:, :2] + 50).astype(int)
        ok = ((ij >= 0) & (ij < 100)).all(1)
        cls = masks[:, ij[ok, 0], ij[ok, 1]]
        paint = cls[1] | cls[3]
        road = cls[0] & ~paint & ~cls[5]
        means.append((ground[ok][paint, 3].mean(), ground[ok][road, 3].mean()))
        # Boxes: points inside augmented boxes exist (moved together).
        boxes = out['data_samples'].gt_instances_3d.bboxes_3d
        inside = _points_in_boxes(pts[:, :3], boxes)
        assert inside.any(0).sum() > 0.5 * len(boxes)
    paint, road = np.mean(means, 0)
    assert paint > road + 3


def test_bev_aug_keeps_points_inside_boxes():
    pts = np.random.RandomState(0).uniform(-1, 1, (200, 3)) * [2, 1, 0.8]
    from mmdet3d.structures import LiDARPoints
    boxes = LiDARInstance3DBoxes(torch.tensor(
        [[10.0, 5.0, -1.0, 4.0, 2.0, 1.6, 0.4, 1.0, 0.5]]), box_dim=9)
    c, s = np.cos(0.4), np.sin(0.4)
    world = pts @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + [10, 5, -0.2]
    res = dict(points=LiDARPoints(torch.tensor(world, dtype=torch.float32),
                                  points_dim=3), gt_bboxes_3d=boxes)
    aug = BEVGlobalAug(rot_range=(0.7, 0.7), scale_range=(1.1, 1.1),
                       flip_ratio_x=1.0, flip_ratio_y=1.0)
    res = aug(res)
    inside = _points_in_boxes(res['points'].tensor, res['gt_bboxes_3d'])
    assert inside[:, 0].all()
    mat = res['lidar_aug_matrix']
    np.testing.assert_allclose(res['gt_bboxes_3d'].tensor[0, 7:9].numpy(),
                               mat[:2, :2] @ [1.0, 0.5], rtol=1e-5)


# ---------------------------------------------------------------- errors
def test_missing_or_old_map_expansion_errors(synthetic_nuscenes, tmp_path):
    with pytest.raises(FileNotFoundError, match='maps/expansion'):
        check_map_expansion(str(tmp_path), 'boston-seaport')
    exp = tmp_path / 'maps' / 'expansion'
    exp.mkdir(parents=True)
    src = osp.join(synthetic_nuscenes.root, 'maps', 'expansion',
                   'boston-seaport.json')
    with open(src) as f:
        obj = json.load(f)
    obj['version'] = '1.2'
    with open(exp / 'boston-seaport.json', 'w') as f:
        json.dump(obj, f)
    with pytest.raises(ValueError, match='Map expansion'):
        MapRasterizer(str(tmp_path)).nusc_map('boston-seaport')
    shutil.copy(src, exp / 'boston-seaport.json')
    assert MapRasterizer(str(tmp_path)).nusc_map('boston-seaport')
    loader = LoadBEVSegmentation(str(tmp_path))
    with pytest.raises(KeyError, match='create_data'):
        loader(dict(map_location=None))


# ------------------------------------------------------ real nuScenes
def test_real_nuscenes_sample_loads_through_the_pipeline(nuscenes_demo):
    """The real keyframe (1600x900 cameras, 34,688 points, 69 annotated
    instances, 66 of them with LiDAR points) goes through the paper
    pipeline's loading, image aug and packing (no map expansion ships with
    it, so no map labels)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', '_base_',
                                   'datasets', 'nuscenes_multitask.py'))
    pipeline = [t for t in cfg.test_pipeline
                if t['type'] != 'LoadBEVSegmentation']
    pipeline.insert(2, dict(type='LoadAnnotations3D', with_bbox_3d=True,
                            with_label_3d=True))
    pipeline[-1] = dict(type='PackMultiTaskInputs',
                        keys=['points', 'img', 'gt_bboxes_3d',
                              'gt_labels_3d'])
    pkl = osp.join(nuscenes_demo, 'n015-2018-07-24-11-22-45+0800.pkl')
    raw = mmengine.load(pkl)['data_list'][0]
    assert len(raw['instances']) == 69
    prefix = {k: '' for k in cfg.data_prefix}
    ds = DATASETS.build(dict(
        type='FullerNuScenesDataset', data_root=nuscenes_demo, ann_file=pkl,
        data_prefix=prefix, modality=cfg.input_modality, pipeline=pipeline,
        box_type_3d='LiDAR', use_valid_flag=False, filter_empty_gt=False,
        test_mode=False))
    out = ds[0]
    assert out['inputs']['imgs'].shape == (6, 3, 256, 704)
    n_raw = len(np.fromfile(osp.join(nuscenes_demo, osp.basename(
        raw['lidar_points']['lidar_path'])), np.float32)) // 5
    assert n_raw == 34688
    pts = out['inputs']['points']
    assert pts.shape[1] == 5 and len(pts) > 0.9 * n_raw
    meta = out['data_samples'].metainfo
    assert meta['map_location'] is None  # the demo pkl has no location
    boxes = out['data_samples'].gt_instances_3d.bboxes_3d
    # mmdet3d's NuScenesDataset drops the 3 boxes without LiDAR points.
    with_points = sum(i['num_lidar_pts'] > 0 for i in raw['instances'])
    assert with_points == 66 and len(boxes) == with_points
    # The boxes sit where the LiDAR sees them.
    inside = _points_in_boxes(pts[:, :3], boxes)
    assert inside.any(0).float().mean() > 0.8


def _first_points_height_share(points: np.ndarray, cell: float = 0.8,
                               keep: int = 20) -> float:
    """Mean share of a pillar's height range that its first ``keep`` points
    (what the voxeliser keeps) span, over pillars of more than ``keep``
    points and at least 0.5 m of height."""
    cells = np.floor(points[:, :2] / cell).astype(np.int64)
    _, inverse = np.unique(cells, axis=0, return_inverse=True)
    shares = []
    for pillar in np.unique(inverse):
        z = points[inverse.reshape(-1) == pillar, 2]
        full = z.max() - z.min()
        if len(z) > keep and full >= 0.5:
            first = z[:keep]
            shares.append((first.max() - first.min()) / full)
    assert len(shares) >= 5, 'too few overfull pillars to compare'
    return float(np.mean(shares))


def test_test_pipeline_shuffles_points_repeatably(synthetic_nuscenes_cfg):
    """The test pipeline reorders the points (SeededPointShuffle) the same
    way every time, keeps every point, and lets an overfull pillar's first
    points span its height as in training (the synthetic LiDAR writes its
    points ring by ring: unshuffled, they are the lowest rings)."""
    cfg = synthetic_nuscenes_cfg
    dataset_cfg = cfg.val_dataloader.dataset
    assert [t['type'] for t in dataset_cfg.pipeline][-2:] == [
        'SeededPointShuffle', 'PackMultiTaskInputs']
    ds = _build(dataset_cfg)
    unshuffled = _build(dataset_cfg, pipeline=[
        t for t in dataset_cfg.pipeline if t['type'] != 'SeededPointShuffle'])
    first = ds[0]['inputs']['points']
    assert torch.equal(first, ds[0]['inputs']['points'])  # repeatable
    assert not torch.equal(first, ds[1]['inputs']['points'][:len(first)])
    plain = unshuffled[0]['inputs']['points']
    assert not torch.equal(first, plain)
    # the same points, in another order
    assert len(first) == len(plain)
    np.testing.assert_array_equal(np.unique(first.numpy(), axis=0),
                                  np.unique(plain.numpy(), axis=0))
    shuffled_share = _first_points_height_share(first.numpy())
    file_order_share = _first_points_height_share(plain.numpy())
    assert shuffled_share > file_order_share + 0.2, (shuffled_share,
                                                     file_order_share)
