"""Running the fused network without one sensor: test-time sensor drop and
train-time modality dropout (``FullerBEVFusion.drop_modality`` /
``modality_dropout``)."""
import copy

import pytest
import torch

from model_test_utils import build_model, load_cfg
from fuller.models.synthetic import synthetic_batch

CPU_MODEL = 'configs/_base_/models/bevfusion_cpu.py'
CAMERA_ONLY = 'configs/fuller/fuller_cpu_camera_only.py'


@pytest.fixture(scope='module')
def model_cfg():
    return load_cfg(CPU_MODEL).model


def _predict(model, batch):
    data = model.data_preprocessor(copy.deepcopy(batch), False)
    with torch.no_grad():
        out = model(**data, mode='predict')
    return [(ds.pred_instances_3d.bboxes_3d.tensor, ds.pred_instances_3d.scores_3d,
             ds.pred_masks_bev) for ds in out]


def _same(a, b):
    return all(torch.equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))


def _with_other(batch, modality):
    """The batch with every input of ``modality`` replaced by other data."""
    other = copy.deepcopy(batch)
    gen = torch.Generator().manual_seed(7)
    if modality == 'lidar':
        other['inputs']['points'] = [
            torch.rand(len(p) // 2 + 5, p.shape[1], generator=gen) * 40 - 20
            for p in batch['inputs']['points']]
    else:
        imgs = batch['inputs']['imgs']
        other['inputs']['imgs'] = [torch.randint(0, 255, i.shape, generator=gen).to(i.dtype)
                                   for i in imgs] if isinstance(imgs, list) else \
            torch.randint(0, 255, imgs.shape, generator=gen).to(imgs.dtype)
    return other


@pytest.mark.parametrize('modality', ['camera', 'lidar'])
def test_dropped_sensor_is_never_read(model_cfg, modality):
    torch.manual_seed(0)
    model = build_model(model_cfg).eval()
    batch = synthetic_batch(batch_size=2)
    both = _predict(model, batch)
    assert not _same(both, _predict(model, _with_other(batch, modality))), \
        'the test batch does not reach the branch: it proves nothing'
    model.drop_modality = modality
    dropped = _predict(model, batch)
    assert not _same(both, dropped)  # the sensor mattered
    assert _same(dropped, _predict(model, _with_other(batch, modality)))


@pytest.mark.parametrize('modality', ['camera', 'lidar'])
def test_dropped_branch_feeds_zeros_to_the_fuser(model_cfg, modality):
    torch.manual_seed(0)
    model = build_model(model_cfg).eval()
    seen = []
    model.fusion_layer.register_forward_pre_hook(
        lambda _m, args: seen.append([f.clone() for f in args[0]]))
    calls = []
    branch = model.img_backbone if modality == 'camera' else model.pts_voxel_encoder
    branch.register_forward_hook(lambda *_: calls.append(1))
    model.drop_modality = modality
    _predict(model, synthetic_batch(batch_size=2))
    assert not calls, f'the {modality} branch ran'
    cam, lid = seen[0]
    dropped, kept = (cam, lid) if modality == 'camera' else (lid, cam)
    assert dropped.shape == (2, 32, 128, 128) == kept.shape
    assert torch.count_nonzero(dropped) == 0 and torch.count_nonzero(kept) > 0


def test_drop_needs_two_sensors():
    model = build_model(load_cfg(CAMERA_ONLY).model)
    with pytest.raises(ValueError, match='needs a camera \\+ LiDAR model'):
        model.drop_modality = 'lidar'
    with pytest.raises(ValueError, match="name one of camera, lidar"):
        build_model(dict(load_cfg(CPU_MODEL).model, drop_modality='radar'))


def test_modality_dropout_zeroes_one_sensor_per_sample(model_cfg):
    torch.manual_seed(0)
    model = build_model(dict(model_cfg, modality_dropout=dict(camera=0.5, lidar=0.5)))
    feats = [torch.ones(4000, 2, 3, 3), torch.ones(4000, 2, 3, 3) * 2]
    cam, lid = model._drop_per_sample(feats)
    cam_off = cam.flatten(1).amax(1) == 0
    lid_off = lid.flatten(1).amax(1) == 0
    assert not (cam_off & lid_off).any()  # a sample keeps one sensor
    assert (cam_off | lid_off).all()  # p_c + p_l = 1: always one dropped
    assert 0.45 < cam_off.float().mean() < 0.55
    assert torch.equal(lid[~lid_off], feats[1][~lid_off])


def test_modality_dropout_trains_every_parameter(model_cfg):
    """DDP refuses parameters without a gradient: the dropout keeps the
    graph of both branches whole, also for the samples it zeroes."""
    torch.manual_seed(1)
    model = build_model(dict(model_cfg, modality_dropout=dict(camera=0.5, lidar=0.5)))
    model.train()
    data = model.data_preprocessor(synthetic_batch(batch_size=2), True)
    losses = model(**data, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize('dropout, message', [
    (dict(camera=0.7, lidar=0.5), 'sum to at most 1'),
    (dict(camera=-0.1), 'must be >= 0'),
    (dict(radar=0.1), 'name one of camera, lidar'),
])
def test_modality_dropout_refuses_bad_probabilities(model_cfg, dropout, message):
    with pytest.raises(ValueError, match=message):
        build_model(dict(model_cfg, modality_dropout=dropout))


# ------------------------------------------------------------ unimodal probe
@pytest.fixture(scope='module')
def fused_checkpoint(tmp_path_factory, model_cfg):
    torch.manual_seed(3)
    fused = build_model(model_cfg)
    fused.init_weights()
    path = tmp_path_factory.mktemp('probe') / 'fused.pth'
    torch.save(dict(state_dict=fused.state_dict(), meta={}), path)
    return path, fused.state_dict()


@pytest.mark.parametrize('sensor, parts', [
    ('camera', ('img_backbone', 'img_neck', 'view_transform')),
    ('lidar', ('pts_voxel_encoder', 'pts_middle_encoder'))])
def test_probe_loads_and_freezes_the_branch(fused_checkpoint, sensor, parts):
    path, fused_state = fused_checkpoint
    cfg = load_cfg(f'configs/fuller/fuller_cpu_probe_{sensor}.py').model
    cfg.frozen_branch.checkpoint = str(path)
    torch.manual_seed(4)
    probe = build_model(cfg)
    probe.init_weights()
    state = probe.state_dict()
    branch = [k for k in state if k.split('.', 1)[0] in parts]
    assert branch and all(torch.equal(state[k], fused_state[k]) for k in branch)
    fresh = [k for k in state if k.startswith(('pts_backbone.', 'seg_head.'))
             and state[k].dim() >= 2]  # conv weights: randomly initialised
    assert fresh and all(not torch.equal(state[k], fused_state[k]) for k in fresh)
    probe.train()
    for part in parts:
        module = getattr(probe, part)
        assert not any(p.requires_grad for p in module.parameters()), part
        assert not any(m.training for m in module.modules()), f'{part} trains its BatchNorm'
    assert probe.pts_backbone.training and probe.seg_head.training
    data = probe.data_preprocessor(synthetic_batch(batch_size=2), True)
    losses = probe(**data, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is not None for p in probe.pts_backbone.parameters())
    assert all(p.grad is None for part in parts for p in getattr(probe, part).parameters())


def test_probe_without_checkpoint_says_how_to_give_it():
    probe = build_model(load_cfg('configs/fuller/fuller_cpu_probe_camera.py').model)
    with pytest.raises(ValueError, match='model.frozen_branch.checkpoint='):
        probe.init_weights()
