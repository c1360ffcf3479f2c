"""Small registered toy components and helpers for tests of the engine and
the tools."""
from .interrupts import BlockingLocalBackend, SignalAtIterHook
from .reduced_paper import paper_model_reduced, pipeline_reduced
from .toy import DumpParametersHook, ToyFusionModel, ToyMultiTaskDataset

__all__ = [
    'ToyFusionModel', 'ToyMultiTaskDataset', 'DumpParametersHook',
    'SignalAtIterHook', 'BlockingLocalBackend', 'paper_model_reduced',
    'pipeline_reduced'
]
