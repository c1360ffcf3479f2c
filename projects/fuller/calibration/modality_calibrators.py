"""Modality-level (intra-gradient) calibrators:
``[g_cam, g_lid, ...] -> [s_cam g_cam, s_lid g_lid, ...]``.

They see only the branch gradient norms (K,) and return one scale per branch;
see :class:`~fuller.calibration.base.BaseModalityCalibrator`.
"""
import torch
from torch import Tensor

from ..registry import CALIBRATORS
from .base import BaseModalityCalibrator


@CALIBRATORS.register_module()
class Identity(BaseModalityCalibrator):
    """Leaves every branch gradient as it is (scale 1)."""

    def _scales(self, norms: Tensor) -> Tensor:
        return torch.ones_like(norms)


@CALIBRATORS.register_module()
class EqualNorm(BaseModalityCalibrator):
    """FULLER's intra-gradient calibration: every branch gradient is rescaled
    to one common norm, so that no modality dominates the fused feature.

    Zhao et al., "FULLER: Unified Multi-modality Multi-task 3D Perception via
    Multi-level Gradient Calibration", ICCV 2023 (our reading, design.md).
    ``s_k = target / |g_k|`` with ``target`` the mean (default: the total
    magnitude ``sum_k |g_k|`` is kept), the max or the min of the norms.
    Branches with a zero gradient are left alone and do not count.

    Args:
        target: ``'mean'``, ``'max'`` or ``'min'``.
    """

    TARGETS = ('mean', 'max', 'min')

    def __init__(self, target: str = 'mean') -> None:
        if target not in self.TARGETS:
            raise ValueError(f'EqualNorm target must be one of {self.TARGETS}'
                             f', got {target!r}')
        self.target = target

    def _scales(self, norms: Tensor) -> Tensor:
        goal = getattr(norms, self.target)()
        return goal / norms

    def __repr__(self) -> str:
        return f'EqualNorm(target={self.target!r})'
