"""Image neck that computes only the feature levels the model reads."""
from typing import List, Optional, Sequence, Tuple

import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..registry import MODELS


@MODELS.register_module()
class TopDownFPN(BaseModule):
    """FPN (lateral 1x1 convs, top-down nearest upsampling and summing,
    3x3 output convs) with output convs only for ``out_levels``.

    mmdet's ``FPN`` builds an output conv for every level; the view transform
    reads one, so the others get no gradient and DDP refuses to run without
    ``find_unused_parameters`` (a graph walk every step). Here every input
    level still feeds the top-down path (so every backbone output is used),
    but only the levels read are finished and returned. Module names follow
    mmdet's ``FPN``: with ``out_levels=(0,)`` its ``lateral_convs.*`` and
    ``fpn_convs.0`` weights load unchanged.

    Args:
        in_channels: channels of each input level (finest first).
        out_channels: channels of every output.
        out_levels: input levels whose fused maps are returned, in this
            order; the finest input (0) must be among them, as the levels
            below the lowest one read would feed nothing.
        conv_cfg, norm_cfg, act_cfg, upsample_cfg, no_norm_on_lateral: as in
            mmdet's ``FPN``.

    Forward: L tensors (B, C_i, H_i, W_i) -> tuple of (B, out_channels,
    H_l, W_l), one per ``out_levels`` entry.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 out_levels: Sequence[int] = (0, ),
                 no_norm_on_lateral: bool = False,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 upsample_cfg: dict = dict(mode='nearest'),
                 init_cfg=dict(type='Xavier', layer='Conv2d',
                               distribution='uniform')) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = out_channels
        self.out_levels = tuple(int(i) for i in out_levels)
        num = len(self.in_channels)
        if not self.out_levels or any(not 0 <= i < num
                                      for i in self.out_levels):
            raise ValueError(f'TopDownFPN: out_levels {list(out_levels)} must '
                             f'be non-empty indices of the {num} input levels.')
        if min(self.out_levels) != 0:
            raise ValueError(
                f'TopDownFPN: out_levels {list(out_levels)} skip the finest '
                'input level, which would get no gradient; drop it from '
                'img_backbone.out_indices (and in_channels) instead.')
        self.upsample_cfg = dict(upsample_cfg)
        self.lateral_convs = nn.ModuleList(
            ConvModule(c, out_channels, 1, conv_cfg=conv_cfg,
                       norm_cfg=None if no_norm_on_lateral else norm_cfg,
                       act_cfg=act_cfg, inplace=False)
            for c in self.in_channels)
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1,
                       conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg,
                       inplace=False) for _ in self.out_levels)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'TopDownFPN got {len(inputs)} levels but in_channels lists '
                f'{len(self.in_channels)}; make img_neck.in_channels match '
                'img_backbone.out_indices.')
        laterals: List[Tensor] = [
            conv(x) for conv, x in zip(self.lateral_convs, inputs)
        ]
        # top-down down to the finest level read (level 0, checked at init)
        for i in range(len(laterals) - 1, 0, -1):
            if 'scale_factor' in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:],
                                   **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + up
        return tuple(conv(laterals[level])
                     for conv, level in zip(self.fpn_convs, self.out_levels))
