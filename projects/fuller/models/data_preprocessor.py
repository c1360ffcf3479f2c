"""Data preprocessor: image normalisation + batching, hard voxelisation."""
from mmdet3d.models.data_preprocessors import Det3DDataPreprocessor

from ..registry import MODELS


@MODELS.register_module()
class FullerDataPreprocessor(Det3DDataPreprocessor):
    """mmdet3d's ``Det3DDataPreprocessor`` on the plugin's input contract.

    Takes the packed inputs of docs/architecture.md (``imgs``: per sample a
    (N_cam, 3, H, W) tensor; ``points``: per sample (P, 5)) and returns
    ``imgs`` (B, N_cam, 3, H, W) normalised, ``points`` and, with
    ``voxel=True``, ``voxels`` from mmcv's hard voxelisation
    (``voxels`` (M, max_points, 5), ``num_points`` (M,), ``coors`` (M, 4) as
    ``(batch, z, y, x)``). All arguments are those of
    ``Det3DDataPreprocessor``.
    """

    def simple_process(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if 'imgs' in inputs:
            if 'img' in inputs:
                raise KeyError("inputs hold both 'imgs' and 'img'; pack the "
                               "images once, under 'imgs'.")
            # the parent class reads the images under 'img'
            data = dict(data, inputs={
                ('img' if k == 'imgs' else k): v
                for k, v in inputs.items()
            })
        return super().simple_process(data, training)
