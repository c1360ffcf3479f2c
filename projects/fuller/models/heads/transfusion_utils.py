"""Box coding and Hungarian matching costs of the TransFusion head."""
from typing import Dict, Optional, Sequence

import torch
from mmdet3d.registry import TASK_UTILS
from mmdet3d.structures import LiDARInstance3DBoxes
from mmengine.structures import InstanceData
from torch import Tensor

from ..utils import ConstantCache


@TASK_UTILS.register_module()
class TransFusionBBoxCoder:
    """Encode boxes to/decode boxes from the 10 regression channels.

    Code layout: ``[cx, cy, cz, log dx, log dy, log dz, sin yaw, cos yaw, vx,
    vy]`` where ``(cx, cy)`` are in feature-map cells (LiDAR x, y divided by
    ``voxel_size * out_size_factor`` from ``pc_range`` min) and ``cz`` is the
    gravity-centre height in metres.

    Args:
        pc_range: ``[xmin, ymin, zmin, xmax, ymax, zmax]``.
        voxel_size: ``[vx, vy]`` (metres) of the LiDAR grid.
        out_size_factor: LiDAR grid cells per feature-map cell.
        post_center_range: boxes whose centre lies outside
            ``[xmin, ymin, zmin, xmax, ymax, zmax]`` are dropped at decode.
    """

    def __init__(self, pc_range: Sequence[float], voxel_size: Sequence[float],
                 out_size_factor: int,
                 post_center_range: Optional[Sequence[float]] = None,
                 code_size: int = 10) -> None:
        self.pc_range = list(pc_range)
        self.voxel_size = list(voxel_size)
        self.out_size_factor = out_size_factor
        self.post_center_range = post_center_range
        self.code_size = code_size
        self._const = ConstantCache()

    def cell_size(self, ref: Tensor) -> Tensor:
        """(2,) metres per feature cell along x, y."""
        return self._const(self.voxel_size[:2], ref) * self.out_size_factor

    def encode(self, boxes: LiDARInstance3DBoxes) -> Tensor:
        """LiDAR boxes (M boxes) -> (M, 10) regression targets."""
        t = boxes.tensor
        centre = boxes.gravity_center
        xy = (centre[:, :2] - self._const(self.pc_range[:2], t)) / \
            self.cell_size(t)
        vel = t[:, 7:9] if t.shape[1] >= 9 else t.new_zeros((len(t), 2))
        yaw = boxes.yaw
        return torch.cat([
            xy, centre[:, 2:3],
            boxes.dims.clamp(min=1e-3).log(),
            yaw.sin()[:, None],
            yaw.cos()[:, None], vel
        ], dim=1)

    def decode(self, reg: Tensor) -> Tensor:
        """(..., 10) codes -> (..., 9) box tensors ``[x, y, z_bottom, dx, dy,
        dz, yaw, vx, vy]`` (LiDARInstance3DBoxes with box_dim=9)."""
        xy = reg[..., :2] * self.cell_size(reg) + \
            self._const(self.pc_range[:2], reg)
        dims = reg[..., 3:6].exp()
        z = reg[..., 2:3] - dims[..., 2:3] / 2
        yaw = torch.atan2(reg[..., 6:7], reg[..., 7:8])
        return torch.cat([xy, z, dims, yaw, reg[..., 8:10]], dim=-1)

    def in_range(self, boxes: Tensor) -> Tensor:
        """Mask of (..., >=3) boxes whose centre is inside
        ``post_center_range`` (all True when it is None)."""
        if self.post_center_range is None:
            return boxes.new_ones(boxes.shape[:-1], dtype=torch.bool)
        r = self._const(self.post_center_range, boxes)
        return ((boxes[..., :3] >= r[:3]) & (boxes[..., :3] <= r[3:])).all(-1)


