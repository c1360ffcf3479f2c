"""LiDAR middle encoders that emit the plugin's (C, X, Y) BEV layout.

mmdet3d's encoders emit (C, Y, X) (rows along y); the camera branch, the
heads and the map labels of this plugin use (C, X, Y) (docs/architecture.md),
so these thin subclasses transpose the output. Each one also reports the
``bev_shape`` (X, Y) it will produce, computed from its configuration, so the
detector can check at build time that the LiDAR and camera grids meet.
"""
from typing import Sequence, Tuple

from mmdet3d.models.middle_encoders import PointPillarsScatter, SparseEncoder
from torch import Tensor, nn

from ..registry import MODELS


@MODELS.register_module()
class BEVPointPillarsScatter(PointPillarsScatter):
    """mmdet3d's ``PointPillarsScatter`` with a (B, C, X, Y) output.

    Args:
        in_channels: pillar feature channels.
        output_shape: ``[ny, nx]`` as in mmdet3d (grid rows, columns).
    """

    #: the config entry that sets ``bev_shape`` (named in grid errors)
    bev_shape_setting = 'pts_middle_encoder.output_shape ([ny, nx])'

    @property
    def bev_shape(self) -> Tuple[int, int]:
        """(X, Y) of the output feature."""
        return int(self.nx), int(self.ny)

    @property
    def out_channels(self) -> int:
        return int(self.in_channels)

    def forward(self, voxel_features: Tensor, coors: Tensor,
                batch_size: int) -> Tensor:
        """(P, C) pillar features + (P, 4) (b, z, y, x) coords ->
        (B, C, X, Y)."""
        return super().forward(voxel_features, coors,
                               batch_size).transpose(-1, -2)


def _triple(v) -> Tuple[int, int, int]:
    return tuple(int(x) for x in v) if isinstance(v, Sequence) else (int(v), ) * 3


def sparse_output_shape(shape: Sequence[int],
                        convs: Sequence[nn.Module]) -> Tuple[int, ...]:
    """Spatial shape after a chain of sparse 3D convolutions.

    Args:
        shape: input ``(z, y, x)`` voxel grid (mmdet3d's ``sparse_shape``).
        convs: the sparse convolution modules in forward order (mmcv's or
            spconv's ``SparseConvolution``: ``subm``, ``kernel_size``,
            ``stride``, ``padding``, ``dilation``, all in z, y, x order).

    Submanifold convolutions keep the shape; the others follow the dense
    rule ``(n + 2p - d(k - 1) - 1) // s + 1`` on each axis.
    """
    shape = tuple(int(s) for s in shape)
    for conv in convs:
        if getattr(conv, 'subm', False):
            continue
        k, s, p, d = (_triple(getattr(conv, a)) for a in
                      ('kernel_size', 'stride', 'padding', 'dilation'))
        shape = tuple((n + 2 * p_ - d_ * (k_ - 1) - 1) // s_ + 1
                      for n, k_, s_, p_, d_ in zip(shape, k, s, p, d))
    return shape


@MODELS.register_module()
class BEVSparseEncoder(SparseEncoder):
    """mmdet3d's sparse-conv ``SparseEncoder`` with a (B, C*D, X, Y) output.

    mmdet3d orders ``sparse_shape``, ``encoder_paddings`` and the kernels
    z, y, x (upstream BEVFusion's own encoder orders them x, y, z: paddings
    copied from there pad the wrong axes). ``bev_shape`` is read off the
    built convolutions, so a wrong padding is caught when the detector is
    built, not at the first step on a GPU.

    Needs a sparse-convolution backend with kernels for the device (mmcv's
    CUDA ops or spconv); mmcv has no CPU sparse-conv kernels, so on CPU use
    the pillar encoder (``BEVPointPillarsScatter``) instead. Building it works
    everywhere.
    """

    bev_shape_setting = ('pts_middle_encoder.sparse_shape / encoder_paddings '
                         '(both z, y, x in mmdet3d)')

    def _output_zyx(self) -> Tuple[int, int, int]:
        convs = [m for part in (self.conv_input, self.encoder_layers,
                                self.conv_out) for m in part.modules()
                 if hasattr(m, 'subm') and hasattr(m, 'kernel_size')]
        return sparse_output_shape(self.sparse_shape, convs)

    @property
    def bev_shape(self) -> Tuple[int, int]:
        """(X, Y) of the output feature."""
        _, ny, nx = self._output_zyx()
        return nx, ny

    @property
    def out_channels(self) -> int:
        """``output_channels`` x the z cells left (they are folded into
        channels)."""
        return int(self.output_channels) * self._output_zyx()[0]

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
