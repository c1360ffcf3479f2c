"""TransFusion-style query-based 3D detection head on a BEV feature."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet3d.models.utils import clip_sigmoid
from mmdet3d.registry import TASK_UTILS
from mmdet3d.structures import LiDARInstance3DBoxes
from mmdet.models.task_modules import AssignResult
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ...registry import MODELS
from ..utils import ConstantCache, to_device_async
from .transfusion_utils import draw_gaussian_heatmaps, gaussian_radii

#: regression outputs of the query heads, in code order (see the coder).
REG_HEADS = (('center', 2), ('height', 1), ('dim', 3), ('rot', 2), ('vel', 2))


class _PosEmbed(nn.Sequential):
    """(B, L, 2) cell coordinates -> (B, L, C) learned embedding:
    1x1 Conv1d, BN1d, ReLU, 1x1 Conv1d over the L positions, as upstream
    TransFusion's ``PositionEmbeddingLearned`` (same layers, so upstream
    checkpoints load into it)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.Conv1d(2, channels, 1), nn.BatchNorm1d(channels),
                         nn.ReLU(inplace=True),
                         nn.Conv1d(channels, channels, 1))

    def forward(self, pos: Tensor) -> Tensor:
        return super().forward(pos.transpose(1, 2)).transpose(1, 2)


def use_fused_attention(setting: Optional[bool], dropout_active: bool,
                        device_type: str) -> bool:
    """Whether a decoder attention runs torch's fused kernel.

    ``setting`` True / False is the user's choice. ``None`` picks the faster
    path measured at the paper's sizes (one H100, batch 4, 200 queries over
    180 x 180 cells; docs/models.md): the explicit path only where CUDA
    trains in float32 with dropout, there the fused kernel's dropout made
    the whole training step 7% slower (0.609 vs 0.566 s) for 1.7 GB less
    memory; under autocast the two steps took the same time (0.383 s) and
    the fused one 1.3 GB less; without dropout (evaluation) and on a CPU
    the fused one is as fast or faster.

    Args:
        setting: ``fused_attention`` of the layer.
        dropout_active: the layer trains with a dropout probability > 0.
        device_type: the inputs' device type (``'cuda'``, ``'cpu'``, ...).
    """
    if setting is not None:
        return setting
    return not (dropout_active and device_type == 'cuda'
                and not torch.is_autocast_enabled(device_type))


