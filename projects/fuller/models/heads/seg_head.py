"""BEV map segmentation head (BEVFusion's map task)."""
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...registry import MODELS
from ..utils import bins_from_bound


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, gamma: float = 2.0,
                       alpha: float = -1.0) -> Tensor:
    """Element-wise binary focal loss on logits (no reduction).

    Args:
        logits, targets: same shape; targets in {0, 1}.
        gamma: focusing parameter.
        alpha: weight of the positives in [0, 1]; negative disables it.
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t)**gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


def soft_dice_loss(logits: Tensor, targets: Tensor,
                   smooth: float = 1.0) -> Tensor:
    """Per-class soft Dice loss on logits (Milletari et al., V-Net, 3DV 2016).

    With sigmoid probabilities :math:`p` and binary targets :math:`t`
    summed over the batch and the cells of class :math:`k`,

    .. math::
        L_k = 1 - \\frac{2 \\sum p t + s}{\\sum p + \\sum t + s}.

    It is one minus a soft overlap score (Dice, a close relative of IoU), so
    every class counts alike however few cells it covers: a thin class
    (dividers, stop lines) that the per-cell focal loss sees as a handful of
    cells among thousands gets as much of the loss as the drivable area.
    The smoothing ``s`` keeps the loss and its gradient finite where a class
    is absent from the batch (then it pushes the probabilities to 0).

    Args:
        logits, targets: (B, K, X, Y); targets in {0, 1}.
        smooth: additive smoothing ``s`` (in cells).

    Returns:
        (K,) loss per class, each in [0, 1).
    """
    prob = logits.sigmoid()
    dims = (0, 2, 3)
    overlap = (prob * targets).sum(dims)
    total = prob.sum(dims) + targets.sum(dims)
    return 1 - (2 * overlap + smooth) / (total + smooth)


@MODELS.register_module()
class BEVSegHead(BaseModule):
    """Resample the shared BEV feature to the map grid and classify cells.

    ``grid_sample`` maps the decoder feature (covering ``input_bounds``) onto
    the map grid ``output_bounds``; then conv-BN-ReLU x2 and a 1x1 conv give
    one logit per map class. The loss is a per-class sigmoid focal loss
    averaged over cells and summed over classes; predictions are sigmoid
    probabilities. The lightweight variant is the same head with a smaller
    ``mid_channels``. With ``dice_weight > 0`` a per-class soft Dice loss
    (:func:`soft_dice_loss`, summed over classes) is added as ``loss_dice``.

    Args:
        in_channels: channels of the shared BEV feature.
        classes: map class names (their order is the channel order).
        input_bounds: ``[[xmin, xmax, step], [ymin, ymax, step]]`` covered by
            the input feature (X, Y).
        output_bounds: same for the map grid.
        mid_channels: channels of the two 3x3 convs (``in_channels`` if None).
        gamma, alpha: focal loss parameters.
        loss_weight: multiplies the focal loss.
        dice_weight: multiplies the Dice loss (0: off, the paper's head).
    """

    def __init__(self,
                 in_channels: int,
                 classes: Sequence[str],
                 input_bounds: Sequence[Sequence[float]],
                 output_bounds: Sequence[Sequence[float]],
                 mid_channels: int = None,
                 gamma: float = 2.0,
                 alpha: float = -1.0,
                 loss_weight: float = 1.0,
                 dice_weight: float = 0.0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.classes = tuple(classes)
        self.gamma, self.alpha, self.loss_weight = gamma, alpha, loss_weight
        if dice_weight < 0:
            raise ValueError('BEVSegHead: dice_weight must be >= 0 (0 turns '
                             f'the Dice loss off), got {dice_weight}')
        self.dice_weight = dice_weight
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
        loss = sigmoid_focal_loss(logits, target, self.gamma, self.alpha)
        losses = dict(loss_focal=loss.mean(dim=(0, 2, 3)).sum() *
                      self.loss_weight)
        if self.dice_weight > 0:
            losses['loss_dice'] = soft_dice_loss(
                logits, target).sum() * self.dice_weight
        return losses

    def predict(self, x: Tensor, data_samples: List) -> List[Tensor]:
        """List of (num_classes, X_out, Y_out) probabilities, one a sample."""
        return list(self(x).sigmoid().unbind(0))
