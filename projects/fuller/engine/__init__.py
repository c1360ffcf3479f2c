"""Training-loop pieces: optimizer wrappers, hooks, runner set-up helpers."""
from .atomic_checkpoint import AtomicCheckpointHook  # noqa: F401
from .checkpoint import allow_mmengine_checkpoints
from .graceful_stop import (GracefulStopHook,  # noqa: F401
                            ResumableEpochBasedTrainLoop, TrainingStopped)
from .hooks import GradientCalibrationHook  # noqa: F401
from .optim_wrapper import FullerAmpOptimWrapper, FullerOptimWrapper  # noqa: F401

allow_mmengine_checkpoints()

__all__ = ['allow_mmengine_checkpoints']
