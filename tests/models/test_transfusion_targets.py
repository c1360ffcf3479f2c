"""The TransFusion head's heatmap targets, drawn for all boxes at once, equal
mmdet3d's box-by-box ``gaussian_radius`` + ``draw_heatmap_gaussian`` bit for
bit: sizes from cones to trailers, centres on the border, just outside it
and in (-1, 0) (truncated to cell 0, as ``int()`` does), overlapping peaks of
one class."""
import pytest
import torch
from mmdet3d.models.utils import draw_heatmap_gaussian, gaussian_radius

from fuller.models.heads.transfusion_utils import (draw_gaussian_heatmaps,
                                                   gaussian_radii)


def _reference(num_classes, shape, centres, sizes, labels, overlap,
               min_radius):
    """The per-box loop the head used before (and upstream uses)."""
    heat = torch.zeros((num_classes, *shape))
    for c, (sx, sy), label in zip(centres, sizes, labels.tolist()):
        radius = max(min_radius, int(gaussian_radius((sy, sx),
                                                     min_overlap=overlap)))
        ix, iy = int(c[0]), int(c[1])
        if 0 <= ix < shape[0] and 0 <= iy < shape[1]:
            draw_heatmap_gaussian(heat[label], (iy, ix), radius)
    return heat


def _boxes(n, shape, cell, seed):
    g = torch.Generator().manual_seed(seed)
    # metres: cones (0.4 m) to trailers (20 m), then in cells
    sizes = (0.4 + torch.rand(n, 2, generator=g) * 19.6) / cell
    centres = torch.rand(n, 2, generator=g) * torch.tensor(shape) * 1.1 - 2
    centres[:4] = torch.tensor([[-0.5, 3.2], [0.0, 0.0],
                                [shape[0] - 0.01, shape[1] - 0.5],
                                [shape[0] + 0.2, 5.0]])
    labels = torch.randint(0, 3, (n,), generator=g)
    return centres, sizes, labels


@pytest.mark.parametrize('cell, shape', [(1.6, (64, 64)), (0.6, (180, 180)),
                                         (0.6, (40, 70))])
@pytest.mark.parametrize('overlap, min_radius', [(0.1, 2), (0.7, 0)])
def test_heatmaps_equal_box_by_box_drawing(cell, shape, overlap, min_radius):
    for seed in range(3):
        centres, sizes, labels = _boxes(60, shape, cell, seed)
        want = _reference(3, shape, centres, sizes, labels, overlap,
                          min_radius)
        radii = gaussian_radii(sizes, overlap).long().clamp(min=min_radius)
        got = draw_gaussian_heatmaps(3, shape, centres, radii, labels)
        assert got.dtype == want.dtype
        assert torch.equal(got, want)
        # every in-grid centre cell is a peak of its class
        inside = ((centres >= 0) & (centres < torch.tensor(shape))).all(1)
        cells = centres[inside].long()
        assert torch.all(got[labels[inside], cells[:, 0], cells[:, 1]] == 1)


def test_radii_equal_gaussian_radius_per_box():
    sizes = torch.rand(200, 2) * 30 + 0.1
    got = gaussian_radii(sizes, 0.1)
    want = torch.stack([gaussian_radius((sy, sx), min_overlap=0.1)
                        for sx, sy in sizes])
    assert torch.equal(got, want)


def test_no_box_in_grid_draws_nothing():
    heat = draw_gaussian_heatmaps(
        2, (8, 8), torch.tensor([[-3.0, 1.0], [9.0, 2.0]]),
        torch.tensor([2, 2]), torch.tensor([0, 1]))
    assert heat.shape == (2, 8, 8) and not heat.any()
