"""Small registered toy components for tests of the engine and the tools."""
from .reduced_paper import paper_model_reduced, pipeline_reduced
from .toy import DumpParametersHook, ToyFusionModel, ToyMultiTaskDataset

__all__ = [
    'ToyFusionModel', 'ToyMultiTaskDataset', 'DumpParametersHook',
    'paper_model_reduced', 'pipeline_reduced'
]
