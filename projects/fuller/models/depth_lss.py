"""Depth-aware LSS view transform and the concatenating LSS-FPN image neck
of upstream BEVFusion's camera+LiDAR detector (mmdet3d
``projects/BEVFusion``: ``DepthLSSTransform``, ``GeneralizedLSSFPN``; same
parameter names and shapes, so upstream checkpoints load into them)."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..registry import MODELS
from .view_transforms import LSSTransform, _stack_meta

#: channels of the encoded sparse depth image fed to the depth net
DEPTH_FEAT_CHANNELS = 64


@MODELS.register_module()
class DepthLSSTransform(LSSTransform):
    """LSS whose depth net also sees the LiDAR depth.

    The LiDAR points of each sample are projected into every camera (into
    the augmented network image: ``lidar_aug_matrix`` undone, ``lidar2img``,
    ``img_aug_matrix``) to a sparse depth image (B, N, 1, H, W) that holds,
    per pixel, the depth in metres of the nearest point landing in it (0
    where none). A strided conv stack (``dtransform``: /4 then /2, i.e. the
    image feature stride 8) encodes it to 64 channels, which are
    concatenated in front of the image features; the depth net
    (conv3x3-BN-ReLU x2, 1x1 conv to D + C) then predicts the depth
    distribution and context, and lifting/splatting is ``LSSTransform``'s.

    Args: as ``LSSTransform``; ``feature_size`` must be ``image_size / 8``.
    Forward: ``img_feats`` (B, N, C_in, fH, fW), ``data_samples``,
    ``points`` (B tensors (P_b, >=3), the augmented LiDAR frame) ->
    (B, C, X, Y).
    """

    #: FullerBEVFusion hands the points to view transforms that ask for them
    needs_points = True

    def __init__(self, in_channels: int, out_channels: int,
                 image_size: Sequence[int], feature_size: Sequence[int],
                 xbound: Sequence[float], ybound: Sequence[float],
                 zbound: Sequence[float], dbound: Sequence[float],
                 downsample: int = 1, init_cfg=None) -> None:
        # the parent's lift/splat sees [depth features, image features]
        super().__init__(in_channels + DEPTH_FEAT_CHANNELS, out_channels,
                         image_size, feature_size, xbound, ybound, zbound,
                         dbound, downsample=downsample, init_cfg=init_cfg)
        self.img_channels = in_channels
        self.dtransform = nn.Sequential(
            nn.Conv2d(1, 8, 1), nn.BatchNorm2d(8), nn.ReLU(True),
            nn.Conv2d(8, 32, 5, stride=4, padding=2), nn.BatchNorm2d(32),
            nn.ReLU(True),
            nn.Conv2d(32, DEPTH_FEAT_CHANNELS, 5, stride=2, padding=2),
            nn.BatchNorm2d(DEPTH_FEAT_CHANNELS), nn.ReLU(True))
        self.depthnet = nn.Sequential(
            nn.Conv2d(in_channels + DEPTH_FEAT_CHANNELS, in_channels, 3,
                      padding=1), nn.BatchNorm2d(in_channels), nn.ReLU(True),
            nn.Conv2d(in_channels, in_channels, 3, padding=1),
            nn.BatchNorm2d(in_channels), nn.ReLU(True),
            nn.Conv2d(in_channels, self.num_depth + out_channels, 1))
        if downsample == 2:  # upstream's layout (plain Sequential)
            c_in = out_channels * self.grid_shape[0]

            def conv(ci: int, stride: int = 1) -> List[nn.Module]:
                return [nn.Conv2d(ci, out_channels, 3, stride=stride,
                                  padding=1, bias=False),
                        nn.BatchNorm2d(out_channels), nn.ReLU(True)]

            self.downsample = nn.Sequential(*conv(c_in),
                                            *conv(out_channels, 2),
                                            *conv(out_channels))

    def depth_image(self, points: Sequence[Tensor], lidar2img: Tensor,
                    img_aug: Tensor, lidar_aug: Tensor) -> Tensor:
        """Sparse depth images of the network input images.

        Args:
            points: B tensors (P_b, >=3), xyz in the augmented LiDAR frame.
            lidar2img: (B, N, 4, 4) un-augmented projections.
            img_aug: (B, N, 4, 4) pixel augmentations (pixel' = M @ pixel,
                acting on (u, v, depth) as in ``get_geometry``).
            lidar_aug: (B, 4, 4) BEV augmentations.

        Returns:
            (B, N, 1, H, W) float32: depth (m) of the nearest point that
            projects into each pixel, 0 where none does.
        """
        h, w = self.image_size
        b, n = lidar2img.shape[:2]
        dev = lidar2img.device
        # float32 whatever the autocast state: pixel * depth reaches 1e5
        with torch.autocast(device_type=dev.type, enabled=False):
            flat = torch.full((b, n * h * w), float('inf'), device=dev)
            for i, pts in enumerate(points):
                xyz = pts[:, :3].float().to(dev)
                aug = lidar_aug[i].float()
                xyz = torch.linalg.solve(aug[:3, :3],
                                         (xyz - aug[:3, 3]).t())  # (3, P)
                proj = lidar2img[i].float()
                cam = proj[:, :3, :3] @ xyz + proj[:, :3, 3:]  # (N, 3, P)
                depth = cam[:, 2]
                uvd = torch.cat([cam[:, :2] / depth.clamp(min=1e-5)[:, None],
                                 depth[:, None]], dim=1)
                pix = img_aug[i, :, :3, :3].float() @ uvd + \
                    img_aug[i, :, :3, 3:].float()
                col, row = pix[:, 0].floor().long(), pix[:, 1].floor().long()
                keep = (depth > 0) & (col >= 0) & (col < w) & (row >= 0) & \
                    (row < h)
                cams = torch.arange(n, device=dev)[:, None].expand_as(keep)
                index = (cams * h + row) * w + col
                # several points in one pixel: keep the nearest
                flat[i].scatter_reduce_(0, index[keep], depth[keep],
                                        reduce='amin')
            flat = torch.where(torch.isinf(flat), torch.zeros_like(flat),
                               flat)
        return flat.view(b, n, 1, h, w)

    def forward(self, img_feats: Tensor, data_samples: List,
                points: Optional[Sequence[Tensor]] = None) -> Tensor:
        if points is None:
            raise ValueError('DepthLSSTransform needs the LiDAR points (the '
                             'detector passes inputs["points"]): keep '
                             'points in the pipeline and the LiDAR branch, '
                             'or use LSSTransform')
        self.check_image_features(img_feats, self.img_channels)
        b, n, c, fh, fw = img_feats.shape
        eye = torch.eye(4)
        depth = self.depth_image(
            points, _stack_meta(data_samples, 'lidar2img', img_feats),
            _stack_meta(data_samples, 'img_aug_matrix', img_feats,
                        eye.expand(n, 4, 4)),
            _stack_meta(data_samples, 'lidar_aug_matrix', img_feats, eye))
        d = self.dtransform(
            depth.view(b * n, 1, *self.image_size).to(img_feats.dtype))
        if tuple(d.shape[-2:]) != (fh, fw):
            raise ValueError(
                f'the depth features are {tuple(d.shape[-2:])}, the image '
                f'features {(fh, fw)}: DepthLSSTransform needs feature_size '
                f'= image_size / 8 (got {self.image_size} -> '
                f'{self.feature_size})')
        x = torch.cat([d.view(b, n, -1, fh, fw), img_feats], dim=2)
        return super().forward(x, data_samples)


@MODELS.register_module()
class GeneralizedLSSFPN(BaseModule):
    """Top-down image neck that concatenates instead of adding (upstream
    BEVFusion's camera neck): from the coarsest level down, the coarser
    output is upsampled to the finer level, concatenated with it, mixed by a
    1x1 conv-BN-ReLU (``lateral_convs``) and a 3x3 conv-BN-ReLU
    (``fpn_convs``). The coarsest input only feeds the level below it.

    Args:
        in_channels: channels of the backbone levels used (fine to coarse).
        out_channels: channels of every output.
        num_outs: kept for config compatibility with upstream (outputs are
            ``len(in_channels) - 1`` levels).
        start_level: first backbone level used.
        norm_cfg, act_cfg: of the convs.
        upsample_cfg: ``F.interpolate`` arguments.

    Forward: tuple of (B, C_i, H_i, W_i) -> tuple of
    ``len(in_channels) - 1`` maps (B, out_channels, H_i, W_i), finest first.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int,
                 num_outs: int, start_level: int = 0,
                 norm_cfg: dict = dict(type='BN2d'),
                 act_cfg: dict = dict(type='ReLU'),
                 upsample_cfg: dict = dict(mode='bilinear',
                                           align_corners=True),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        self.upsample_cfg = dict(upsample_cfg)
        last = len(self.in_channels) - 1
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for i in range(start_level, last):
            coarser = self.in_channels[i + 1] if i == last - 1 else \
                out_channels
            self.lateral_convs.append(ConvModule(
                self.in_channels[i] + coarser, out_channels, 1,
                norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False))
            self.fpn_convs.append(ConvModule(
                out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg,
                act_cfg=act_cfg, inplace=False))

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'GeneralizedLSSFPN expects {len(self.in_channels)} backbone '
                f'levels, got {len(inputs)}: match img_backbone.out_indices')
        feats = list(inputs[self.start_level:])
        for i in range(len(feats) - 2, -1, -1):
            up = F.interpolate(feats[i + 1], size=feats[i].shape[-2:],
                               **self.upsample_cfg)
            feats[i] = self.fpn_convs[i](self.lateral_convs[i](
                torch.cat([feats[i], up], dim=1)))
        return tuple(feats[:-1])
