"""Mapping of upstream BEVFusion checkpoints onto FullerBEVFusion.

Two upstream layouts are understood:

- ``mmdet3d``: MMDetection3D's ``projects/BEVFusion`` (LiDAR-only TransFusion
  or the camera+LiDAR model). Its top-level names are ours already
  (``pts_middle_encoder``, ``pts_backbone``, ``pts_neck``, ``fusion_layer``,
  ``bbox_head``, ``img_backbone``, ``img_neck``, ``view_transform``); the
  detection head's decoder is built from mmcv/mmdet transformer bricks
  (``self_attn.attn``, ``ffn.layers``, ``self_posembed``), the fuser is a
  plain ``nn.Sequential``.
- ``mit``: mit-han-lab/bevfusion (``encoders.camera.{backbone,neck,
  vtransform}``, ``encoders.lidar.backbone``, ``fuser``,
  ``decoder.{backbone,neck}``, ``heads.{object,map}``) with its own decoder
  layer (``multihead_attn``, ``linear1/2``, ``norm1..3``) and map head
  (``classifier``).

Sparse convolution kernels: upstream's LiDAR encoder orders its voxel grid
x, y, z; ours (mmdet3d's ``SparseEncoder``) z, y, x. A kernel is stored as
``(k0, k1, k2, C_in, C_out)`` by mmcv's (and MIT's) sparse convolutions, and
as ``(C_out, k0, k1, k2, C_in)`` by spconv 2, with ``k0..k2`` along the
grid's axes in order. Converted kernels are written in the mmcv layout, z, y,
x order (``ours[kz, ky, kx] = upstream[kx, ky, kz]``), and without spconv-2
metadata, so mmdet3d's loader turns them into spconv 2's layout itself when
that backend is in use.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from torch import Tensor, nn

SOURCES = ('mmdet3d', 'mit')

# (pattern, replacement) applied in order with re.sub, anchored at the start
_HEAD_DECODER_MMDET3D = [
    (r'^bbox_head\.prediction_heads\.', 'bbox_head.pred_heads.'),
    (r'^(bbox_head\.decoder\.\d+)\.self_attn\.attn\.', r'\1.self_attn.'),
    (r'^(bbox_head\.decoder\.\d+)\.cross_attn\.attn\.', r'\1.cross_attn.'),
    (r'^(bbox_head\.decoder\.\d+)\.ffn\.layers\.0\.0\.', r'\1.ffn.0.'),
    (r'^(bbox_head\.decoder\.\d+)\.ffn\.layers\.1\.', r'\1.ffn.3.'),
    (r'^(bbox_head\.decoder\.\d+)\.self_posembed\.position_embedding_head\.',
     r'\1.query_pos.'),
    (r'^(bbox_head\.decoder\.\d+)\.cross_posembed\.position_embedding_head\.',
     r'\1.key_pos.'),
]
_FUSER = [
    (r'^fusion_layer\.0\.', 'fusion_layer.conv.conv.'),
    (r'^fusion_layer\.1\.', 'fusion_layer.conv.bn.'),
]
RULES: Dict[str, List[Tuple[str, str]]] = {
    'mmdet3d': _HEAD_DECODER_MMDET3D + _FUSER,
    'mit': [
        (r'^encoders\.camera\.backbone\.', 'img_backbone.'),
        (r'^encoders\.camera\.neck\.', 'img_neck.'),
        (r'^encoders\.camera\.vtransform\.', 'view_transform.'),
        (r'^encoders\.lidar\.backbone\.', 'pts_middle_encoder.'),
        (r'^fuser\.', 'fusion_layer.'),
        (r'^decoder\.backbone\.', 'pts_backbone.'),
        (r'^decoder\.neck\.', 'pts_neck.'),
        (r'^heads\.object\.', 'bbox_head.'),
        (r'^heads\.map\.classifier\.0\.', 'seg_head.convs.0.conv.'),
        (r'^heads\.map\.classifier\.1\.', 'seg_head.convs.0.bn.'),
        (r'^heads\.map\.classifier\.3\.', 'seg_head.convs.1.conv.'),
        (r'^heads\.map\.classifier\.4\.', 'seg_head.convs.1.bn.'),
        (r'^heads\.map\.classifier\.6\.', 'seg_head.cls.'),
        (r'^bbox_head\.prediction_heads\.', 'bbox_head.pred_heads.'),
        (r'^(bbox_head\.decoder\.\d+)\.multihead_attn\.', r'\1.cross_attn.'),
        (r'^(bbox_head\.decoder\.\d+)\.linear1\.', r'\1.ffn.0.'),
        (r'^(bbox_head\.decoder\.\d+)\.linear2\.', r'\1.ffn.3.'),
        (r'^(bbox_head\.decoder\.\d+)\.norm1\.', r'\1.norms.0.'),
        (r'^(bbox_head\.decoder\.\d+)\.norm2\.', r'\1.norms.1.'),
        (r'^(bbox_head\.decoder\.\d+)\.norm3\.', r'\1.norms.2.'),
        (r'^(bbox_head\.decoder\.\d+)\.self_posembed\.position_embedding_head'
         r'\.', r'\1.query_pos.'),
        (r'^(bbox_head\.decoder\.\d+)\.cross_posembed\.position_embedding_head'
         r'\.', r'\1.key_pos.'),
    ] + _FUSER,
}
#: our module whose 5-D kernels are upstream's x, y, z sparse kernels
SPARSE_PREFIX = 'pts_middle_encoder.'


def guess_source(state: Dict[str, Tensor]) -> str:
    """'mit' when the keys use MIT's top-level names, else 'mmdet3d'."""
    mit = ('encoders.', 'fuser.', 'heads.', 'decoder.backbone.')
    return 'mit' if any(k.startswith(mit) for k in state) else 'mmdet3d'


