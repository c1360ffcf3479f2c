"""Box coding and Hungarian matching costs of the TransFusion head."""
from typing import Dict, Optional, Sequence

import torch
from mmdet3d.registry import TASK_UTILS
from mmdet3d.structures import LiDARInstance3DBoxes
from mmengine.structures import InstanceData
from torch import Tensor

from ..utils import to_device_async


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
        self._consts: Dict[tuple, Tensor] = {}

    def _const(self, values: Sequence[float], ref: Tensor) -> Tensor:
        """``ref.new_tensor(values)``, made once per device and dtype: each
        new_tensor on a GPU is a host-to-device copy that blocks the host."""
        key = (tuple(values), ref.device, ref.dtype)
        if key not in self._consts:
            self._consts[key] = to_device_async(
                torch.tensor(values, dtype=ref.dtype), ref.device)
        return self._consts[key]

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
        start = pred.new_tensor(pcr[:2])
        extent = pred.new_tensor(pcr[3:5]) - start
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
