"""mmdet3d's CenterHead on the plugin's (C, X, Y) BEV feature."""
from typing import List, Optional, Tuple

from mmdet3d.models.dense_heads import CenterHead
from torch import Tensor

from ...registry import MODELS


@MODELS.register_module()
class BEVCenterHead(CenterHead):
    """``CenterHead`` (CenterPoint) fed the (B, C, X, Y) shared feature.

    CenterHead's targets and decoding index heatmaps as (Y, X), so the
    feature is transposed on the way in; everything else is mmdet3d's head
    (all of its arguments apply). The lightweight variant is this head with
    smaller ``share_conv_channel`` and ``common_heads`` widths
    (``head_conv``).
    """

    #: the config entry that sets ``input_grid`` (named in grid errors)
    input_grid_setting = ('bbox_head.train_cfg (grid_size / '
                          'out_size_factor)')

    @property
    def input_grid(self) -> Optional[Tuple[int, int]]:
        """(X, Y) cells of the BEV feature the targets assume (None without
        a train_cfg)."""
        cfg = self.train_cfg or {}
        if 'grid_size' not in cfg or 'out_size_factor' not in cfg:
            return None
        return tuple(int(n) // cfg['out_size_factor']
                     for n in cfg['grid_size'][:2])

    def forward(self, feats: List[Tensor]):
        if isinstance(feats, Tensor):
            feats = [feats]
        for f in feats:
            if f.shape[1] != self.in_channels:
                raise ValueError(
                    f'BEVCenterHead expects {self.in_channels} input '
                    f'channels, got {f.shape[1]}; set bbox_head.in_channels '
                    'to the pts_neck output.')
        return super().forward([f.transpose(-1, -2) for f in feats])
