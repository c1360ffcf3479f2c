"""The multi-task BEVFusion network on the CPU setting, synthetic batches."""
import copy
import time

import pytest
import torch
from mmdet3d.structures import LiDARInstance3DBoxes
from mmengine.optim import build_optim_wrapper

from model_test_utils import build_model, load_cfg
from fuller.calibration import ModalityJunction, TaskJunction
from fuller.models.synthetic import synthetic_batch

CPU_MODEL = 'configs/_base_/models/bevfusion_cpu.py'
FULLER_WRAPPER = dict(
    type='FullerOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3),
    clip_grad=dict(max_norm=35),
    calibration=dict(inter=dict(type='IMTLG'), intra=dict(type='EqualNorm')))


@pytest.fixture(scope='module')
def model_cfg():
    return load_cfg(CPU_MODEL).model


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b)
               for a, b in zip(before, module.parameters()))


def test_train_step_updates_every_part(model_cfg):
    torch.manual_seed(0)
    model = build_model(model_cfg)
    model.init_weights()
    model.train()
    wrapper = build_optim_wrapper(model, copy.deepcopy(FULLER_WRAPPER))
    parts = ['img_backbone', 'view_transform', 'pts_voxel_encoder',
             'fusion_layer', 'pts_backbone', 'bbox_head', 'seg_head']
    before = {p: _params(getattr(model, p)) for p in parts}
    data = synthetic_batch(batch_size=2)
    model.train_step(copy.deepcopy(data), wrapper)  # warm-up (allocations)
    t0 = time.perf_counter()
    log = model.train_step(data, wrapper)
    step = time.perf_counter() - t0
    print(f'\nCPU setting train step (batch 2, FULLER): {step:.2f} s')
    for key in ('det.loss_heatmap', 'det.loss_cls', 'det.loss_bbox',
                'seg.loss_focal'):
        assert key in log and torch.isfinite(log[key]), key
    for p in parts:
        assert _changed(before[p], getattr(model, p)), f'{p} not updated'
    # both junctions are placed and were armed by the wrapper
    kinds = {type(m) for m in model.modules()}
    assert {TaskJunction, ModalityJunction} <= kinds


def test_predict_outputs(model_cfg):
    model = build_model(model_cfg).eval()
    data = model.data_preprocessor(synthetic_batch(batch_size=2), False)
    with torch.no_grad():
        out = model(**data, mode='predict')
    assert len(out) == 2
    for ds in out:
        det = ds.pred_instances_3d
        assert isinstance(det.bboxes_3d, LiDARInstance3DBoxes)
        n = len(det.scores_3d)
        assert 0 < n <= 64
        assert det.bboxes_3d.tensor.shape == (n, 9)
        assert det.labels_3d.dtype == torch.long
        assert ((det.labels_3d >= 0) & (det.labels_3d < 10)).all()
        assert ((det.scores_3d >= 0) & (det.scores_3d <= 1)).all()
        assert torch.all(det.scores_3d[:-1] >= det.scores_3d[1:])
        masks = ds.pred_masks_bev
        assert masks.shape == (6, 100, 100) and masks.dtype == torch.float32
        assert ((masks >= 0) & (masks <= 1)).all()


@pytest.mark.parametrize('variant,drop,tasks,modalities', [
    ('camera-only', ('pts_voxel_encoder', 'pts_middle_encoder'), ('det',
                                                                  'seg'),
     ('camera', )),
    ('lidar-only', ('img_backbone', 'img_neck', 'view_transform'),
     ('det', 'seg'), ('lidar', )),
    ('det-only', ('seg_head', ), ('det', ), ('camera', 'lidar')),
    ('seg-only', ('bbox_head', ), ('seg', ), ('camera', 'lidar')),
])
def test_single_modality_and_task_baselines(model_cfg, variant, drop, tasks,
                                            modalities):
    cfg = copy.deepcopy(model_cfg)
    for key in drop:
        cfg[key] = None
    if len(modalities) == 1:
        cfg.fusion_layer = None
        cfg.pts_backbone.in_channels = 32
    model = build_model(cfg)
    assert model.tasks == tasks and model.modalities == modalities
    data = model.data_preprocessor(synthetic_batch(batch_size=2), True)
    losses = model(**data, mode='loss')
    assert {k.split('.')[0] for k in losses} == set(tasks), variant
    sum(losses.values()).backward()


