"""State dicts laid out like upstream BEVFusion checkpoints, for the tests of
tools/convert_upstream_checkpoint.py.

The names and shapes are written down from the upstream modules (not from
our model): MMDetection3D ``projects/BEVFusion`` (``BEVFusionSparseEncoder``
= mmdet3d's ``SparseEncoder`` layers on an x, y, z grid, mmdet3d ``SECOND`` /
``SECONDFPN``, its ``TransFusionHead`` with mmdet's
``DetrTransformerDecoderLayer`` + ``PositionEncodingLearned`` and
``SeparateHead`` prediction heads, an ``nn.Sequential`` ``ConvFuser``) and
mit-han-lab/bevfusion (the same parts under ``encoders.lidar.backbone``,
``decoder.*``, ``heads.object`` with its own ``TransformerDecoderLayer``,
``fuser`` and ``heads.map.classifier``). Defaults are the nuScenes sizes of
both projects' configs.
"""
from collections import OrderedDict
from typing import Dict, Sequence, Tuple

import torch

Shape = Tuple[int, ...]


def _bn(prefix: str, c: int) -> Dict[str, Shape]:
    return {f'{prefix}.weight': (c, ), f'{prefix}.bias': (c, ),
            f'{prefix}.running_mean': (c, ), f'{prefix}.running_var': (c, ),
            f'{prefix}.num_batches_tracked': ()}


def sparse_encoder_spec(prefix: str, in_channels: int = 5,
                        base_channels: int = 16, out_channels: int = 128,
                        encoder_channels: Sequence[Sequence[int]] = (
                            (16, 16, 32), (32, 32, 64), (64, 64, 128),
                            (128, 128)),
                        spconv2: bool = False) -> Dict[str, Shape]:
    """The LiDAR encoder with ``block_type='basicblock'`` on an (x, y, z)
    grid; kernels ``(kx, ky, kz, C_in, C_out)`` (mmcv / MIT spconv) or
    ``(C_out, kx, ky, kz, C_in)`` (``spconv2``)."""
    def kernel(k: Shape, ci: int, co: int) -> Shape:
        return (co, *k, ci) if spconv2 else (*k, ci, co)

    spec = {f'{prefix}.conv_input.0.weight': kernel((3, 3, 3), in_channels,
                                                    base_channels)}
    spec.update(_bn(f'{prefix}.conv_input.1', base_channels))
    c_in = base_channels
    for i, blocks in enumerate(encoder_channels):
        for j, c_out in enumerate(blocks):
            p = f'{prefix}.encoder_layers.encoder_layer{i + 1}.{j}'
            if j == len(blocks) - 1 and i != len(encoder_channels) - 1:
                # strided SparseConv3d closing every stage but the last
                spec[f'{p}.0.weight'] = kernel((3, 3, 3), c_in, c_out)
                spec.update(_bn(f'{p}.1', c_out))
            else:  # SparseBasicBlock(c_out, c_out)
                for n in (1, 2):
                    spec[f'{p}.conv{n}.weight'] = kernel((3, 3, 3), c_out,
                                                         c_out)
                    spec.update(_bn(f'{p}.bn{n}', c_out))
            c_in = c_out
    # conv_out: SparseConv3d kernel (1, 1, 3) along x, y, z
    spec[f'{prefix}.conv_out.0.weight'] = kernel((1, 1, 3), c_in,
                                                 out_channels)
    spec.update(_bn(f'{prefix}.conv_out.1', out_channels))
    return spec


def second_spec(prefix: str, in_channels: int = 256,
                out_channels: Sequence[int] = (128, 256),
                layer_nums: Sequence[int] = (5, 5)) -> Dict[str, Shape]:
    """mmdet3d SECOND: per stage conv3x3-BN-ReLU, then ``layer_num`` more."""
    spec = {}
    c_in = in_channels
    for i, (c, n) in enumerate(zip(out_channels, layer_nums)):
        for j in range(n + 1):
            spec[f'{prefix}.blocks.{i}.{3 * j}.weight'] = (
                c, c_in if j == 0 else c, 3, 3)
            spec.update(_bn(f'{prefix}.blocks.{i}.{3 * j + 1}', c))
        c_in = c
    return spec


