"""bev_pool is exact against the naive per-point loop (values, gradients)."""
import pytest
import torch

from fuller.models.ops import bev_pool, bev_pool_reference


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