def gaussian_radii(sizes: Tensor, min_overlap: float) -> Tensor:
    """(N,) CenterNet gaussian radii (in cells, not rounded) of N boxes.

    The smallest of the three radii at which a box of ``sizes`` ``(N, 2)``
    cells shifted by the radius keeps an IoU of ``min_overlap`` with the GT
    box (CornerNet, Law & Deng, ECCV 2018), in the form TransFusion and
    mmdet3d's ``gaussian_radius`` use: the same float operations, one box
    per row, so the result is bit for bit theirs.
    """
    h, w = sizes[:, 1], sizes[:, 0]
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + torch.sqrt(b2**2 - 4 * 4 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def draw_gaussian_heatmaps(num_classes: int, shape: Sequence[int],
                           centres: Tensor, radii: Tensor, labels: Tensor,
                           dtype: torch.dtype = torch.float32) -> Tensor:
    """(K, X, Y) heatmap with a gaussian peak of 1 at every box centre.

    Box ``n`` adds ``exp(-(dx^2 + dy^2) / (2 s^2))``, ``s = (2 r + 1) / 6``,
    over the cells within ``r = radii[n]`` (Chebyshev distance) of its
    centre cell ``trunc(centres[n])`` in channel ``labels[n]``, clipped at
    the border; where peaks overlap the larger value wins. Boxes whose
    centre cell is outside the grid draw nothing. This is what drawing the
    boxes one by one with mmdet3d's ``draw_heatmap_gaussian`` gives, in a
    handful of tensor operations instead of a few dozen per box: on a GPU
    setting the per-box loop was most of the detection loss's time.

    Args:
        num_classes: K.
        shape: (X, Y) cells.
        centres: (N, 2) box centres in cells (x, y).
        radii: (N,) integer radii.
        labels: (N,) class indices.
        dtype: heatmap dtype (the peaks are computed in float64 first).
    """
    nx, ny = shape
    heat = torch.zeros(num_classes * nx * ny, dtype=dtype,
                       device=centres.device)
    cells = torch.trunc(centres).long()
    inside = ((cells >= 0) & (cells < cells.new_tensor([nx, ny]))).all(1)
    cells, radii, labels = cells[inside], radii[inside].long(), \
        labels[inside].long()
    if len(cells) == 0:
        return heat.view(num_classes, nx, ny)
    reach = int(radii.max())
    offset = torch.arange(-reach, reach + 1, device=centres.device)
    dx, dy = offset.view(1, -1, 1), offset.view(1, 1, -1)
    r = radii.view(-1, 1, 1)
    sigma = (2 * r + 1).double() / 6
    peak = torch.exp(-(dx * dx + dy * dy).double() / (2 * sigma * sigma))
    # the reference zeroes values below float64 eps times the peak (1)
    peak = peak.masked_fill(peak < torch.finfo(torch.float64).eps, 0)
    x = cells[:, 0].view(-1, 1, 1) + dx
    y = cells[:, 1].view(-1, 1, 1) + dy
    keep = ((dx.abs() <= r) & (dy.abs() <= r) & (x >= 0) & (x < nx)
            & (y >= 0) & (y < ny))
    index = (labels.view(-1, 1, 1) * nx + x) * ny + y
    heat.scatter_reduce_(0, index[keep], peak.to(dtype)
                         .expand_as(keep)[keep], reduce='amax')
    return heat.view(num_classes, nx, ny)


@TASK_UTILS.register_module()
class BEVCenterL1Cost:
    """L1 distance between predicted and GT BEV box centres, with the centres
    normalised by the point-cloud range (as upstream BEVFusion/TransFusion's
    ``BBoxBEVL1Cost`` in mmdetection3d ``projects/BEVFusion/bevfusion/
    utils.py`` and mit-han-lab/bevfusion ``mmdet3d/core/bbox/match_costs``):

    ``cost[p, m] = weight * sum_{a in x, y} |p_a - g_a| / (max_a - min_a)``

    with ``p``, ``g`` the box centres in metres (LiDAR frame) and
    ``[min_x, min_y, _, max_x, max_y, _]`` the point-cloud range. A centre
    offset across the whole range costs ``weight`` per axis, so the centre
    term is on the scale of the classification and IoU costs (measuring the
    offset in feature cells instead would weigh it ~180x more on nuScenes).

    Reads ``pred_instances.bboxes_3d`` (P boxes) and
    ``gt_instances.bboxes_3d`` (M boxes) (``LiDARInstance3DBoxes``, x, y
    in metres); returns a (P, M) cost.

    Args:
        weight: cost weight (0.25 upstream).
        point_cloud_range: ``[xmin, ymin, zmin, xmax, ymax, zmax]``; when
            None it is read from ``img_meta['point_cloud_range']`` (the
            TransFusion head passes its box coder's range there).
    """

    def __init__(self, weight: float = 1.0,
                 point_cloud_range: Optional[Sequence[float]] = None) -> None:
        self.weight = weight
        self.point_cloud_range = (None if point_cloud_range is None else
                                  list(point_cloud_range))
        self._const = ConstantCache()

    def __call__(self, pred_instances: InstanceData,
                 gt_instances: InstanceData, img_meta: Dict = None,
                 **kwargs) -> Tensor:
        pcr = self.point_cloud_range or (img_meta or {}).get(
            'point_cloud_range')
        if pcr is None or len(pcr) != 6:
            raise ValueError('BEVCenterL1Cost needs point_cloud_range '
                             '[xmin, ymin, zmin, xmax, ymax, zmax]: pass it '
                             'in the cost config or through img_meta')
        pred = pred_instances.bboxes_3d.tensor[:, :2]
        gt = gt_instances.bboxes_3d.tensor[:, :2].to(pred)
        start = self._const(pcr[:2], pred)
        extent = self._const(pcr[3:5], pred) - start
        return torch.cdist((pred - start) / extent, (gt - start) / extent,
                           p=1) * self.weight


@TASK_UTILS.register_module()
class IoU3DCost:
    """Negative 3D IoU between predicted and GT LiDAR boxes.

    Reads ``pred_instances.bboxes_3d`` and ``gt_instances.bboxes_3d``
    (``LiDARInstance3DBoxes``); returns a (P, M) cost.
    """

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def __call__(self, pred_instances: InstanceData,
                 gt_instances: InstanceData, img_meta: Dict = None,
                 **kwargs) -> Tensor:
        iou = LiDARInstance3DBoxes.overlaps(pred_instances.bboxes_3d,
                                            gt_instances.bboxes_3d)
        return -iou * self.weight
