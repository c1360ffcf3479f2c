"""Camera/LiDAR BEV fuser."""
from typing import List, Sequence

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from ..registry import MODELS


@MODELS.register_module()
class ConvFuser(BaseModule):
    """Concatenate the modality BEV features and mix them with conv-BN-ReLU.

    Args:
        in_channels: channels of each input, in input order
            (e.g. ``[camera, lidar]``).
        out_channels: channels of the fused feature.

    Forward: list of (B, C_i, X, Y) -> (B, out_channels, X, Y).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = out_channels
        self.conv = ConvModule(
            sum(self.in_channels), out_channels, 3, padding=1, bias=False,
            norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01))

    def forward(self, feats: List[Tensor]) -> Tensor:
        got = [f.shape[1] for f in feats]
        if got != self.in_channels:
            raise ValueError(f'ConvFuser expects input channels '
                             f'{self.in_channels}, got {got}; set '
                             'fusion_layer.in_channels to the branch outputs.')
        shapes = [tuple(f.shape[-2:]) for f in feats]
        if len(set(shapes)) != 1:
            # The detector checks the grids at build time; this catches a
            # branch that does not report its grid.
            raise ValueError(
                f'ConvFuser inputs have different BEV sizes (X, Y) {shapes} '
                '(inputs in fusion_layer order: camera, LiDAR); make the '
                'camera grid (view_transform xbound/ybound/downsample) and '
                'the LiDAR grid (pts_middle_encoder output_shape, or '
                'sparse_shape/encoder_paddings) equal.')
        return self.conv(torch.cat(feats, dim=1))
