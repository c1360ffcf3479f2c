"""tools/convert_upstream_checkpoint.py on state dicts laid out like the
upstream BEVFusion checkpoints (issue 13, item 5)."""
import os.path as osp
import runpy

import pytest
import torch
from mmengine.config import Config

from fuller.models.upstream_checkpoint import convert_state_dict, rename
from fuller.registry import MODELS
from fuller.testing.upstream_layouts import (make_state_dict,
                                             mit_fusion_spec,
                                             mmdet3d_lidar_spec)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
LIDAR_PARTS = ('pts_middle_encoder.', 'pts_backbone.', 'pts_neck.',
               'bbox_head.')


@pytest.fixture(scope='module')
def lidar_model():
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO,
                                   'configs/recipe/nus_stage1_lidar_det.py'))
    return MODELS.build(cfg.model)


def test_mmdet3d_lidar_checkpoint_loads_completely(lidar_model):
    src = make_state_dict(mmdet3d_lidar_spec())
    out, report = convert_state_dict(src, lidar_model, 'mmdet3d')
    assert report['skipped'] == {}
    assert [k for k in report['left_at_init']
            if k.startswith(LIDAR_PARTS)] == []
    assert len(out) == len(src)
    # every tensor of the model comes from the checkpoint: a strict load
    lidar_model.load_state_dict(out, strict=True)
    # renamed, not reshaped
    key = 'bbox_head.decoder.0.ffn.layers.1.weight'
    assert torch.equal(out[rename(key, 'mmdet3d')], src[key])
    # the sparse kernels: upstream (kx, ky, kz, Ci, Co) -> ours (kz, ky, kx)
    w = src['pts_middle_encoder.conv_out.0.weight']  # (1, 1, 3, 128, 128)
    ours = out['pts_middle_encoder.conv_out.0.weight']
    assert tuple(w.shape[:3]) == (1, 1, 3) and tuple(ours.shape[:3]) == (
        3, 1, 1)
    w = src['pts_middle_encoder.conv_input.0.weight']
    ours = out['pts_middle_encoder.conv_input.0.weight']
    for kx, ky, kz in [(0, 1, 2), (2, 0, 1), (1, 2, 0)]:
        assert torch.equal(ours[kz, ky, kx], w[kx, ky, kz])
    assert len(report['permuted']) == sum(
        1 for k, v in src.items() if v.dim() == 5)


def test_spconv2_kernels_give_the_same_weights(lidar_model):
    mmcv_src = make_state_dict(mmdet3d_lidar_spec())
    spconv2_src = make_state_dict(mmdet3d_lidar_spec(spconv2=True))
    # the same kernels in spconv 2's (Co, kx, ky, kz, Ci) layout
    for k, v in mmcv_src.items():
        if v.dim() == 5:
            spconv2_src[k] = v.permute(4, 0, 1, 2, 3).contiguous()
        else:
            spconv2_src[k] = v
    a, _ = convert_state_dict(mmcv_src, lidar_model, 'mmdet3d')
    b, report = convert_state_dict(spconv2_src, lidar_model, 'mmdet3d')
    assert set(report['permuted'].values()) == {'spconv2'}
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mit_fusion_checkpoint_loads_into_the_multitask_model():
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO, 'configs/recipe/nus_stage2_naive.py'))
    model = MODELS.build(cfg.model)
    src = make_state_dict(mit_fusion_spec())
    out, report = convert_state_dict(src, model, 'mit')
    assert report['skipped'] == {}
    parts = LIDAR_PARTS + ('fusion_layer.', 'seg_head.', 'img_neck.',
                           'view_transform.')
    assert [k for k in report['left_at_init'] if k.startswith(parts)] == []
    assert torch.equal(out['seg_head.cls.weight'],
                       src['heads.map.classifier.6.weight'])
    assert torch.equal(out['bbox_head.decoder.0.cross_attn.in_proj_weight'],
                       src['heads.object.decoder.0.multihead_attn.'
                           'in_proj_weight'])


def test_cli_writes_report_and_never_overwrites(tmp_path, capsys):
    src = tmp_path / 'upstream.pth'
    torch.save(dict(state_dict=make_state_dict(mmdet3d_lidar_spec()),
                    meta=dict(epoch=20)), src)
    dst = tmp_path / 'ours.pth'
    tool = osp.join(REPO, 'tools', 'convert_upstream_checkpoint.py')
    main = runpy.run_path(tool)['main']
    assert main([str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert 'mmdet3d layout' in out and 'left at init: 0 tensors' in out
    assert 'sparse kernels reordered' in out
    saved = torch.load(dst, map_location='cpu', weights_only=False)
    assert saved['meta']['source'] == 'mmdet3d'
    assert 'pts_middle_encoder.conv_out.0.weight' in saved['state_dict']
    with pytest.raises(SystemExit) as exc:
        main([str(src), str(dst)])
    assert exc.value.code == 2
    assert 'never overwritten' in capsys.readouterr().err
