"""BEV pooling: sum-pool frustum point features into a dense BEV grid.

The upstream BEVFusion kernel is CUDA-only. This one is pure torch: every
point gets the flat rank of its voxel and the features are accumulated with
``index_add`` along the point axis of a channel-first (C, N) view, whose
autograd backward is a gather of the output gradient. Points outside the grid
go to one extra "trash" cell that is cut off, so no masked copy of the
(large) feature tensor is made. The same code runs on CPU tensors and,
unchanged, on CUDA tensors (where ``index_add`` is a native atomic-add
kernel), so there is no compiled extension to build.
"""
from typing import Sequence

import torch
from torch import Tensor


def _check_inputs(feats: Tensor, coords: Tensor,
                  grid_shape: Sequence[int]) -> None:
    if feats.dim() != 2:
        raise ValueError('bev_pool: feats must be (N, C), got shape '
                         f'{tuple(feats.shape)}; flatten the frustum first.')
    if coords.dim() != 2 or coords.shape[1] != 4 or \
            coords.shape[0] != feats.shape[0]:
        raise ValueError('bev_pool: coords must be (N, 4) integer '
                         '(batch, x, y, z) indices, one row per feature row; '
                         f'got {tuple(coords.shape)} for feats '
                         f'{tuple(feats.shape)}.')
    if coords.dtype.is_floating_point:
        raise TypeError('bev_pool: coords must be an integer tensor (voxel '
                        f'indices), got {coords.dtype}; use .long().')
    if len(grid_shape) != 3:
        raise ValueError('bev_pool: grid_shape must be (Z, X, Y), got '
                         f'{tuple(grid_shape)}.')


def _inside(coords: Tensor, batch_size: int, nz: int, nx: int,
            ny: int) -> Tensor:
    """(N,) mask of the coords rows that lie inside the grid."""
    upper = coords.new_tensor([batch_size, nx, ny, nz])
    return ((coords >= 0) & (coords < upper)).all(dim=1)


def bev_pool(feats: Tensor, coords: Tensor, batch_size: int,
             grid_shape: Sequence[int]) -> Tensor:
    """Sum the features of all points that fall into the same voxel.

    Args:
        feats: (N, C) point features. Fastest when it is the transpose of a
            contiguous (C, N) tensor (what :class:`LSSTransform` passes).
        coords: (N, 4) integer voxel indices ``(batch, x, y, z)``; rows
            outside ``[0, batch_size) x [0, X) x [0, Y) x [0, Z)`` are
            ignored.
        batch_size: B.
        grid_shape: ``(Z, X, Y)``, the number of voxels along z, x and y.

    Returns:
        (B, C, Z, X, Y) pooled features (zeros where no point fell), summed
        in at least float32: half-precision features (autocast) are
        accumulated and returned in float32, as sums of many points overflow
        float16.
    """
    _check_inputs(feats, coords, grid_shape)
    nz, nx, ny = (int(s) for s in grid_shape)
    num_cells = batch_size * nz * nx * ny
    coords = coords.long()
    # Flat voxel rank in (B, Z, X, Y) order; out-of-grid rows -> trash cell.
    rank = ((coords[:, 0] * nz + coords[:, 3]) * nx + coords[:, 1]) * ny \
        + coords[:, 2]
    rank = rank.masked_fill(~_inside(coords, batch_size, nz, nx, ny),
                            num_cells)
    # (C, N); .to keeps the transposed layout (the fast one for index_add)
    src = feats.t().to(torch.promote_types(feats.dtype, torch.float32))
    out = src.new_zeros((src.shape[0], num_cells + 1))
    out = out.index_add(1, rank, src)[:, :num_cells]
    out = out.view(-1, batch_size, nz, nx, ny)
    return out.permute(1, 0, 2, 3, 4).contiguous()


def bev_pool_reference(feats: Tensor, coords: Tensor, batch_size: int,
                       grid_shape: Sequence[int]) -> Tensor:
    """Naive per-point loop with the same contract as :func:`bev_pool`.

    Slow by design: the ground truth for tests and the baseline of
    ``tools/benchmark_bev_pool.py``.
    """
    _check_inputs(feats, coords, grid_shape)
    nz, nx, ny = (int(s) for s in grid_shape)
    out = feats.new_zeros((batch_size, feats.shape[1], nz, nx, ny))
    for i in range(feats.shape[0]):
        b, x, y, z = (int(v) for v in coords[i])
        if 0 <= b < batch_size and 0 <= x < nx and 0 <= y < ny and \
                0 <= z < nz:
            out[b, :, z, x, y] = out[b, :, z, x, y] + feats[i]
    return out


__all__ = ['bev_pool', 'bev_pool_reference']