def secondfpn_spec(prefix: str, in_channels: Sequence[int] = (128, 256),
                   out_channels: Sequence[int] = (256, 256),
                   strides: Sequence[int] = (1, 2)) -> Dict[str, Shape]:
    """mmdet3d SECONDFPN, ``use_conv_for_no_stride``: a 1x1 Conv2d
    (C_out, C_in, 1, 1) at stride 1, a ConvTranspose2d (C_in, C_out, s, s)
    at stride s > 1; no biases; BN."""
    spec = {}
    for i, (ci, co, s) in enumerate(zip(in_channels, out_channels, strides)):
        spec[f'{prefix}.deblocks.{i}.0.weight'] = (
            (co, ci, 1, 1) if s == 1 else (ci, co, s, s))
        spec.update(_bn(f'{prefix}.deblocks.{i}.1', co))
    return spec


def transfusion_head_spec(prefix: str, layout: str = 'mmdet3d',
                          in_channels: int = 512, hidden: int = 128,
                          ffn: int = 256, num_classes: int = 10,
                          head_conv: int = 64,
                          num_decoder_layers: int = 1) -> Dict[str, Shape]:
    """The TransFusion head; ``layout`` 'mmdet3d' (mmdet/mmcv transformer
    bricks) or 'mit' (MIT's own decoder layer)."""
    spec = {f'{prefix}.shared_conv.weight': (hidden, in_channels, 3, 3),
            f'{prefix}.shared_conv.bias': (hidden, ),
            f'{prefix}.heatmap_head.0.conv.weight': (hidden, hidden, 3, 3)}
    spec.update(_bn(f'{prefix}.heatmap_head.0.bn', hidden))
    spec[f'{prefix}.heatmap_head.1.weight'] = (num_classes, hidden, 3, 3)
    spec[f'{prefix}.heatmap_head.1.bias'] = (num_classes, )
    spec[f'{prefix}.class_encoding.weight'] = (hidden, num_classes, 1)
    spec[f'{prefix}.class_encoding.bias'] = (hidden, )
    for d in range(num_decoder_layers):
        p = f'{prefix}.decoder.{d}'
        if layout == 'mmdet3d':
            attn = {'self_attn': f'{p}.self_attn.attn',
                    'cross': f'{p}.cross_attn.attn'}
            lin = (f'{p}.ffn.layers.0.0', f'{p}.ffn.layers.1')
            norms = [f'{p}.norms.{i}' for i in range(3)]
        else:
            attn = {'self_attn': f'{p}.self_attn',
                    'cross': f'{p}.multihead_attn'}
            lin = (f'{p}.linear1', f'{p}.linear2')
            norms = [f'{p}.norm{i + 1}' for i in range(3)]
        for a in attn.values():
            spec[f'{a}.in_proj_weight'] = (3 * hidden, hidden)
            spec[f'{a}.in_proj_bias'] = (3 * hidden, )
            spec[f'{a}.out_proj.weight'] = (hidden, hidden)
            spec[f'{a}.out_proj.bias'] = (hidden, )
        spec[f'{lin[0]}.weight'], spec[f'{lin[0]}.bias'] = (ffn, hidden), (
            ffn, )
        spec[f'{lin[1]}.weight'], spec[f'{lin[1]}.bias'] = (hidden, ffn), (
            hidden, )
        for n in norms:
            spec[f'{n}.weight'], spec[f'{n}.bias'] = (hidden, ), (hidden, )
        for pe in ('self_posembed', 'cross_posembed'):
            q = f'{p}.{pe}.position_embedding_head'
            spec[f'{q}.0.weight'], spec[f'{q}.0.bias'] = (hidden, 2, 1), (
                hidden, )
            spec.update(_bn(f'{q}.1', hidden))
            spec[f'{q}.3.weight'], spec[f'{q}.3.bias'] = (hidden, hidden,
                                                          1), (hidden, )
        heads = dict(center=2, height=1, dim=3, rot=2, vel=2,
                     heatmap=num_classes)
        for name, n in heads.items():
            h = f'{prefix}.prediction_heads.{d}.{name}'
            spec[f'{h}.0.conv.weight'] = (head_conv, hidden, 1)
            spec.update(_bn(f'{h}.0.bn', head_conv))
            spec[f'{h}.1.weight'], spec[f'{h}.1.bias'] = (n, head_conv,
                                                          1), (n, )
    return spec


def mmdet3d_lidar_spec(spconv2: bool = False) -> Dict[str, Shape]:
    """MMDetection3D's LiDAR-only BEVFusion (TransFusion) on nuScenes."""
    spec = sparse_encoder_spec('pts_middle_encoder', spconv2=spconv2)
    spec.update(second_spec('pts_backbone'))
    spec.update(secondfpn_spec('pts_neck'))
    spec.update(transfusion_head_spec('bbox_head', 'mmdet3d'))
    return spec