class TransFusionDecoderLayer(BaseModule):
    """Self-attention among queries, cross-attention to the BEV feature,
    FFN; post-norm, learned positional embeddings of BEV cell coordinates.
    As upstream TransFusion (mmdet3d projects/BEVFusion and MIT bevfusion),
    the positional embedding is added to queries, keys *and values* of both
    attentions.

    Forward: query (B, P, C), key (B, L, C), query_pos (B, P, 2),
    key_pos (B, L, 2) -> (B, P, C).

    Args:
        channels, num_heads, ffn_channels, dropout: as upstream.
        fused_attention: compute both attentions with torch's fused kernel
            (``scaled_dot_product_attention``) rather than materialising
            the (B * heads, P, L) weights: the same function, less memory.
            ``None`` (default) chooses per call, see
            :func:`use_fused_attention`; True / False force one path.
    """

    def __init__(self, channels: int, num_heads: int, ffn_channels: int,
                 dropout: float = 0.1,
                 fused_attention: Optional[bool] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.fused_attention = fused_attention
        self.self_attn = nn.MultiheadAttention(
            channels, num_heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(
            channels, num_heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(channels, ffn_channels), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(ffn_channels, channels))
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(3))
        self.drop = nn.Dropout(dropout)
        self.query_pos = _PosEmbed(channels)
        self.key_pos = _PosEmbed(channels)

    def forward(self, query: Tensor, key: Tensor, query_pos: Tensor,
                key_pos: Tensor) -> Tensor:
        qp, kp = self.query_pos(query_pos), self.key_pos(key_pos)
        # Without weights asked for, torch runs the fused attention kernel
        # (scaled_dot_product_attention) instead of materialising the
        # (B*heads, P, L) weights over the L BEV cells (docs/models.md;
        # tools/benchmark_decoder_attention.py compares the two).
        weights = not use_fused_attention(
            self.fused_attention, self.training and self.drop.p > 0,
            query.device.type)
        q = query + qp
        query = self.norms[0](query + self.drop(
            self.self_attn(q, q, q, need_weights=weights)[0]))
        k = key + kp
        query = self.norms[1](query + self.drop(
            self.cross_attn(query + qp, k, k, need_weights=weights)[0]))
        return self.norms[2](query + self.drop(self.ffn(query)))


def _point_head(in_channels: int, head_channels: int, out_channels: int,
                bias: float = 0.0) -> nn.Sequential:
    """1x1 Conv1d-BN-ReLU then 1x1 Conv1d: (B, C, P) -> (B, out, P)."""
    last = nn.Conv1d(head_channels, out_channels, 1)
    nn.init.constant_(last.bias, bias)
    return nn.Sequential(
        ConvModule(in_channels, head_channels, 1, bias=False,
                   conv_cfg=dict(type='Conv1d'), norm_cfg=dict(type='BN1d')),
        last)


@MODELS.register_module()
class TransFusionHead(BaseModule):
    """Heatmap-initialised object queries refined by a transformer decoder.

    A dense class heatmap on the BEV feature picks the ``num_proposals``
    strongest local maxima; each becomes a query (BEV feature at that cell +
    class embedding) refined by ``num_decoder_layers`` decoder layers that
    cross-attend to the whole BEV feature. Per-query FFNs predict class
    logits and box codes. Training matches queries to GT boxes with mmdet's
    ``HungarianAssigner`` (classification focal cost, BEV centre L1 cost,
    3D IoU cost). The lightweight variant is this head with smaller
    ``hidden_channels``/``ffn_channels``/``head_channels``.

    Args:
        in_channels: channels of the BEV feature (B, C, X, Y).
        num_classes: detection classes.
        num_proposals: queries per sample.
        hidden_channels, num_heads, ffn_channels, num_decoder_layers,
            dropout: decoder sizes.
        fused_attention: the decoder's attention through torch's fused
            kernel (``TransFusionDecoderLayer``); None (default): explicit
            where CUDA trains in float32 with dropout, fused elsewhere
            (:func:`use_fused_attention`, docs/models.md).
        head_channels: hidden width of the per-query FFN heads.
        nms_kernel_size: local-maximum window on the heatmap (odd).
        class_names: the detection class names, in label order; needed
            only by ``class_nms_kernel_sizes``.
        class_nms_kernel_sizes: class name -> its own local-maximum window
            (upstream BEVFusion on nuScenes: ``pedestrian=1,
            traffic_cone=1``: small objects stand closer than 3 cells,
            so a 3x3 window would keep only one of two neighbours).
        bbox_coder: ``TransFusionBBoxCoder`` config.
        train_cfg: ``assigner`` (HungarianAssigner config),
            ``code_weights`` (10 floats), ``gaussian_overlap``,
            ``min_radius``.
        test_cfg: ``score_threshold``, ``max_num`` (top boxes kept).
        loss_cls, loss_bbox, loss_heatmap: mmdet loss configs.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 bbox_coder: dict,
                 num_proposals: int = 200,
                 hidden_channels: int = 128,
                 num_heads: int = 8,
                 ffn_channels: int = 256,
                 num_decoder_layers: int = 1,
                 dropout: float = 0.1,
                 fused_attention: Optional[bool] = None,
                 head_channels: int = 64,
                 nms_kernel_size: int = 3,
                 class_names: Optional[Sequence[str]] = None,
                 class_nms_kernel_sizes: Optional[Dict[str, int]] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 loss_cls: dict = dict(
                     type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0,
                     alpha=0.25, reduction='mean', loss_weight=1.0),
                 loss_bbox: dict = dict(
                     type='mmdet.L1Loss', reduction='mean', loss_weight=0.25),
                 loss_heatmap: dict = dict(
                     type='mmdet.GaussianFocalLoss', reduction='mean',
                     loss_weight=1.0),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.num_proposals = num_proposals
        self.nms_kernel_size = nms_kernel_size
        self.nms_groups = self._nms_groups(nms_kernel_size, class_names,
                                           class_nms_kernel_sizes)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self._const = ConstantCache()
        self.assigner = (TASK_UTILS.build(self.train_cfg['assigner'])
                         if 'assigner' in self.train_cfg else None)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_heatmap = MODELS.build(loss_heatmap)

        self.shared_conv = nn.Conv2d(in_channels, hidden_channels, 3,
                                     padding=1)
        heat_out = nn.Conv2d(hidden_channels, num_classes, 3, padding=1)
        nn.init.constant_(heat_out.bias, -2.19)
        self.heatmap_head = nn.Sequential(
            ConvModule(hidden_channels, hidden_channels, 3, padding=1,
                       bias=False, norm_cfg=dict(type='BN')), heat_out)
        self.class_encoding = nn.Conv1d(num_classes, hidden_channels, 1)
        self.decoder = nn.ModuleList(
            TransFusionDecoderLayer(hidden_channels, num_heads, ffn_channels,
                                    dropout, fused_attention=fused_attention)
            for _ in range(num_decoder_layers))
        self.pred_heads = nn.ModuleList(
            nn.ModuleDict({
                name: _point_head(hidden_channels, head_channels, dim)
                for name, dim in REG_HEADS + (('heatmap', num_classes), )
            }) for _ in range(num_decoder_layers))
        for heads in self.pred_heads:
            nn.init.constant_(heads['heatmap'][-1].bias, -2.19)

    #: the config entry that sets ``input_grid`` (named in grid errors)
    input_grid_setting = ('bbox_head.bbox_coder (pc_range / (voxel_size x '
                          'out_size_factor))')

    @property
    def input_grid(self) -> Tuple[int, int]:
        """(X, Y) cells of the BEV feature the box coder assumes: its cell
        is ``voxel_size * out_size_factor`` metres over ``pc_range``."""
        c = self.bbox_coder
        return tuple(
            int(round((c.pc_range[a + 3] - c.pc_range[a]) /
                      (c.voxel_size[a] * c.out_size_factor)))
            for a in (0, 1))

    def _nms_groups(self, default: int, class_names, per_class
                    ) -> List[Tuple[int, List[int]]]:
        """[(window, [class indices])] from the query-init config."""
        sizes = [default] * self.num_classes
        if per_class:
            if class_names is None or len(class_names) != self.num_classes:
                raise ValueError(
                    'TransFusionHead.class_nms_kernel_sizes needs class_names '
                    f'with {self.num_classes} names (got {class_names}): set '
                    'bbox_head.class_names to the dataset classes')
            unknown = sorted(set(per_class) - set(class_names))
            if unknown:
                raise ValueError(f'class_nms_kernel_sizes names {unknown}, '
                                 f'not in class_names {list(class_names)}')
            for name, k in per_class.items():
                sizes[list(class_names).index(name)] = k
        if any(k < 1 or k % 2 == 0 for k in sizes):
            raise ValueError(f'heatmap NMS windows must be odd and >= 1, got '
                             f'{sizes}')
        return [(k, [c for c, s in enumerate(sizes) if s == k])
                for k in sorted(set(sizes))]

    def local_maxima(self, heat: Tensor) -> Tensor:
        """Keep the cells of (B, K, X, Y) scores that are the maximum of
        their class's window (1x1 keeps every cell); zero the rest."""
        if len(self.nms_groups) == 1:
            k = self.nms_groups[0][0]
            peak = F.max_pool2d(heat, k, stride=1, padding=k // 2)
        else:
            peak = torch.empty_like(heat)
            for k, classes in self.nms_groups:
                peak[:, classes] = F.max_pool2d(
                    heat[:, classes], k, stride=1, padding=k // 2)
        return heat * (heat == peak)

    # --------------------------------------------------------------- forward
    @staticmethod
    def _cell_centres(nx: int, ny: int, ref: Tensor) -> Tensor:
        """(1, X*Y, 2) feature-cell centres (x, y), flattened X-major."""
        xs = torch.arange(nx, device=ref.device, dtype=ref.dtype) + 0.5
        ys = torch.arange(ny, device=ref.device, dtype=ref.dtype) + 0.5
        gx, gy = torch.meshgrid(xs, ys, indexing='ij')
        return torch.stack([gx, gy], dim=-1).view(1, nx * ny, 2)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """Args:
            x: (B, C, X, Y) BEV feature.

        Returns:
            dict with ``dense_heatmap`` (B, K, X, Y) logits, ``heatmap``
            (B, K, P) query class logits, ``reg`` (B, P, 10) box codes,
            ``query_score`` (B, K, P) dense-heatmap score of each proposal.
            Box codes and logits are those of the last decoder layer.
        """
        if x.shape[1] != self.in_channels:
            raise ValueError(f'TransFusionHead expects {self.in_channels} '
                             f'input channels, got {x.shape[1]}; set '
                             'bbox_head.in_channels to the pts_neck output.')
        b, _, nx, ny = x.shape
        feat = self.shared_conv(x)
        flat = feat.flatten(2)  # (B, C, L)
        key_pos = self._cell_centres(nx, ny, feat).expand(b, -1, -1)
        dense = self.heatmap_head(feat)
        heat = dense.detach().sigmoid()
        heat_flat = self.local_maxima(heat).flatten(2)  # (B, K, L)
        num = min(self.num_proposals, heat_flat.shape[1] * heat_flat.shape[2])
        top = heat_flat.flatten(1).topk(num, dim=1).indices
        cls_idx = torch.div(top, heat_flat.shape[2], rounding_mode='floor')
        cell = top % heat_flat.shape[2]
        query = flat.gather(2, cell[:, None].expand(-1, flat.shape[1], -1))
        one_hot = F.one_hot(cls_idx, self.num_classes).permute(0, 2, 1)
        query = query + self.class_encoding(one_hot.to(feat.dtype))
        query_pos = key_pos.gather(1, cell[..., None].expand(-1, -1, 2))
        query = query.permute(0, 2, 1)  # (B, P, C)
        key = flat.permute(0, 2, 1)
        for layer, heads in zip(self.decoder, self.pred_heads):
            query = layer(query, key, query_pos, key_pos)
            q = query.permute(0, 2, 1)
            out = {name: head(q) for name, head in heads.items()}
            out['center'] = out['center'] + query_pos.permute(0, 2, 1)
            query_pos = out['center'].detach().permute(0, 2, 1)
        reg = torch.cat([out[name] for name, _ in REG_HEADS], dim=1)
        query_score = heat.flatten(2).gather(
            2, cell[:, None].expand(-1, self.num_classes, -1)) * one_hot
        return dict(dense_heatmap=dense, heatmap=out['heatmap'],
                    reg=reg.permute(0, 2, 1), query_score=query_score)

    # ----------------------------------------------------------------- targets
    def _heatmap_target(self, gt: InstanceData, shape: Tuple[int, int],
                        ref: Tensor) -> Tensor:
        """(K, X, Y) gaussian heatmap of the GT box centres, on the CPU.

        Drawn on the host (a few boxes, small windows): on a GPU, reading
        every box's radius and cell back would cost several host syncs per
        box; here the boxes and labels come over in one copy."""
        if len(gt) == 0:
            return torch.zeros((self.num_classes, *shape), dtype=ref.dtype)
        boxes = gt.bboxes_3d
        host = torch.cat([boxes.tensor, gt.labels_3d[:, None].to(
            boxes.tensor.dtype)], dim=1).cpu()  # the one device->host copy
        boxes = type(boxes)(host[:, :-1], box_dim=boxes.box_dim,
                            with_yaw=boxes.with_yaw)
        cell = self.bbox_coder.cell_size(host)
        radii = gaussian_radii(
            boxes.dims[:, :2] / cell,
            self.train_cfg.get('gaussian_overlap', 0.1)).long().clamp(
                min=self.train_cfg.get('min_radius', 2))
        # our rows are x and columns y (the reference drew each box with
        # draw_heatmap_gaussian(heatmap[label], (y, x), radius))
        return draw_gaussian_heatmaps(
            self.num_classes, shape, self.bbox_coder.encode(boxes)[:, :2],
            radii, host[:, -1].long(), ref.dtype)

    def _assign(self, logits: Tensor, reg: Tensor,
                gt: InstanceData) -> AssignResult:
        """Hungarian matching of the P queries of one sample to its GT."""
        boxes = LiDARInstance3DBoxes(
            self.bbox_coder.decode(reg), box_dim=9)
        pred = InstanceData(scores=logits, bboxes_3d=boxes)
        target = InstanceData(labels=gt.labels_3d.to(reg.device),
                              bboxes_3d=gt.bboxes_3d.to(reg.device))
        # the centre cost normalises by the range, as upstream's train_cfg
        # hands it over
        meta = dict(point_cloud_range=self.bbox_coder.pc_range)
        return self.assigner.assign(pred, target, img_meta=meta)

    # -------------------------------------------------------------- loss/pred
    def loss(self, x: Tensor, data_samples: List) -> Dict[str, Tensor]:
        """Heatmap, classification and box-regression losses."""
        if self.assigner is None:
            raise ValueError('TransFusionHead.loss needs train_cfg.assigner '
                             '(a HungarianAssigner config) in bbox_head.')
        out = self(x)
        # Targets, matching and losses in float32 whatever the autocast
        # state: half-precision targets break index_put (float GT into a
        # half tensor) and the matching costs need the range.
        with torch.autocast(x.device.type, enabled=False):
            return self._loss({k: v.float() for k, v in out.items()},
                              data_samples)

    def _loss(self, out: Dict[str, Tensor],
              data_samples: List) -> Dict[str, Tensor]:
        """:meth:`loss` on float32 head outputs, autocast off."""
        b, p = out['reg'].shape[:2]
        gts = [ds.gt_instances_3d for ds in data_samples]
        device = out['reg'].device
        labels = out['reg'].new_full((b, p), self.num_classes,
                                     dtype=torch.long)
        reg_target = out['reg'].new_zeros((b, p, 10))
        reg_weight = out['reg'].new_zeros((b, p, 10))
        code_w = self._const(
            self.train_cfg.get('code_weights', [1.0] * 10), out['reg'])
        heat_target = []
        num_pos = 0  # counted on the host: no device read-back
        for i, gt in enumerate(gts):
            heat_target.append(self._heatmap_target(
                gt, out['dense_heatmap'].shape[-2:], out['reg']))
            if len(gt) == 0:
                continue
            res = self._assign(out['heatmap'][i].detach().t(),
                               out['reg'][i].detach(), gt)
            pos = torch.nonzero(res.gt_inds > 0).squeeze(1)
            num_pos += len(pos)
            matched = res.gt_inds[pos] - 1
            gt_boxes = gt.bboxes_3d.to(device)
            labels[i, pos] = gt.labels_3d.to(device)[matched]
            reg_target[i, pos] = self.bbox_coder.encode(gt_boxes)[matched]
            reg_weight[i, pos] = code_w
        num_pos = max(num_pos, 1)
        heat_target = torch.stack(heat_target)  # (B, K, X, Y) on the host
        num_peaks = max(int(heat_target.eq(1).sum()), 1)
        heat_target = to_device_async(heat_target, device)
        loss_heatmap = self.loss_heatmap(
            clip_sigmoid(out['dense_heatmap'].float()), heat_target,
            avg_factor=num_peaks)
        loss_cls = self.loss_cls(
            out['heatmap'].permute(0, 2, 1).reshape(b * p, -1).float(),
            labels.view(-1), avg_factor=num_pos)
        loss_bbox = self.loss_bbox(
            out['reg'].reshape(b * p, -1).float(), reg_target.view(b * p, -1),
            reg_weight.view(b * p, -1), avg_factor=num_pos)
        return dict(loss_heatmap=loss_heatmap, loss_cls=loss_cls,
                    loss_bbox=loss_bbox)

    def predict(self, x: Tensor, data_samples: List) -> List[InstanceData]:
        """One ``InstanceData`` (bboxes_3d, scores_3d, labels_3d) a sample."""
        out = self(x)
        scores = out['heatmap'].sigmoid() * out['query_score']
        scores, labels = scores.max(dim=1)  # (B, P)
        boxes = self.bbox_coder.decode(out['reg'])
        keep = self.bbox_coder.in_range(boxes) & \
            (scores > self.test_cfg.get('score_threshold', 0.0))
        results = []
        for i, ds in enumerate(data_samples):
            k = keep[i]
            order = scores[i][k].argsort(descending=True)
            order = order[:self.test_cfg.get('max_num', self.num_proposals)]
            box_type = ds.metainfo.get('box_type_3d', LiDARInstance3DBoxes)
            results.append(InstanceData(
                bboxes_3d=box_type(boxes[i][k][order], box_dim=9),
                scores_3d=scores[i][k][order],
                labels_3d=labels[i][k][order]))
        return results
