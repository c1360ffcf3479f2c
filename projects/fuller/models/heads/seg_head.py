"""BEV map segmentation head (BEVFusion's map task)."""
import difflib
import inspect
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...registry import MODELS
# the losses' functions stay importable from here (they lived here first)
from ..losses import sigmoid_focal_loss, soft_dice_loss  # noqa: F401
from ..utils import bins_from_bound


def build_seg_loss(cfg: dict, option: str) -> nn.Module:
    """Build the seg head's loss ``option`` from its config dict.

    Args:
        cfg: the loss config, ``dict(type=..., **kwargs)``.
        option: the head argument it came from (``loss_focal``,
            ``loss_dice``), named in the error.

    Returns:
        ``MODELS.build(cfg)``.

    Raises:
        ValueError: ``cfg`` names no registered type (one line, with close
            registered loss names).
    """
    type_ = cfg.get('type') if isinstance(cfg, dict) else None
    if inspect.isclass(type_) or (isinstance(type_, str)
                                  and MODELS.get(type_) is not None):
        return MODELS.build(cfg)
    losses = sorted(name for name in MODELS.module_dict
                    if name.endswith('Loss'))
    if not isinstance(type_, str):
        raise ValueError(f'BEVSegHead: {option} must be a dict with a '
                         f"registered loss 'type' (e.g. BEVSegFocalLoss, "
                         f'BEVSegDiceLoss), got {cfg!r}')
    close = difflib.get_close_matches(type_, losses, n=3)
    hint = (f'did you mean {", ".join(close)}?' if close else
            'the seg head losses: BEVSegFocalLoss, BEVSegDiceLoss')
    raise ValueError(f'BEVSegHead: {option} type {type_!r} is not a '
                     f'registered loss ({hint})')