def lss_fpn_spec(prefix: str, in_channels: Sequence[int] = (192, 384, 768),
                 out_channels: int = 256) -> Dict[str, Shape]:
    """GeneralizedLSSFPN: per level but the coarsest, a 1x1 lateral conv on
    [level, upsampled coarser] and a 3x3 conv, both conv-BN-ReLU."""
    spec = {}
    last = len(in_channels) - 1
    for i in range(last):
        coarser = in_channels[i + 1] if i == last - 1 else out_channels
        spec[f'{prefix}.lateral_convs.{i}.conv.weight'] = (
            out_channels, in_channels[i] + coarser, 1, 1)
        spec.update(_bn(f'{prefix}.lateral_convs.{i}.bn', out_channels))
        spec[f'{prefix}.fpn_convs.{i}.conv.weight'] = (out_channels,
                                                       out_channels, 3, 3)
        spec.update(_bn(f'{prefix}.fpn_convs.{i}.bn', out_channels))
    return spec


def depth_lss_spec(prefix: str, in_channels: int = 256,
                   out_channels: int = 80, depth_bins: int = 118,
                   downsample: int = 2) -> Dict[str, Shape]:
    """DepthLSSTransform: dtransform (1->8->32->64), depthnet (in + 64 ->
    in -> in -> D + C), the stride-2 downsample stack."""
    spec = {}
    for i, (ci, co, k) in enumerate([(1, 8, 1), (8, 32, 5), (32, 64, 5)]):
        spec[f'{prefix}.dtransform.{3 * i}.weight'] = (co, ci, k, k)
        spec[f'{prefix}.dtransform.{3 * i}.bias'] = (co, )
        spec.update(_bn(f'{prefix}.dtransform.{3 * i + 1}', co))
    for i, ci in enumerate([in_channels + 64, in_channels]):
        spec[f'{prefix}.depthnet.{3 * i}.weight'] = (in_channels, ci, 3, 3)
        spec[f'{prefix}.depthnet.{3 * i}.bias'] = (in_channels, )
        spec.update(_bn(f'{prefix}.depthnet.{3 * i + 1}', in_channels))
    spec[f'{prefix}.depthnet.6.weight'] = (depth_bins + out_channels,
                                           in_channels, 1, 1)
    spec[f'{prefix}.depthnet.6.bias'] = (depth_bins + out_channels, )
    if downsample == 2:
        for i in range(3):
            spec[f'{prefix}.downsample.{3 * i}.weight'] = (
                out_channels, out_channels, 3, 3)
            spec.update(_bn(f'{prefix}.downsample.{3 * i + 1}', out_channels))
    return spec


def mit_fusion_spec(map_classes: int = 6,
                    camera_channels: int = 80) -> Dict[str, Shape]:
    """MIT bevfusion's camera+LiDAR model: camera neck and depth-aware view
    transform, LiDAR branch, fuser, decoder, detection and map heads (the
    Swin-T image backbone is left out)."""
    spec = lss_fpn_spec('encoders.camera.neck')
    spec.update(depth_lss_spec('encoders.camera.vtransform',
                               out_channels=camera_channels))
    spec.update(sparse_encoder_spec('encoders.lidar.backbone'))
    spec['fuser.0.weight'] = (256, camera_channels + 256, 3, 3)
    spec.update(_bn('fuser.1', 256))
    spec.update(second_spec('decoder.backbone'))
    spec.update(secondfpn_spec('decoder.neck'))
    spec.update(transfusion_head_spec('heads.object', 'mit'))
    spec['heads.map.classifier.0.weight'] = (512, 512, 3, 3)
    spec.update(_bn('heads.map.classifier.1', 512))
    spec['heads.map.classifier.3.weight'] = (512, 512, 3, 3)
    spec.update(_bn('heads.map.classifier.4', 512))
    spec['heads.map.classifier.6.weight'] = (map_classes, 512, 1, 1)
    spec['heads.map.classifier.6.bias'] = (map_classes, )
    return spec


def make_state_dict(spec: Dict[str, Shape],
                    seed: int = 0) -> 'OrderedDict[str, torch.Tensor]':
    """Random tensors of the spec's shapes (``num_batches_tracked`` int64,
    positive ``running_var``)."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for name, shape in spec.items():
        if name.endswith('num_batches_tracked'):
            out[name] = torch.tensor(7, dtype=torch.long)
        elif name.endswith('running_var'):
            out[name] = torch.rand(shape, generator=g) + 0.5
        else:
            out[name] = torch.randn(shape, generator=g)
    return out
