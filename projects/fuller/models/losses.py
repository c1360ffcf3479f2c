"""Losses of the BEV map segmentation head (``BEVSegHead``).

Both take per-class logits and binary masks on the map grid, (B, K, X, Y),
and return a scalar; the head builds them from its ``loss_focal`` /
``loss_dice`` config dicts with ``MODELS.build``.
"""
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import MODELS


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, gamma: float = 2.0,
                       alpha: float = -1.0) -> Tensor:
    """Element-wise binary focal loss on logits (no reduction).

    Args:
        logits, targets: same shape; targets in {0, 1}.
        gamma: focusing parameter.
        alpha: weight of the positives in [0, 1]; negative disables it.

    Returns:
        The loss of every element, the shape of ``logits``.
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
class BEVSegFocalLoss(nn.Module):
    """Sigmoid focal loss of a BEV map, averaged over cells, summed over
    classes (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    With :math:`p = \\sigma(z)`, :math:`p_t = p t + (1 - p)(1 - t)` and
    :math:`\\alpha_t = \\alpha t + (1 - \\alpha)(1 - t)` (1 when
    :math:`\\alpha < 0`),

    .. math::
        L = w \\sum_k \\frac{1}{B X Y} \\sum_{b, x, y}
            -\\alpha_t (1 - p_t)^\\gamma \\log p_t.

    Averaging per class keeps a class's share independent of how many
    classes the map has; ``gamma = 0`` and ``alpha < 0`` give the binary
    cross-entropy.

    Args:
        gamma: focusing parameter :math:`\\gamma` (>= 0).
        alpha: weight :math:`\\alpha` of the positives in [0, 1]; negative
            disables it (the default, as in BEVFusion's map head).
        loss_weight: :math:`w`, multiplies the loss.
    """

    def __init__(self, gamma: float = 2.0, alpha: float = -1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if gamma < 0 or alpha > 1:
            raise ValueError('BEVSegFocalLoss: gamma must be >= 0 and alpha '
                             f'<= 1 (negative: off), got gamma={gamma}, '
                             f'alpha={alpha}')
        self.gamma, self.alpha, self.loss_weight = gamma, alpha, loss_weight

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """(B, K, X, Y) logits and {0, 1} targets -> scalar loss."""
        loss = sigmoid_focal_loss(logits, targets, self.gamma, self.alpha)
        return loss.mean(dim=(0, 2, 3)).sum() * self.loss_weight

    def extra_repr(self) -> str:
        return (f'gamma={self.gamma}, alpha={self.alpha}, '
                f'loss_weight={self.loss_weight}')


@MODELS.register_module()
class BEVSegDiceLoss(nn.Module):
    """Soft Dice loss of a BEV map, summed over classes.

    .. math::
        L = w \\sum_k L_k,

    with :math:`L_k` the per-class soft Dice loss of :func:`soft_dice_loss`
    (sums over the batch and the cells, smoothing ``s``).

    Args:
        smooth: additive smoothing ``s`` (in cells, > 0).
        loss_weight: :math:`w`, multiplies the loss.
    """

    def __init__(self, smooth: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if smooth <= 0:
            raise ValueError('BEVSegDiceLoss: smooth must be > 0 (it keeps '
                             'the loss of an absent class finite), got '
                             f'{smooth}')
        self.smooth, self.loss_weight = smooth, loss_weight

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """(B, K, X, Y) logits and {0, 1} targets -> scalar loss."""
        return soft_dice_loss(logits, targets,
                              self.smooth).sum() * self.loss_weight

    def extra_repr(self) -> str:
        return f'smooth={self.smooth}, loss_weight={self.loss_weight}'
