"""Synthetic multi-task batches in the data contract of docs/architecture.md.

Used by the model tests and ``tools/count_params.py --step-time`` to drive
the network without a dataset: random images and points, six cameras in a
ring with consistent ``lidar2img``/``cam2img``/``lidar2cam``/``cam2lidar``,
identity augmentation matrices, random GT boxes/labels and map masks.
"""
import math
from typing import Dict, Sequence

import numpy as np
import torch
from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes
from mmengine.structures import InstanceData

#: camera yaw (degrees, LiDAR frame, counter-clockwise from +x) of a 6-ring.
RING_YAWS = (0.0, -55.0, 55.0, 180.0, -110.0, 110.0)


def ring_cameras(image_size: Sequence[int], yaws: Sequence[float] = RING_YAWS,
                 fov_deg: float = 70.0, height: float = 1.6
                 ) -> Dict[str, np.ndarray]:
    """Pinhole cameras looking horizontally out of the LiDAR origin.

    Returns (N, 4, 4) float32 ``cam2img``, ``lidar2cam``, ``cam2lidar``,
    ``lidar2img`` for an image of ``(H, W)`` pixels.
    """
    h, w = image_size
    f = 0.5 * w / math.tan(math.radians(fov_deg) / 2)
    k = np.eye(4, dtype=np.float32)
    k[:3, :3] = [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]
    cam2lidar = []
    for yaw in np.radians(yaws):
        m = np.eye(4, dtype=np.float32)
        forward = [math.cos(yaw), math.sin(yaw), 0.0]
        right = [math.sin(yaw), -math.cos(yaw), 0.0]
        m[:3, :3] = np.stack([right, [0.0, 0.0, -1.0], forward], axis=1)
        m[:3, 3] = [0.0, 0.0, height]
        cam2lidar.append(m)
    cam2lidar = np.stack(cam2lidar)
    lidar2cam = np.linalg.inv(cam2lidar).astype(np.float32)
    cam2img = np.repeat(k[None], len(yaws), axis=0)
    return dict(cam2img=cam2img, lidar2cam=lidar2cam, cam2lidar=cam2lidar,
                lidar2img=(cam2img @ lidar2cam).astype(np.float32))


def synthetic_batch(batch_size: int = 2,
                    image_size: Sequence[int] = (64, 176),
                    point_cloud_range: Sequence[float] = (-51.2, -51.2, -5.0,
                                                          51.2, 51.2, 3.0),
                    map_size: Sequence[int] = (100, 100),
                    num_map_classes: int = 6,
                    num_points: int = 3000,
                    num_boxes: int = 6,
                    num_classes: int = 10,
                    seed: int = 0) -> dict:
    """A ``dict(inputs=..., data_samples=...)`` batch as a dataloader with
    ``pseudo_collate`` yields it (images per sample (N, 3, H, W) in 0..255,
    points per sample (P, 5))."""
    g = torch.Generator().manual_seed(seed)
    cams = ring_cameras(image_size)
    n_cam = cams['lidar2img'].shape[0]
    lo = torch.tensor(point_cloud_range[:3])
    hi = torch.tensor(point_cloud_range[3:])
    imgs, points, samples = [], [], []
    for i in range(batch_size):
        imgs.append(torch.rand(n_cam, 3, *image_size, generator=g) * 255)
        xyz = lo + (hi - lo) * torch.rand(num_points, 3, generator=g)
        extra = torch.rand(num_points, 2, generator=g)
        points.append(torch.cat([xyz, extra], dim=1))
        centre = (torch.rand(num_boxes, 2, generator=g) - 0.5) * 80
        boxes = torch.cat([
            centre, torch.full((num_boxes, 1), -1.5),
            torch.tensor([[4.5, 2.0, 1.6]]).repeat(num_boxes, 1),
            (torch.rand(num_boxes, 1, generator=g) - 0.5) * 2 * math.pi,
            torch.randn(num_boxes, 2, generator=g)
        ], dim=1)
        ds = Det3DDataSample()
        ds.set_metainfo(dict(
            sample_idx=i, box_type_3d=LiDARInstance3DBoxes,
            img_aug_matrix=np.repeat(np.eye(4, dtype=np.float32)[None],
                                     n_cam, axis=0),
            lidar_aug_matrix=np.eye(4, dtype=np.float32), **cams))
        ds.gt_instances_3d = InstanceData(
            bboxes_3d=LiDARInstance3DBoxes(boxes, box_dim=9),
            labels_3d=torch.randint(0, num_classes, (num_boxes, ),
                                    generator=g))
        ds.gt_masks_bev = (torch.rand(num_map_classes, *map_size,
                                      generator=g) > 0.7).to(torch.uint8)
        samples.append(ds)
    return dict(inputs=dict(imgs=imgs, points=points), data_samples=samples)
