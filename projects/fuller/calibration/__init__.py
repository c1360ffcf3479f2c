"""Gradient calibration (framework-free torch): calibrators and junctions."""
from .base import (BaseModalityCalibrator, BaseTaskCalibrator,
                   build_optional, combine, normalize_calibrator_cfg,
                   pairwise_dots, registered_calibrators)
from .junctions import (BaseJunction, JunctionState, ModalityJunction,
                        TaskJunction, calibrate_modalities, calibrate_tasks)
from .modality_calibrators import EqualNorm, Identity
from .task_calibrators import IMTLG, MGDA, AlignedMTL, CAGrad, PCGrad, Sum

__all__ = [
    'TaskJunction', 'ModalityJunction', 'BaseJunction', 'JunctionState',
    'calibrate_tasks', 'calibrate_modalities', 'BaseTaskCalibrator',
    'BaseModalityCalibrator', 'pairwise_dots', 'combine', 'Sum', 'IMTLG',
    'MGDA', 'PCGrad', 'CAGrad', 'AlignedMTL', 'Identity', 'EqualNorm',
    'build_optional', 'normalize_calibrator_cfg', 'registered_calibrators'
]
