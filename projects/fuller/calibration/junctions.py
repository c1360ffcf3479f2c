"""Autograd junctions: identity in the forward pass, calibration in backward.

PLACEHOLDER INTERFACE (to be completed by the calibration work): the module
signatures below are the contract the models rely on.
"""
from typing import Dict, List, Sequence

from torch import Tensor, nn


class TaskJunction(nn.Module):
    """Fans the shared BEV feature out to one identical copy per task head.

    Args:
        tasks: task names, e.g. ``('det', 'seg')``.

    Forward: ``z`` (B, C, H, W) -> ``{task: z}`` (each (B, C, H, W)).
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.calibrator = None  # armed by FullerOptimWrapper

    def forward(self, z: Tensor) -> Dict[str, Tensor]:
        return {t: z for t in self.tasks}


class ModalityJunction(nn.Module):
    """Passes the per-modality BEV features on to the fuser unchanged.

    Args:
        modalities: modality names, e.g. ``('camera', 'lidar')``.

    Forward: list of (B, C_m, H, W) features -> the same list.
    """

    def __init__(self, modalities: Sequence[str]) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.calibrator = None  # armed by FullerOptimWrapper

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        return list(feats)