def test_center_head_alternative():
    model = build_model(
        load_cfg('configs/_base_/models/bevfusion_cpu_centerhead.py').model)
    data = model.data_preprocessor(synthetic_batch(batch_size=2), True)
    losses = model(**data, mode='loss')
    assert 'det.task0.loss_heatmap' in losses
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(synthetic_batch(2), False),
                    mode='predict')
    assert isinstance(out[0].pred_instances_3d.bboxes_3d,
                      LiDARInstance3DBoxes)


def test_bad_configs_fail_clearly(model_cfg):
    cfg = copy.deepcopy(model_cfg)
    cfg.bbox_head = cfg.seg_head = None
    with pytest.raises(ValueError, match='missing head'):
        build_model(cfg)
    cfg = copy.deepcopy(model_cfg)
    cfg.fusion_layer.in_channels = [64, 32]
    with pytest.raises(ValueError, match='channel mismatch.*fusion_layer'):
        build_model(cfg)
    cfg = copy.deepcopy(model_cfg)
    cfg.seg_head.in_channels = 128
    with pytest.raises(ValueError, match='channel mismatch.*seg_head'):
        build_model(cfg)
    cfg = copy.deepcopy(model_cfg)
    cfg.view_transform = None
    with pytest.raises(ValueError, match='camera branch incomplete'):
        build_model(cfg)
    # an image size that the view transform is not configured for
    model = build_model(model_cfg)
    data = model.data_preprocessor(
        synthetic_batch(batch_size=1, image_size=(96, 176)), False)
    with pytest.raises(ValueError, match='feature_size'):
        model(**data, mode='tensor')
    # map labels on another grid than the seg head predicts
    data = model.data_preprocessor(
        synthetic_batch(batch_size=1, map_size=(200, 200)), True)
    with pytest.raises(ValueError, match='gt_masks_bev'):
        model(**data, mode='loss')


def test_data_preprocessor_contract(model_cfg):
    model = build_model(model_cfg)
    batch = synthetic_batch(batch_size=2)
    out = model.data_preprocessor(batch, True)['inputs']
    imgs = out['imgs']
    assert imgs.shape == (2, 6, 3, 64, 176)
    # images come BGR (as mmcv loads them); the model normalises them RGB
    raw = torch.stack(batch['inputs']['imgs']).flip(2)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 1, 3, 1, 1)
    torch.testing.assert_close(imgs, (raw - mean) / std)
    vox = out['voxels']
    coors = vox['coors']  # (batch, z, y, x)
    assert set(coors[:, 0].tolist()) == {0, 1}
    assert (coors[:, 1] == 0).all() and (coors[:, 2:] < 128).all()
    # a voxel's points lie in the cell its coordinates name
    first = vox['voxels'][:, 0, :2]
    cell = torch.floor((first + 51.2) / 0.8).long()
    assert torch.equal(cell[:, 0], coors[:, 3])
    assert torch.equal(cell[:, 1], coors[:, 2])
    bad = synthetic_batch(batch_size=1)
    bad['inputs']['img'] = bad['inputs']['imgs']
    with pytest.raises(KeyError, match="both 'imgs' and 'img'"):
        model.data_preprocessor(bad, False)


def test_samples_without_boxes(model_cfg):
    model = build_model(model_cfg)
    data = model.data_preprocessor(synthetic_batch(batch_size=2, num_boxes=0),
                                   True)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    # no positives: nothing to regress, the heatmap target is all zeros
    assert losses['det.loss_bbox'] == 0
    sum(losses.values()).backward()
