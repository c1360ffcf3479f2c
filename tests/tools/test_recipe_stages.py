"""The two-stage BEVFusion recipe (issue 13, item 4): the GT database of
tools/create_data.py, GT-paste with our numpy-safe sampler, CBGS, and both
CPU stages training for real (2 iterations each, stage 2 from stage 1)."""
import copy
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine import load
from mmengine.config import Config

from fuller.engine.runner_setup import build_runner, set_data_root

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
STAGE1 = 'configs/recipe/cpu_stage1_lidar_det.py'
STAGE2 = 'configs/recipe/cpu_stage2_naive.py'


def _cfg(rel, root, work_dir, **train_cfg):
    cfg = Config.fromfile(osp.join(REPO, rel))
    set_data_root(cfg, root)
    cfg.work_dir = str(work_dir)
    # 2 iterations, a checkpoint at the end, no validation, quiet
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=2)
    cfg.default_hooks.pop('visualization', None)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.batch_size = 1
    cfg.log_level = 'WARNING'
    cfg.update(train_cfg)
    return cfg


def test_gt_database_of_create_data(synthetic_nuscenes):
    root = synthetic_nuscenes.root
    db = load(osp.join(root, 'nuscenes_dbinfos_train.pkl'))
    infos = load(synthetic_nuscenes.train_infos)['data_list']
    # every valid (seen by a sensor) annotated object of the train split
    n_boxes = sum(len([i for i in info['instances']
                       if i['bbox_label_3d'] >= 0 and i['bbox_3d_isvalid']])
                  for info in infos)
    assert sum(len(v) for v in db.values()) == n_boxes > 0
    some = [entry for entries in db.values() for entry in entries
            if entry['num_points_in_gt'] > 20][:5]
    assert some
    for entry in some:
        pts = np.fromfile(osp.join(root, entry['path']),
                          np.float32).reshape(-1, 5)
        assert len(pts) == entry['num_points_in_gt']
        # stored relative to the box's bottom centre: inside its extent
        half = entry['box3d_lidar'][3:6].max() / 2 + 0.5
        assert np.abs(pts[:, :2]).max() <= half
        assert len(glob.glob(osp.join(root, 'nuscenes_gt_database',
                                      '*.bin'))) >= len(some)


def test_gt_paste_sampler_pastes_without_overlap(synthetic_nuscenes):
    from mmdet3d.structures import LiDARInstance3DBoxes

    from fuller.datasets.pipelines import gt_paste_sampler
    from fuller.registry import TRANSFORMS
    np.random.seed(0)
    cfg = gt_paste_sampler(synthetic_nuscenes.root, min_points=5)
    sampler = TRANSFORMS.build(cfg)  # info_path relative to the data root
    existing = LiDARInstance3DBoxes(torch.tensor(
        [[0.0, 0.0, -1.8, 4.5, 1.9, 1.6, 0.0, 0.0, 0.0]]), box_dim=9)
    out = sampler.sample_all(existing.numpy(), np.array([0]))
    assert out is not None and out['gt_labels_3d'].dtype == np.int64
    boxes = LiDARInstance3DBoxes(torch.as_tensor(out['gt_bboxes_3d']),
                                 box_dim=9)
    assert len(boxes) == len(out['gt_labels_3d']) > 0
    # one car was there: at most group - 1 cars are added
    assert (out['gt_labels_3d'] == 0).sum() <= cfg['sample_groups'][
        'car'] - 1
    # pasted boxes overlap neither the sample's box nor each other
    everything = LiDARInstance3DBoxes.cat([existing, boxes])
    iou = LiDARInstance3DBoxes.overlaps(everything, everything).numpy()
    assert np.allclose(iou - np.diag(np.diag(iou)), 0.0, atol=1e-4)
    # the pasted points sit around their boxes (moved there from the
    # box-relative database)
    centres = boxes.gravity_center.numpy()
    near = np.linalg.norm(out['points'].tensor[:, None, :2].numpy() -
                          centres[None, :, :2], axis=-1).min(1)
    assert (near <= boxes.dims[:, :2].norm(dim=1).max().item() / 2 +
            0.5).all()
    with pytest.raises(FileNotFoundError, match='create_data.py'):
        TRANSFORMS.build(dict(cfg, info_path='missing_dbinfos.pkl'))


