"""Data preprocessor: image normalisation + batching, hard voxelisation."""
from mmdet3d.models.data_preprocessors import Det3DDataPreprocessor

from ..registry import MODELS
from .ops.voxelize import TorchHardVoxelization

VOXELIZERS = ('torch', 'mmcv')


@MODELS.register_module()
class FullerDataPreprocessor(Det3DDataPreprocessor):
    """mmdet3d's ``Det3DDataPreprocessor`` on the plugin's input contract.

    Takes the packed inputs of docs/architecture.md (``imgs``: per sample a
    (N_cam, 3, H, W) tensor; ``points``: per sample (P, 5)) and returns
    ``imgs`` (B, N_cam, 3, H, W) normalised, ``points`` and, with
    ``voxel=True``, ``voxels`` from mmcv's hard voxelisation
    (``voxels`` (M, max_points, 5), ``num_points`` (M,), ``coors`` (M, 4) as
    ``(batch, z, y, x)``, ``voxel_centers`` (M, 3)). All arguments are those
    of ``Det3DDataPreprocessor``, plus:

    Args:
        voxelizer: which hard voxeliser fills ``voxel_layer`` (with
            ``voxel=True, voxel_type='hard'``): ``'torch'`` (default,
            :class:`TorchHardVoxelization`: pure torch, the same output as
            mmcv's, 3x+ faster on CPU and free of mmcv's serial CUDA kernel)
            or ``'mmcv'`` (mmdet3d's ``VoxelizationByGridShape``, mmcv's
            compiled kernels).
    """

    def __init__(self, *args, voxelizer: str = 'torch', **kwargs):
        if voxelizer not in VOXELIZERS:
            raise ValueError(
                f"data_preprocessor.voxelizer must be one of {VOXELIZERS}, "
                f"got {voxelizer!r}")
        super().__init__(*args, **kwargs)
        self.voxelizer = voxelizer
        if self.voxel and self.voxel_type == 'hard' and voxelizer == 'torch':
            # the parent built mmdet3d's layer (it resolves grid_shape into
            # voxel_size); the torch one takes over its exact settings
            mm = self.voxel_layer
            self.voxel_layer = TorchHardVoxelization(
                voxel_size=mm.voxel_size,
                point_cloud_range=mm.point_cloud_range,
                max_num_points=mm.max_num_points, max_voxels=mm.max_voxels)

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
