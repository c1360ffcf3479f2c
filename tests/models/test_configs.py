"""Every experiment config builds; the paper setting runs on CPU at a reduced
input size; the lightweight heads are >= 40% smaller."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.optim import build_optim_wrapper

from model_test_utils import REPO, build_model, load_cfg, paper_batch
from fuller.models.synthetic import synthetic_batch
from fuller.testing import paper_model_reduced

EXPERIMENTS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', 'fuller', '*.py')))
EXPECTED_CALIBRATION = {
    'naive': ('Sum', 'Identity'), 'det_only': ('Sum', 'Identity'),
    'seg_only': ('Sum', 'Identity'),
    # FULLER's default inter calibrator: MetaBalance (issue 12's ablation)
    'inter': ('MetaBalance', 'Identity'),
    'intra': ('Sum', 'EqualNorm'), 'fuller': ('MetaBalance', 'EqualNorm'),
    'fuller_light': ('MetaBalance', 'EqualNorm'),
    'centerhead': ('MetaBalance', 'EqualNorm'),
    'camera_only': ('Sum', 'Identity'), 'lidar_only': ('Sum', 'Identity'),
    # modality dropout, alone and with the task level; the unimodal probes
    'dropout': ('Sum', 'Identity'), 'dropout_inter': ('MetaBalance', 'Identity'),
    'probe_camera': ('Sum', 'Identity'), 'probe_lidar': ('Sum', 'Identity'),
    # the paper's IMTL-G, with EqualNorm and alone
    'fuller_imtlg': ('IMTLG', 'EqualNorm'), 'inter_imtlg': ('IMTLG', 'Identity'),
    # FULLER with the magnitude-keeping inter calibrators (issue 12)
    'fuller_imtlg_sum': ('NormKeepingIMTLG', 'EqualNorm'),
    'fuller_imtlg_max': ('NormKeepingIMTLG', 'EqualNorm'),
    'fuller_mgda_sum': ('NormKeepingMGDA', 'EqualNorm'),
    'fuller_dbmtl': ('DBMTL', 'EqualNorm'),
    'fuller_aligned_rmse': ('AlignedMTL', 'EqualNorm'),
}


def _variant(path):
    name = osp.splitext(osp.basename(path))[0]
    return name.split('_', 2)[2]  # fuller_cpu_<variant>


def test_all_variants_exist():
    for setting in ('cpu', 'nus'):
        for v in ('det_only', 'seg_only', 'naive', 'inter', 'intra',
                  'fuller'):
            assert f'configs/fuller/fuller_{setting}_{v}.py' in EXPERIMENTS


def _assert_grids_meet(model, model_cfg):
    """The two branches' BEV grids (from their configs) are equal and are
    the grid the decoder and the seg head were configured for."""
    if model.with_camera and model.with_lidar:
        assert model.pts_middle_encoder.bev_shape == \
            model.view_transform.bev_shape
    branch = model.view_transform if model.with_camera else \
        model.pts_middle_encoder
    # the seg head's input bounds describe the decoder output grid
    if model.seg_head is not None:
        stride = model_cfg.pts_backbone.layer_strides[0]
        want = tuple(round((hi - lo) / step) * stride for lo, hi, step in
                     model_cfg.seg_head.input_bounds)
        assert tuple(branch.bev_shape) == want


@pytest.mark.parametrize('path', EXPERIMENTS)
def test_experiment_config_builds(path):
    cfg = load_cfg(path)
    assert cfg.default_scope == 'mmdet3d'
    assert 'fuller' in cfg.custom_imports['imports']
    # the nuScenes-scale (GPU) configs search cuDNN's algorithms and run
    # float32 matmuls on TF32; the CPU ones keep torch's defaults
    nus = '_nus_' in path
    assert cfg.env_cfg.cudnn_benchmark == nus
    assert cfg.env_cfg.get('float32_matmul_precision') == ('high' if nus else None)
    model = build_model(cfg.model)
    variant = _variant(path)
    assert (model.bbox_head is None) == (variant == 'seg_only')
    assert (model.seg_head is None) == (variant == 'det_only')
    # the model matches the dataset config it inherits
    vl = cfg.model.data_preprocessor.voxel_layer
    assert list(vl.point_cloud_range) == list(cfg.point_cloud_range)
    if cfg.model.view_transform:
        assert list(cfg.model.view_transform.image_size) == list(
            cfg.image_size)
    if model.seg_head is not None:
        assert list(model.seg_head.classes) == list(cfg.map_classes)
        assert [list(b) for b in cfg.model.seg_head.output_bounds] == [
            list(cfg.map_xbound), list(cfg.map_ybound)]
    _assert_grids_meet(model, cfg.model)
    if model.bbox_head is not None:
        n = model.bbox_head.num_classes  # CenterHead: a list per task
        assert (sum(n) if isinstance(n, list) else n) == len(cfg.class_names)
    # each task the model has is evaluated, and only those
    metrics = {e['type'] for e in cfg.val_evaluator}
    assert ('EmptySafeNuScenesMetric' in metrics) == (model.bbox_head is not None)
    assert ('BEVSegMetric' in metrics) == (model.seg_head is not None)
    assert cfg.test_evaluator == cfg.val_evaluator
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    calib = wrapper.calibration_cfg
    got = tuple(c['type'] if c else None
                for c in (calib['inter'], calib['intra']))
    assert got == EXPECTED_CALIBRATION[variant], path


@pytest.mark.parametrize('setting', ['cpu', 'nus'])
def test_light_heads_save_40_percent(setting):
    def heads(rel):
        m = build_model(load_cfg(rel).model)
        return [sum(p.numel() for p in h.parameters())
                for h in (m.bbox_head, m.seg_head)]

    std = heads(f'configs/fuller/fuller_{setting}_fuller.py')
    light = heads(f'configs/fuller/fuller_{setting}_fuller_light.py')
    for s, li in zip(std, light):
        assert li <= 0.6 * s, (setting, s, li)


@pytest.mark.parametrize('path', sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '_base_', 'models', '*.py'))))
def test_base_model_config_grids_meet(path):
    model_cfg = load_cfg(path).model
    if model_cfg.img_backbone:
        model_cfg.img_backbone.init_cfg = None
    _assert_grids_meet(build_model(model_cfg), model_cfg)


def test_paper_lidar_grid_follows_zyx_paddings():
    """The paper's sparse encoder ends on the camera's 180x180 grid; the
    upstream (x, y, z) paddings read as mmdet3d's (z, y, x) gave x = 179,
    and the model now refuses that at build time, naming both grids and
    the setting."""
    model_cfg = load_cfg('configs/_base_/models/bevfusion_nus.py').model
    enc = build_model(model_cfg.pts_middle_encoder)
    assert enc.bev_shape == (180, 180)
    assert enc.out_channels == model_cfg.fusion_layer.in_channels[1]
    model_cfg.img_backbone.init_cfg = None
    model_cfg.pts_middle_encoder.encoder_paddings = (
        (0, 0, 1), (0, 0, 1), (0, 0, [1, 1, 0]), (0, 0))  # x, y, z order
    with pytest.raises(ValueError) as err:
        build_model(model_cfg)
    msg = str(err.value)
    assert '\n' not in msg
    for part in ('camera branch (180, 180)', 'LiDAR branch (179, 180)',
                 'encoder_paddings', 'view_transform.xbound'):
        assert part in msg, msg


def test_pillar_grid_mismatch_fails_at_build():
    model_cfg = load_cfg('configs/_base_/models/bevfusion_cpu.py').model
    model_cfg.pts_middle_encoder.output_shape = [128, 120]  # [ny, nx]
    with pytest.raises(ValueError, match=r'camera branch \(128, 128\).*'
                       r'LiDAR branch \(120, 128\).*output_shape'):
        build_model(model_cfg)


@pytest.mark.parametrize('base, override, head, setting', [
    ('bevfusion_cpu.py', ('bbox_head', 'bbox_coder', 'out_size_factor', 2),
     'bbox_head', 'out_size_factor'),
    ('bevfusion_cpu.py', ('seg_head', 'input_bounds',
                          [[-51.2, 51.2, 1.6], [-51.2, 51.2, 1.6]]),
     'seg_head', 'seg_head.input_bounds'),
    ('bevfusion_cpu_centerhead.py',
     ('bbox_head', 'train_cfg', 'out_size_factor', 2), 'bbox_head',
     'grid_size / out_size_factor'),
    ('bevfusion_nus.py', ('pts_neck', 'upsample_strides', [2, 4]),
     'bbox_head', 'upsample_strides[0]=2'),
])
def test_head_grid_mismatch_fails_at_build(base, override, head, setting):
    """A head configured for another grid than the decoder's output would
    train without an error, every box and map cell misplaced (the CPU
    model's heads moved from 64x64 to 128x128: a box coder left at
    out_size_factor=2 halves every box position). It fails at build,
    naming the head, both grids and the settings."""
    model_cfg = load_cfg(f'configs/_base_/models/{base}').model
    if model_cfg.img_backbone:
        model_cfg.img_backbone.init_cfg = None
    *path, key, value = override
    part = model_cfg
    for name in path:
        part = part[name]
    part[key] = value
    with pytest.raises(ValueError) as err:
        build_model(model_cfg)
    msg = str(err.value)
    assert '\n' not in msg
    for piece in (f'{head} is configured for a', setting,
                  'but the decoder outputs'):
        assert piece in msg, msg


def _paper_cfg_reduced():
    """The paper model at a 64x176 input; the sparse-conv LiDAR encoder
    (CUDA only) swapped for pillars on the same 0.6 m decoder grid."""
    return paper_model_reduced(
        load_cfg('configs/_base_/models/bevfusion_nus.py').model)


def test_paper_setting_forward_on_cpu_reduced_input():
    model = build_model(_paper_cfg_reduced()).eval()
    batch = paper_batch()
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        z = model.extract_feat(data['inputs'], data['data_samples'])
        assert z.shape == (1, 512, 180, 180)
        out = model(**data, mode='predict')[0]
    assert out.pred_masks_bev.shape == (6, 200, 200)
    assert out.pred_instances_3d.bboxes_3d.tensor.shape[1] == 9
    assert 0 < len(out.pred_instances_3d.scores_3d) <= 200


def test_paper_setting_sparse_lidar_encoder():
    model_cfg = load_cfg('configs/_base_/models/bevfusion_nus.py').model
    model_cfg.img_backbone.init_cfg = None
    model = build_model(model_cfg)  # builds everywhere
    if not torch.cuda.is_available():
        pytest.skip('sparse 3D convolution (BEVSparseEncoder, 0.075 m '
                    'voxels) has no CPU kernels in mmcv; needs a CUDA '
                    'device with mmcv CUDA ops or spconv')
    model = model.cuda().eval()
    batch = synthetic_batch(batch_size=1, image_size=(256, 704),
                            point_cloud_range=(-54, -54, -5, 54, 54, 3),
                            map_size=(200, 200), num_points=20000)
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        out = model(**data, mode='predict')[0]
    assert out.pred_masks_bev.shape == (6, 200, 200)


@pytest.mark.parametrize('variant', ['camera_only', 'lidar_only'])
def test_single_modality_experiment_trains(variant):
    cfg = load_cfg(f'configs/fuller/fuller_cpu_{variant}.py')
    model = build_model(cfg.model)
    assert model.modalities == (variant.split('_')[0], )
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    before = [p.detach().clone() for p in model.pts_backbone.parameters()]
    log = model.train_step(synthetic_batch(batch_size=2), wrapper)
    assert {k.split('.')[0] for k in log if 'loss' in k} >= {'det', 'seg'}
    assert any(not torch.equal(a, b) for a, b in zip(
        before, model.pts_backbone.parameters()))