def test_both_cpu_stages_train_stage2_from_stage1(synthetic_nuscenes,
                                                  tmp_path):
    from mmdet3d.datasets import CBGSDataset
    from mmdet3d.datasets.transforms import ObjectSample
    from mmdet3d.engine.hooks import DisableObjectSampleHook
    root = synthetic_nuscenes.root
    stage1 = _cfg(STAGE1, root, tmp_path / 's1')
    assert stage1.model.img_backbone is None and stage1.model.seg_head is None
    runner = build_runner(stage1)
    runner.train()
    dataset = runner.train_dataloader.dataset
    assert isinstance(dataset, CBGSDataset)
    paste = [t for t in dataset.dataset.pipeline.transforms
             if isinstance(t, ObjectSample)]
    assert len(paste) == 1 and not paste[0].disabled
    # the recipe's hook switches GT-paste off for the last epoch(s)
    hook, = [h for h in runner.hooks
             if isinstance(h, DisableObjectSampleHook)]
    runner.train_loop._epoch = hook.disable_after_epoch
    hook.before_train_epoch(runner)
    assert paste[0].disabled
    ckpt = tmp_path / 's1' / 'iter_2.pth'
    assert ckpt.is_file()
    stage1_state = torch.load(ckpt, map_location='cpu',
                              weights_only=False)['state_dict']

    stage2 = _cfg(STAGE2, root, tmp_path / 's2', load_from=str(ckpt))
    assert stage2.train_dataloader.dataset.type == 'CBGSDataset'
    runner = build_runner(stage2)
    runner.load_or_resume()
    # (the Runner may have put the model on a GPU)
    state = {k: v.cpu() for k, v in runner.model.state_dict().items()}
    lidar = [k for k in stage1_state
             if k.startswith(('pts_', 'bbox_head.'))]
    assert lidar and all(torch.equal(state[k], stage1_state[k])
                         for k in lidar)
    # the camera branch and the map head were not in stage 1
    assert not any(k.startswith(('img_', 'seg_head.', 'fusion_layer.'))
                   for k in stage1_state)
    before = copy.deepcopy(state['pts_backbone.blocks.0.0.weight'])
    runner.train()
    assert (tmp_path / 's2' / 'iter_2.pth').is_file()
    after = runner.model.state_dict()['pts_backbone.blocks.0.0.weight']
    after = after.cpu()
    assert not torch.equal(before, after)


NUS_STAGE2 = {
    'naive': ('Sum', 'Identity'), 'fuller': ('MetaBalance', 'EqualNorm'),
    'inter': ('MetaBalance', 'Identity'), 'intra': ('Sum', 'EqualNorm'),
    'fuller_light': ('MetaBalance', 'EqualNorm'), 'det_only': ('Sum', 'Identity'),
    'seg_only': ('Sum', 'Identity')}


def _types(cfg):
    calib = cfg.optim_wrapper.calibration
    return tuple(c['type'] if c else None
                 for c in (calib['inter'], calib['intra']))


def test_nuscenes_recipe_configs_follow_upstream():
    s1 = Config.fromfile(osp.join(REPO, 'configs/recipe/'
                                  'nus_stage1_lidar_det.py'))
    assert s1.train_cfg.max_epochs == 20
    assert s1.optim_wrapper.optimizer.type == 'AdamW'
    assert s1.model.img_backbone is None and s1.model.seg_head is None
    assert s1.train_dataloader.dataset.type == 'CBGSDataset'
    types = [t['type'] for t in s1.train_dataloader.dataset.dataset.pipeline]
    assert types.index('ObjectSample') == types.index('LoadAnnotations3D') + 1
    assert 'LoadMultiViewImages' not in types
    hook, = [h for h in s1.custom_hooks
             if h['type'] == 'DisableObjectSampleHook']
    assert hook['disable_after_epoch'] == 15  # the last 5 epochs
    rot = [t for t in s1.train_dataloader.dataset.dataset.pipeline
           if t['type'] == 'BEVGlobalAug'][0]['rot_range']
    assert rot == pytest.approx([-0.7854, 0.7854], abs=1e-4)
    for variant, calib in NUS_STAGE2.items():
        cfg = Config.fromfile(osp.join(REPO, f'configs/recipe/'
                                       f'nus_stage2_{variant}.py'))
        assert _types(cfg) == calib, variant
        assert cfg.train_cfg.max_epochs == 6
        assert cfg.optim_wrapper.optimizer.lr == 2e-4
        assert cfg.load_from.endswith('nus_stage1_lidar_det/epoch_20.pth')
        assert cfg.train_dataloader.dataset.type == 'CBGSDataset'
        assert 'CosineAnnealingLR' in [p['type'] for p in
                                       cfg.param_scheduler]
        assert not any(t['type'] == 'ObjectSample' for t in
                       cfg.train_dataloader.dataset.dataset.pipeline)
        vt = cfg.model.view_transform.type
        assert vt == ('LSSTransform' if variant == 'seg_only' else
                      'DepthLSSTransform')
        assert cfg.model.img_neck.type == 'GeneralizedLSSFPN'
        assert (cfg.model.seg_head is None) == (variant == 'det_only')
        assert (cfg.model.bbox_head is None) == (variant == 'seg_only')


def test_missing_gt_database_is_a_clear_input_error(tmp_path):
    from fuller.engine.runner_setup import UserInputError, check_data_paths
    for split in ('train', 'val'):
        (tmp_path / f'nuscenes_infos_{split}.pkl').touch()
    cfg = Config.fromfile(osp.join(REPO, STAGE1))
    set_data_root(cfg, str(tmp_path))
    with pytest.raises(UserInputError, match='GT database not found.*'
                       'create_data.py'):
        check_data_paths(cfg, ['train_dataloader', 'val_dataloader'])
    (tmp_path / 'nuscenes_dbinfos_train.pkl').touch()
    check_data_paths(cfg, ['train_dataloader', 'val_dataloader'])