def rename(key: str, source: str) -> str:
    """Our name of an upstream parameter/buffer name."""
    for pattern, repl in RULES[source]:
        key = re.sub(pattern, repl, key)
    return key


def _is_spconv2(module: nn.Module) -> bool:
    return type(module).__module__.startswith('spconv')


def _sparse_candidates(w: Tensor) -> Dict[str, Tensor]:
    """An upstream (x, y, z) kernel as our mmcv-layout (z, y, x) kernel,
    read either as mmcv's ``(kx, ky, kz, Ci, Co)`` or spconv 2's
    ``(Co, kx, ky, kz, Ci)``."""
    return {'mmcv': w.permute(2, 1, 0, 3, 4).contiguous(),
            'spconv2': w.permute(3, 2, 1, 4, 0).contiguous()}


def convert_state_dict(
        state: Dict[str, Tensor], model: nn.Module, source: str,
        metadata: Optional[dict] = None
) -> Tuple['OrderedDict[str, Tensor]', dict]:
    """Upstream ``state`` -> a state dict of ``model`` (only what fits).

    Args:
        state: upstream state dict (``checkpoint['state_dict']``).
        model: our model built from the config the weights are meant for.
        source: 'mmdet3d' or 'mit'.
        metadata: the upstream state dict's ``_metadata`` (module versions;
            spconv 2 modules saved with version 2 store spconv 2 kernels).

    Returns:
        (converted, report): ``report`` has ``loaded`` (our keys),
        ``left_at_init`` (our keys with nothing from upstream),
        ``skipped`` (upstream key -> why) and ``permuted`` (sparse kernels
        reordered, our key -> layout read).
    """
    if source not in SOURCES:
        raise ValueError(f'source must be one of {SOURCES}, got {source!r}')
    ours = model.state_dict()
    owners = {name + '.weight': mod for name, mod in model.named_modules()}
    metadata = metadata or {}
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    skipped: Dict[str, str] = {}
    permuted: Dict[str, str] = {}
    for key, value in state.items():
        new = rename(key, source)
        if new not in ours:
            skipped[key] = 'no such parameter in our model'
            continue
        target = ours[new]
        if (new.startswith(SPARSE_PREFIX) and value.dim() == 5
                and target.dim() == 5):
            owner = owners.get(new)
            want = tuple(target.shape)
            if owner is not None and _is_spconv2(owner):
                want = want[1:] + want[:1]  # (Co, k, k, k, Ci) -> mmcv
            fits = {layout: w for layout, w in
                    _sparse_candidates(value).items()
                    if tuple(w.shape) == want}
            if not fits:
                skipped[key] = (f'sparse kernel {tuple(value.shape)} fits '
                                f'neither layout of our {want} (mmcv)')
                continue
            layout = next(iter(fits))
            if len(fits) > 1:  # square shapes: trust the module version
                module_key = key.rsplit('.', 1)[0]
                version = (metadata.get(module_key) or {}).get('version')
                layout = 'spconv2' if version == 2 else 'mmcv'
            out[new] = fits[layout]
            permuted[new] = layout
            continue
        if tuple(value.shape) != tuple(target.shape):
            skipped[key] = (f'shape {tuple(value.shape)} vs ours '
                            f'{tuple(target.shape)}')
            continue
        out[new] = value.to(target.dtype)
    report = dict(loaded=sorted(out),
                  left_at_init=sorted(k for k in ours if k not in out),
                  skipped=skipped, permuted=permuted)
    return out, report


def _group(keys) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for k in keys:
        top = k.split('.', 1)[0]
        counts[top] = counts.get(top, 0) + 1
    return counts


def format_report(report: dict, verbose: bool = False) -> str:
    """Human-readable summary: per top-level module, how many tensors were
    loaded / left at init / skipped (every key with ``verbose``)."""
    lines = []
    for title, keys in (('loaded', report['loaded']),
                        ('left at init', report['left_at_init']),
                        ('skipped (upstream)', list(report['skipped']))):
        groups = _group(keys)
        summary = ', '.join(f'{m} {n}' for m, n in sorted(groups.items()))
        lines.append(f'{title}: {len(keys)} tensors'
                     + (f' ({summary})' if summary else ''))
        if verbose and title == 'left at init':
            lines += [f'    {k}' for k in keys]
    if report['permuted']:
        lines.append(f'sparse kernels reordered x,y,z -> z,y,x: '
                     f'{len(report["permuted"])}')
    if verbose:
        lines += [f'    skipped {k}: {why}'
                  for k, why in report['skipped'].items()]
    else:
        reasons: Dict[str, int] = {}
        for why in report['skipped'].values():
            reason = 'shape mismatch' if why.startswith(
                ('shape', 'sparse')) else why
            reasons[reason] = reasons.get(reason, 0) + 1
        lines += [f'    skipped because {r}: {n}' for r, n in reasons.items()]
    return '\n'.join(lines)
