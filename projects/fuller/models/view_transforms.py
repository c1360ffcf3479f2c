"""Lift-Splat-Shoot camera-to-BEV view transform (as in BEVFusion)."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..registry import MODELS
from .ops import lift_pool
from .utils import bins_from_bound, to_device_async


def _stack_meta(data_samples: Sequence, key: str, ref: Tensor,
                default: Optional[Tensor] = None) -> Tensor:
    """Stack a per-sample matrix metainfo field into one float32 tensor on
    ``ref``'s device; samples without the field get ``default``."""
    mats = []
    for ds in data_samples:
        if key in ds.metainfo:
            mats.append(torch.as_tensor(ds.metainfo[key], dtype=torch.float32))
        elif default is not None:
            mats.append(default)
        else:
            raise KeyError(
                f'LSSTransform needs the metainfo field "{key}" in every '
                'data sample (see docs/architecture.md); add it in the data '
                'pipeline (Pack3DDetInputs meta_keys).')
    return to_device_async(torch.stack(mats), ref.device)


@MODELS.register_module()
class LSSTransform(BaseModule):
    """Lift image features to a depth distribution and splat them into BEV.

    Each feature-map pixel predicts a softmax over ``D`` depth bins and a
    ``C``-channel context feature; their outer product places ``D`` weighted
    copies of the feature along the pixel's ray. The ray points are mapped to
    the (augmented) LiDAR frame with ``lidar_aug_matrix @ inv(lidar2img)``
    after undoing ``img_aug_matrix``, and summed per BEV cell by
    :func:`lift_pool` (outer product and sum a few depth bins at a time, so
    the lifted (C, B*N, D, fH, fW) tensor never exists whole).

    Args:
        in_channels: channels of the image feature map.
        out_channels: C, channels of the BEV feature.
        image_size: (H, W) of the network input image.
        feature_size: (fH, fW) of the image feature map fed in.
        xbound, ybound, zbound: ``[min, max, step]`` of the BEV grid in
            metres (LiDAR frame). Output layout is (B, C, X, Y).
        dbound: ``[min, max, step]`` of the depth bins in metres.
        downsample: 1 (no downsampling) or 2 (conv stack with stride 2, as
            upstream, to reach the LiDAR decoder grid).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 image_size: Sequence[int],
                 feature_size: Sequence[int],
                 xbound: Sequence[float],
                 ybound: Sequence[float],
                 zbound: Sequence[float],
                 dbound: Sequence[float],
                 downsample: int = 1,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if downsample not in (1, 2):
            raise ValueError(f'LSSTransform: downsample must be 1 or 2, got '
                             f'{downsample}.')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.image_size = tuple(int(s) for s in image_size)
        self.feature_size = tuple(int(s) for s in feature_size)
        self.xbound, self.ybound = list(xbound), list(ybound)
        self.zbound, self.dbound = list(zbound), list(dbound)
        self.grid_shape = (bins_from_bound(zbound), bins_from_bound(xbound),
                           bins_from_bound(ybound))  # (Z, X, Y)
        self.register_buffer('frustum', self._make_frustum(), persistent=False)
        # grid corner and cell size (float64: cast to the geometry's dtype
        # as new_tensor would round them)
        self.register_buffer(
            'bev_lower', torch.tensor([xbound[0], ybound[0], zbound[0]],
                                      dtype=torch.float64), persistent=False)
        self.register_buffer(
            'bev_step', torch.tensor([xbound[2], ybound[2], zbound[2]],
                                     dtype=torch.float64), persistent=False)
        self.num_depth = self.frustum.shape[0]
        self.depthnet = nn.Conv2d(in_channels, self.num_depth + out_channels,
                                  1)
        bev_channels = out_channels * self.grid_shape[0]
        norm = dict(type='BN', eps=1e-3, momentum=0.01)
        if downsample == 2:
            self.downsample = nn.Sequential(
                ConvModule(bev_channels, out_channels, 3, padding=1,
                           bias=False, norm_cfg=norm),
                ConvModule(out_channels, out_channels, 3, stride=2, padding=1,
                           bias=False, norm_cfg=norm),
                ConvModule(out_channels, out_channels, 3, padding=1,
                           bias=False, norm_cfg=norm))
        elif bev_channels != out_channels:
            self.downsample = ConvModule(bev_channels, out_channels, 1,
                                         bias=False, norm_cfg=norm)
        else:
            self.downsample = nn.Identity()

    #: the config entries that set ``bev_shape`` (named in grid errors)
    bev_shape_setting = 'view_transform.xbound / ybound / downsample'

    @property
    def bev_shape(self) -> Tuple[int, int]:
        """(X, Y) of the output feature after downsampling."""
        nx, ny = self.grid_shape[1:]
        if isinstance(self.downsample, nn.Sequential):
            return (nx + 1) // 2, (ny + 1) // 2
        return nx, ny

    def _make_frustum(self) -> Tensor:
        """(D, fH, fW, 3) homogeneous-free ray samples ``(u, v, d)`` in
        pixels of the augmented network image and metres of depth."""
        ih, iw = self.image_size
        fh, fw = self.feature_size
        depths = torch.arange(*self.dbound, dtype=torch.float32)
        d = depths.view(-1, 1, 1).expand(-1, fh, fw)
        u = torch.linspace(0, iw - 1, fw).view(1, 1, fw).expand_as(d)
        v = torch.linspace(0, ih - 1, fh).view(1, fh, 1).expand_as(d)
        return torch.stack([u, v, d], dim=-1)

    def get_geometry(self, lidar2img: Tensor, img_aug: Tensor,
                     lidar_aug: Tensor) -> Tensor:
        """LiDAR-frame xyz of every frustum point.

        Args:
            lidar2img: (B, N, 4, 4) un-augmented projection matrices.
            img_aug: (B, N, 4, 4) pixel augmentation matrices.
            lidar_aug: (B, 4, 4) BEV augmentation matrices.

        Returns:
            (B, N, D, fH, fW, 3) float32 points in the augmented LiDAR frame.

        Always float32, autocast or not: pixel x depth in the original image
        reaches ~1e5, beyond float16's 65504 (as upstream BEVFusion, which
        keeps its geometry in float32).
        """
        with torch.autocast(lidar2img.device.type, enabled=False):
            return self._geometry(lidar2img.float(), img_aug.float(),
                                  lidar_aug.float())

    def _geometry(self, lidar2img: Tensor, img_aug: Tensor,
                  lidar_aug: Tensor) -> Tensor:
        pix = self.frustum.float()  # (D, fH, fW, 3)
        # Undo the image augmentation on (u, v); depth is untouched by it.
        rot = img_aug[..., :3, :3]
        trans = img_aug[..., :3, 3]
        p = pix.view(1, 1, -1, 3) - trans.unsqueeze(2)
        # inv_ex: torch.inverse checks for singular input, a host sync on CUDA
        p = torch.matmul(torch.linalg.inv_ex(rot)[0].unsqueeze(2),
                         p.unsqueeze(-1)).squeeze(-1)  # (B, N, P, 3)
        # (u*d, v*d, d, 1) in the original camera image.
        p = torch.cat([p[..., :2] * p[..., 2:3], p[..., 2:3],
                       torch.ones_like(p[..., :1])], dim=-1)
        img2lidar = torch.matmul(lidar_aug.unsqueeze(1),
                                 torch.linalg.inv_ex(lidar2img)[0])
        pts = torch.matmul(img2lidar.unsqueeze(2),
                           p.unsqueeze(-1)).squeeze(-1)[..., :3]
        b, n = lidar2img.shape[:2]
        return pts.view(b, n, *pix.shape[:3], 3)

    def voxel_indices(self, geom: Tensor) -> Tuple[Tensor, Tensor]:
        """Integer ``(batch, x, y, z)`` BEV indices of flattened ``geom``
        points and the mask of those inside the grid."""
        b = geom.shape[0]
        pts = geom.reshape(b, -1, 3)
        # buffers, not new_tensor: a host-to-device copy syncs on a GPU
        lower, step = self.bev_lower.to(pts), self.bev_step.to(pts)
        idx = ((pts - lower) / step).floor().long()
        batch = torch.arange(b, device=geom.device).view(b, 1, 1).expand(
            -1, pts.shape[1], 1)
        coords = torch.cat([batch, idx], dim=-1).view(-1, 4)
        nz, nx, ny = self.grid_shape
        keep = (coords[:, 1] >= 0) & (coords[:, 1] < nx) & \
            (coords[:, 2] >= 0) & (coords[:, 2] < ny) & \
            (coords[:, 3] >= 0) & (coords[:, 3] < nz)
        return coords, keep

    def check_image_features(self, img_feats: Tensor, channels: int) -> None:
        """Fail in one line unless ``img_feats`` (B, N, C, fH, fW) has
        ``channels`` channels at ``feature_size``."""
        c, fh, fw = img_feats.shape[2:]
        if (fh, fw) != self.feature_size or c != channels:
            raise ValueError(
                f'{type(self).__name__} got image features (C={c}, '
                f'{fh}x{fw}) but is configured for (C={channels}, '
                f'{self.feature_size[0]}x{self.feature_size[1]}); set '
                'view_transform.in_channels / feature_size to the neck output '
                '(image_size divided by the neck level stride).')

    def forward(self, img_feats: Tensor, data_samples: List) -> Tensor:
        """Args:
            img_feats: (B, N, C_in, fH, fW) image features.
            data_samples: B ``Det3DDataSample`` with ``lidar2img``,
                ``img_aug_matrix`` (identity if absent) and
                ``lidar_aug_matrix`` (identity if absent).

        Returns:
            (B, C, X, Y) camera BEV feature.
        """
        self.check_image_features(img_feats, self.in_channels)
        b, n, c, fh, fw = img_feats.shape
        x = self.depthnet(img_feats.view(b * n, c, fh, fw))
        depth = x[:, :self.num_depth].softmax(dim=1)  # (B*N, D, fH, fW)
        # context features channel-first, (C, B*N, fH, fW): the layout in
        # which the pooling accumulates fastest
        ctx = x[:, self.num_depth:].transpose(0, 1).contiguous()
        eye = torch.eye(4)
        lidar2img = _stack_meta(data_samples, 'lidar2img', img_feats)
        img_aug = _stack_meta(data_samples, 'img_aug_matrix', img_feats,
                              eye.expand(n, 4, 4))
        lidar_aug = _stack_meta(data_samples, 'lidar_aug_matrix', img_feats,
                                eye)
        geom = self.get_geometry(lidar2img, img_aug, lidar_aug)
        coords, _ = self.voxel_indices(geom)  # out-of-grid rows are skipped
        # The lift (ctx x depth, (C, B*N, D, fH, fW): 2.5 GB in float32 at
        # the paper's sizes) and the pooling, a few depth bins at a time; sums
        # in float32 (thousands of points a cell would overflow float16), the
        # convs after it run under autocast again.
        pooled = lift_pool(ctx, depth, coords, b, self.grid_shape)
        bev = torch.cat(pooled.unbind(dim=2), dim=1)  # (B, C*Z, X, Y)
        return self.downsample(bev)
