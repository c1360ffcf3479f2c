"""Training-loop pieces: optimizer wrappers, hooks, runner set-up helpers."""
from .checkpoint import allow_mmengine_checkpoints
from .hooks import GradientCalibrationHook  # noqa: F401
from .optim_wrapper import FullerAmpOptimWrapper, FullerOptimWrapper  # noqa: F401

allow_mmengine_checkpoints()

__all__ = ['allow_mmengine_checkpoints']
