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
from typing import Sequence, Tuple

import torch
from torch import Tensor


def _check_inputs(feats: Tensor, coords: Tensor,
                  grid_shape: Sequence[int]) -> None:
    if feats.dim() != 2:
        raise ValueError('bev_pool: feats must be (N, C), got shape '
                         f'{tuple(feats.shape)}; flatten the frustum first.')
    _check_coords('bev_pool', coords, feats.shape[0],
                  f'one row per feature row; feats {tuple(feats.shape)}',
                  grid_shape)


def _check_coords(fn: str, coords: Tensor, rows: int, what: str,
                  grid_shape: Sequence[int]) -> None:
    if coords.dim() != 2 or coords.shape[1] != 4 or coords.shape[0] != rows:
        raise ValueError(f'{fn}: coords must be (N, 4) integer (batch, x, '
                         f'y, z) indices, {what}; got {tuple(coords.shape)}.')
    if coords.dtype.is_floating_point:
        raise TypeError(f'{fn}: coords must be an integer tensor (voxel '
                        f'indices), got {coords.dtype}; use .long().')
    if len(grid_shape) != 3:
        raise ValueError(f'{fn}: grid_shape must be (Z, X, Y), got '
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
    rank, num_cells = _flat_rank(coords, batch_size, grid_shape)
    # (C, N); .to keeps the transposed layout (the fast one for index_add)
    src = feats.t().to(torch.promote_types(feats.dtype, torch.float32))
    out = src.new_zeros((src.shape[0], num_cells + 1))
    out = out.index_add(1, rank, src)[:, :num_cells]
    return _to_bev(out, batch_size, grid_shape)


def _flat_rank(coords: Tensor, batch_size: int,
               grid_shape: Sequence[int]) -> Tuple[Tensor, int]:
    """(N,) flat voxel rank of each coords row in (B, Z, X, Y) order, the
    rows outside the grid sent to one trash cell; and the number of cells
    (the trash cell's rank)."""
    nz, nx, ny = (int(s) for s in grid_shape)
    num_cells = batch_size * nz * nx * ny
    coords = coords.long()
    rank = ((coords[:, 0] * nz + coords[:, 3]) * nx + coords[:, 1]) * ny \
        + coords[:, 2]
    rank = rank.masked_fill(~_inside(coords, batch_size, nz, nx, ny),
                            num_cells)
    return rank, num_cells


def _to_bev(out: Tensor, batch_size: int,
            grid_shape: Sequence[int]) -> Tensor:
    """(C, B*Z*X*Y) sums -> (B, C, Z, X, Y)."""
    out = out.reshape(-1, batch_size, *(int(s) for s in grid_shape))
    return out.permute(1, 0, 2, 3, 4).contiguous()


class _LiftPool(torch.autograd.Function):
    """Forward and backward of :func:`lift_pool`, a chunk of depth bins at
    a time (see there)."""

    @staticmethod
    def forward(ctx, feats: Tensor, depth: Tensor, rank: Tensor,
                num_cells: int, bins_per_chunk: int) -> Tensor:
        c, m, h, w = feats.shape
        dtype = torch.promote_types(
            torch.promote_types(feats.dtype, depth.dtype), torch.float32)
        out = feats.new_zeros((c, num_cells + 1), dtype=dtype)
        rank = rank.view(m, -1, h * w)
        f = feats.to(dtype).unsqueeze(2)  # once: feats may be half (amp)
        for d0 in range(0, depth.shape[1], bins_per_chunk):
            d1 = min(d0 + bins_per_chunk, depth.shape[1])
            piece = f * depth[:, d0:d1].unsqueeze(0).to(dtype)
            out.index_add_(1, rank[:, d0:d1].reshape(-1),
                           piece.view(c, -1))
        ctx.save_for_backward(feats, depth, rank)
        ctx.bins_per_chunk = bins_per_chunk
        return out[:, :num_cells]

    @staticmethod
    def backward(ctx, grad: Tensor):
        feats, depth, rank = ctx.saved_tensors
        c, m, h, w = feats.shape
        dtype = grad.dtype
        # the trash cell's gradient is zero
        grad = torch.cat([grad, grad.new_zeros((c, 1))], dim=1)
        grad_feats = feats.new_zeros(feats.shape, dtype=dtype) \
            if ctx.needs_input_grad[0] else None
        grad_depth = depth.new_empty(depth.shape, dtype=dtype) \
            if ctx.needs_input_grad[1] else None
        f = feats.to(dtype).unsqueeze(2)
        for d0 in range(0, depth.shape[1], ctx.bins_per_chunk):
            d1 = min(d0 + ctx.bins_per_chunk, depth.shape[1])
            g = grad[:, rank[:, d0:d1].reshape(-1)].view(c, m, d1 - d0, h, w)
            if grad_feats is not None:
                grad_feats += (g * depth[:, d0:d1].to(dtype).unsqueeze(0)
                               ).sum(dim=2)
            if grad_depth is not None:
                grad_depth[:, d0:d1] = (g * f).sum(dim=0)
        return (None if grad_feats is None else grad_feats.to(feats.dtype),
                None if grad_depth is None else grad_depth.to(depth.dtype),
                None, None, None)


def lift_pool(feats: Tensor, depth: Tensor, coords: Tensor, batch_size: int,
              grid_shape: Sequence[int],
              max_chunk_elements: int = 1 << 25) -> Tensor:
    """LSS lift and BEV pooling in one step, without the lifted tensor.

    Equal to ``bev_pool(lifted.view(C, -1).t(), coords, ...)`` with
    ``lifted = feats.unsqueeze(2) * depth.unsqueeze(0)`` (C, M, D, H, W),
    but the products are formed and summed a few depth bins at a time, in
    the forward pass and in the backward pass (where the gradient of each
    product is gathered from the BEV gradient per chunk). At the paper's
    sizes (80 channels x 24 images x 118 bins x 32x88 at batch 4) the
    lifted tensor alone is 2.55 GB in float32; here no piece exceeds
    ``max_chunk_elements`` values.

    Args:
        feats: (C, M, H, W) context features, channel-first, M = B * N
            images.
        depth: (M, D, H, W) depth distribution of every pixel.
        coords: (M * D * H * W, 4) integer ``(batch, x, y, z)`` voxel
            indices of the frustum points in (M, D, H, W) order; rows
            outside the grid are ignored.
        batch_size: B.
        grid_shape: ``(Z, X, Y)``.
        max_chunk_elements: the most values a chunk of products may hold.

    Returns:
        (B, C, Z, X, Y) sums, in at least float32 (as :func:`bev_pool`).
    """
    if feats.dim() != 4 or depth.dim() != 4 or \
            feats.shape[1] != depth.shape[0] or \
            feats.shape[2:] != depth.shape[2:]:
        raise ValueError('lift_pool: feats must be (C, M, H, W) and depth '
                         '(M, D, H, W) with the same M, H, W; got '
                         f'{tuple(feats.shape)} and {tuple(depth.shape)}')
    c, m, h, w = feats.shape
    _check_coords('lift_pool', coords, m * depth.shape[1] * h * w,
                  'one row per frustum point (M * D * H * W = '
                  f'{m * depth.shape[1] * h * w})', grid_shape)
    rank, num_cells = _flat_rank(coords, batch_size, grid_shape)
    bins = max(1, min(depth.shape[1], max_chunk_elements // (c * m * h * w)))
    out = _LiftPool.apply(feats, depth, rank, num_cells, bins)
    return _to_bev(out, batch_size, grid_shape)


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


__all__ = ['bev_pool', 'bev_pool_reference', 'lift_pool']