@MODELS.register_module()
class BEVSegHead(BaseModule):
    """Resample the shared BEV feature to the map grid and classify cells.

    ``grid_sample`` maps the decoder feature (covering ``input_bounds``) onto
    the map grid ``output_bounds``; then conv-BN-ReLU x2 and a 1x1 conv give
    one logit per map class. The losses come from config dicts built with
    ``MODELS.build``: ``loss_focal`` (default :class:`BEVSegFocalLoss`, a
    per-class sigmoid focal loss averaged over cells and summed over
    classes, logged as ``loss_focal``) and the optional ``loss_dice``
    (:class:`BEVSegDiceLoss`, a per-class soft Dice loss summed over
    classes, logged as ``loss_dice`` when its ``loss_weight`` is > 0).
    Predictions are sigmoid probabilities. The lightweight variant is the
    same head with a smaller ``mid_channels``.

    Args:
        in_channels: channels of the shared BEV feature.
        classes: map class names (their order is the channel order).
        input_bounds: ``[[xmin, xmax, step], [ymin, ymax, step]]`` covered by
            the input feature (X, Y).
        output_bounds: same for the map grid.
        mid_channels: channels of the two 3x3 convs (``in_channels`` if None).
        loss_focal: config of the focal loss; called with (B, K, X_out,
            Y_out) float32 logits and targets, returns a scalar.
        loss_dice: config of the Dice term, called likewise; None or a
            ``loss_weight`` of 0 turns it off (the paper's head).
    """

    def __init__(self,
                 in_channels: int,
                 classes: Sequence[str],
                 input_bounds: Sequence[Sequence[float]],
                 output_bounds: Sequence[Sequence[float]],
                 mid_channels: Optional[int] = None,
                 loss_focal: dict = dict(
                     type='BEVSegFocalLoss', gamma=2.0, alpha=-1.0,
                     loss_weight=1.0),
                 loss_dice: Optional[dict] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.classes = tuple(classes)
        self.loss_focal = build_seg_loss(loss_focal, 'loss_focal')
        self.loss_dice = (build_seg_loss(loss_dice, 'loss_dice')
                          if loss_dice is not None else None)
        dice_weight = (getattr(self.loss_dice, 'loss_weight', 1.0)
                       if self.loss_dice is not None else 0.0)
        if dice_weight < 0:
            raise ValueError('BEVSegHead: loss_dice.loss_weight must be >= 0 '
                             f'(0 turns the Dice loss off), got {dice_weight}')
        #: whether ``loss`` adds ``loss_dice``
        self.with_dice = dice_weight > 0
        self.output_shape = tuple(bins_from_bound(b) for b in output_bounds)
        self.input_grid = tuple(bins_from_bound(b) for b in input_bounds)
        self.register_buffer(
            'grid', self._make_grid(input_bounds, output_bounds),
            persistent=False)
        mid = mid_channels or in_channels
        norm = dict(type='BN')
        self.convs = nn.Sequential(
            ConvModule(in_channels, mid, 3, padding=1, bias=False,
                       norm_cfg=norm),
            ConvModule(mid, mid, 3, padding=1, bias=False, norm_cfg=norm))
        self.cls = nn.Conv2d(mid, len(self.classes), 1)

    #: the config entry that sets ``input_grid`` (named in grid errors)
    input_grid_setting = 'seg_head.input_bounds'

    @staticmethod
    def _make_grid(input_bounds, output_bounds) -> Tensor:
        """(1, X_out, Y_out, 2) ``grid_sample`` grid; the input is laid out
        (X, Y) = (rows, columns), so the last dim holds (y, x) normalised."""
        axes = []
        for (imin, imax, _), (omin, omax, ostep) in zip(input_bounds,
                                                        output_bounds):
            centres = torch.arange(omin + ostep / 2, omax, ostep)
            axes.append((centres - imin) / (imax - imin) * 2 - 1)
        gx, gy = torch.meshgrid(axes[0], axes[1], indexing='ij')
        return torch.stack([gy, gx], dim=-1).unsqueeze(0)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, X, Y) feature -> (B, num_classes, X_out, Y_out) logits."""
        if x.shape[1] != self.in_channels:
            raise ValueError(f'BEVSegHead expects {self.in_channels} input '
                             f'channels, got {x.shape[1]}; set '
                             'seg_head.in_channels to the pts_neck output.')
        # The resample runs in float32 even under autocast: half-precision
        # grid coordinates are off by a tenth of a cell on a 180-cell grid,
        # and CPU grid_sample is very slow in bfloat16/float16.
        with torch.autocast(x.device.type, enabled=False):
            x = x.to(torch.promote_types(x.dtype, torch.float32))
            grid = self.grid.expand(x.shape[0], -1, -1, -1).to(x.dtype)
            x = F.grid_sample(x, grid, mode='bilinear', align_corners=False)
        return self.cls(self.convs(x))

    def loss(self, x: Tensor, data_samples: List) -> Dict[str, Tensor]:
        """``loss_focal`` (and ``loss_dice``) of (B, C, X, Y) features
        against each sample's (num_classes, X_out, Y_out) ``gt_masks_bev``;
        both are taken on float32 logits, also under autocast."""
        logits = self(x)
        target = torch.stack([
            torch.as_tensor(ds.gt_masks_bev) for ds in data_samples
        ]).to(logits.device, logits.dtype)
        if target.shape[1:] != logits.shape[1:]:
            raise ValueError(
                f'gt_masks_bev has shape {tuple(target.shape[1:])} but the '
                f'seg head predicts {tuple(logits.shape[1:])}; make the '
                'dataset map grid/classes equal seg_head.output_bounds/'
                'classes.')
        logits, target = logits.float(), target.float()
        losses = dict(loss_focal=self.loss_focal(logits, target))
        if self.with_dice:
            losses['loss_dice'] = self.loss_dice(logits, target)
        return losses

    def predict(self, x: Tensor, data_samples: List) -> List[Tensor]:
        """List of (num_classes, X_out, Y_out) probabilities, one a sample."""
        return list(self(x).sigmoid().unbind(0))
