"""bev_pool is exact against the naive per-point loop (values, gradients)."""
import pytest
import torch

from fuller.models.ops import bev_pool, bev_pool_reference, lift_pool


def _random_case(n=400, c=5, b=2, grid=(2, 6, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    nz, nx, ny = grid
    coords = torch.stack([
        torch.randint(0, b, (n, ), generator=g),
        torch.randint(0, nx, (n, ), generator=g),
        torch.randint(0, ny, (n, ), generator=g),
        torch.randint(0, nz, (n, ), generator=g)
    ], dim=1)
    feats = torch.randn(n, c, generator=g, dtype=torch.float64)
    return feats, coords, b, grid


@pytest.mark.parametrize('seed', [0, 1])
def test_values_and_gradients_match_reference(seed):
    feats, coords, b, grid = _random_case(seed=seed)
    # many points share a voxel: 400 points into 2*2*6*7 = 168 voxels
    f1 = feats.clone().requires_grad_(True)
    f2 = feats.clone().requires_grad_(True)
    out = bev_pool(f1, coords, b, grid)
    ref = bev_pool_reference(f2, coords, b, grid)
    assert out.shape == (b, feats.shape[1], *grid)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    torch.testing.assert_close(f1.grad, f2.grad, rtol=1e-12, atol=1e-12)


def test_out_of_grid_rows_are_skipped_and_layouts_agree():
    feats, coords, b, grid = _random_case(n=300, seed=3)
    coords = coords.clone()
    coords[::7, 1] = -1  # x below the grid
    coords[1::7, 2] = grid[2]  # y past the grid
    coords[2::7, 0] = b  # batch index past the batch
    ref = bev_pool_reference(feats, coords, b, grid)
    out = bev_pool(feats, coords, b, grid)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    # the channel-first memory layout LSSTransform passes gives the same
    channel_first = feats.t().contiguous().t()
    torch.testing.assert_close(bev_pool(channel_first, coords, b, grid), ref,
                               rtol=1e-12, atol=1e-12)
    # nothing of the dropped rows arrives anywhere
    kept = torch.ones(len(coords), dtype=torch.bool)
    kept[::7] = kept[1::7] = kept[2::7] = False
    torch.testing.assert_close(out.sum(), feats[kept].sum())


def test_layout_and_empty_cells():
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    coords = torch.tensor([[0, 1, 2, 0], [0, 1, 2, 0], [1, 0, 3, 1]])
    out = bev_pool(feats, coords, 2, (2, 2, 4))
    assert out[0, :, 0, 1, 2].tolist() == [4.0, 6.0]  # (b, C, z, x, y)
    assert out[1, :, 1, 0, 3].tolist() == [5.0, 6.0]
    assert out.abs().sum() == 4 + 6 + 5 + 6


def test_gradcheck():
    feats, coords, b, grid = _random_case(n=30, c=2, grid=(1, 3, 3))
    feats.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda f: bev_pool(f, coords, b, grid), (feats, ))


def test_bad_inputs_are_named():
    feats, coords, b, grid = _random_case(n=10)
    with pytest.raises(TypeError, match='integer'):
        bev_pool(feats, coords.float(), b, grid)
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        bev_pool(feats, coords[:, :3], b, grid)
    with pytest.raises(ValueError, match='grid_shape'):
        bev_pool(feats, coords, b, grid[:2])


def _lift_case(c=3, m=4, d=7, h=2, w=3, b=2, grid=(2, 5, 6), seed=0,
               dtype=torch.float64):
    """Context features (C, M, H, W), depth (M, D, H, W) and the frustum
    points' voxel coords in (M, D, H, W) order, some outside the grid."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(c, m, h, w, generator=g, dtype=dtype)
    depth = torch.rand(m, d, h, w, generator=g, dtype=dtype)
    n = m * d * h * w
    nz, nx, ny = grid
    coords = torch.stack([
        torch.arange(m).repeat_interleave(d * h * w) // (m // b),
        torch.randint(-1, nx + 1, (n, ), generator=g),
        torch.randint(0, ny, (n, ), generator=g),
        torch.randint(0, nz, (n, ), generator=g)], dim=1)
    return feats, depth, coords, b, grid


def _lifted_then_pooled(feats, depth, coords, b, grid):
    lifted = feats.unsqueeze(2) * depth.unsqueeze(0)  # (C, M, D, H, W)
    return bev_pool(lifted.view(feats.shape[0], -1).t(), coords, b, grid)


@pytest.mark.parametrize('chunk', [1 << 25, 3 * 4 * 2 * 3 * 2, 1])
def test_lift_pool_equals_lifting_then_pooling(chunk):
    """Values and both gradients, whatever the chunking (7 bins in chunks
    of 2 leave a short last chunk; 1 element still means 1 bin)."""
    feats, depth, coords, b, grid = _lift_case()
    leaves = [t.clone().requires_grad_(True) for t in (feats, depth) * 2]
    out = lift_pool(leaves[0], leaves[1], coords, b, grid,
                    max_chunk_elements=chunk)
    ref = _lifted_then_pooled(leaves[2], leaves[3], coords, b, grid)
    assert out.shape == (b, feats.shape[0], *grid)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    (ref * weight).sum().backward()
    torch.testing.assert_close(leaves[0].grad, leaves[2].grad)
    torch.testing.assert_close(leaves[1].grad, leaves[3].grad)


def test_lift_pool_gradcheck():
    feats, depth, coords, b, grid = _lift_case(c=2, m=2, d=3, h=1, w=2,
                                               grid=(1, 3, 3))
    assert torch.autograd.gradcheck(
        lambda f, d: lift_pool(f, d, coords, b, grid, max_chunk_elements=4),
        (feats.requires_grad_(True), depth.requires_grad_(True)))


def test_lift_pool_sums_half_features_in_float32():
    """Under autocast the context features come in float16 (depth, from a
    softmax, in float32): sums in float32, gradients in the inputs' types."""
    feats, depth, coords, b, grid = _lift_case(dtype=torch.float32)
    half = feats.half().requires_grad_(True)
    depth.requires_grad_(True)
    out = lift_pool(half, depth, coords, b, grid, max_chunk_elements=50)
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        out, _lifted_then_pooled(half.float(), depth, coords, b, grid))
    out.sum().backward()
    assert half.grad.dtype == torch.float16
    assert depth.grad.dtype == torch.float32


def test_lift_pool_bad_inputs_are_named():
    feats, depth, coords, b, grid = _lift_case()
    with pytest.raises(ValueError, match=r'\(C, M, H, W\)'):
        lift_pool(feats, depth[1:], coords, b, grid)
    with pytest.raises(ValueError, match='one row per frustum point'):
        lift_pool(feats, depth, coords[1:], b, grid)
    with pytest.raises(TypeError, match='integer'):
        lift_pool(feats, depth, coords.float(), b, grid)
