"""LiDAR middle encoders that emit the plugin's (C, X, Y) BEV layout.

mmdet3d's encoders emit (C, Y, X) (rows along y); the camera branch, the
heads and the map labels of this plugin use (C, X, Y) (docs/architecture.md),
so these thin subclasses transpose the output.
"""
from mmdet3d.models.middle_encoders import PointPillarsScatter, SparseEncoder
from torch import Tensor

from ..registry import MODELS


@MODELS.register_module()
class BEVPointPillarsScatter(PointPillarsScatter):
    """mmdet3d's ``PointPillarsScatter`` with a (B, C, X, Y) output.

    Args:
        in_channels: pillar feature channels.
        output_shape: ``[ny, nx]`` as in mmdet3d (grid rows, columns).
    """

    def forward(self, voxel_features: Tensor, coors: Tensor,
                batch_size: int) -> Tensor:
        """(P, C) pillar features + (P, 4) (b, z, y, x) coords ->
        (B, C, X, Y)."""
        return super().forward(voxel_features, coors,
                               batch_size).transpose(-1, -2)


@MODELS.register_module()
class BEVSparseEncoder(SparseEncoder):
    """mmdet3d's sparse-conv ``SparseEncoder`` with a (B, C*D, X, Y) output.

    Needs a sparse-convolution backend with kernels for the device (mmcv's
    CUDA ops or spconv); mmcv has no CPU sparse-conv kernels, so on CPU use
    the pillar encoder (``BEVPointPillarsScatter``) instead.
    """

    def forward(self, voxel_features: Tensor, coors: Tensor,
                batch_size: int) -> Tensor:
        if not voxel_features.is_cuda:
            raise RuntimeError(
                'BEVSparseEncoder runs sparse 3D convolutions, which have no '
                'CPU kernels in mmcv; run on a CUDA device, or use the pillar '
                'LiDAR branch (PillarFeatureNet + BEVPointPillarsScatter, '
                'the CPU configs) on CPU.')
        return super().forward(voxel_features, coors,
                               batch_size).transpose(-1, -2)
