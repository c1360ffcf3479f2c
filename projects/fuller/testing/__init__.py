"""Small registered toy components for tests of the engine and the tools."""
from .toy import DumpParametersHook, ToyFusionModel, ToyMultiTaskDataset

__all__ = ['ToyFusionModel', 'ToyMultiTaskDataset', 'DumpParametersHook']
