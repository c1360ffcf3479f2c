"""BEV map-segmentation metric (BEVFusion's map mIoU protocol)."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ..datasets.metainfo import MAP_CLASSES
from ..registry import METRICS


def _field(sample, key):
    value = sample.get(key) if isinstance(sample, dict) else getattr(
        sample, key, None)
    if value is None:
        raise KeyError(f'data sample has no {key!r}: the model must return '
                       f'pred_masks_bev (C, X, Y) probabilities and keep the '
                       f'packed gt_masks_bev (C, X, Y)')
    return torch.as_tensor(value)


def confusion_counts(pred: torch.Tensor, gt: torch.Tensor,
                     thresholds: Sequence[float]) -> torch.Tensor:
    """TP, FP, FN per threshold and class.

    Args:
        pred: (C, X, Y) probabilities; gt: (C, X, Y) {0, 1}.
    Returns:
        (T, C, 3) int64 counts of (pred >= t) against gt.
    """
    if pred.shape != gt.shape:
        raise ValueError(f'pred_masks_bev {tuple(pred.shape)} and gt_masks_bev '
                         f'{tuple(gt.shape)} differ: predict on the map grid '
                         f'of the labels (the seg head resamples to it)')
    pred = pred.detach().float().flatten(1)
    gt = gt.detach().bool().flatten(1)
    th = torch.as_tensor(thresholds, dtype=pred.dtype,
                         device=pred.device)[:, None, None]
    pos = pred[None] >= th  # (T, C, N)
    tp = (pos & gt[None]).sum(-1)
    fp = (pos & ~gt[None]).sum(-1)
    fn = (~pos & gt[None]).sum(-1)
    return torch.stack([tp, fp, fn], -1).cpu().long()


@METRICS.register_module()
class BEVSegMetric(BaseMetric):
    """Map mIoU: for every class and threshold t, TP/FP/FN of
    ``pred >= t`` are summed over the whole split; IoU = TP / (TP + FP + FN);
    a class's IoU is its best over the thresholds; mIoU is their mean.
    A class with no ground-truth cell in the split gets NaN and is left out
    of the mean.

    Per-sample counts are what ``process`` stores, so mmengine's result
    collection over ranks gives exactly the single-process sums.

    Args:
        classes: map classes, in channel order (default: the dataset's
            ``map_classes`` or ``MAP_CLASSES``).
        thresholds: probability thresholds (default 0.35, 0.40, ..., 0.65).
        prefix: metric name prefix (default 'map').
    Returns (from ``evaluate``): ``map/IoU.<class>``, ``map/mIoU`` and
    ``map/IoU.<class>@<t>`` per threshold. The logged table names the
    ``drivable_area_source`` of the labels (the samples' metainfo, set by
    ``LoadBEVSegmentation``): the map's ``drivable_area`` layer or
    ``road_segment+lane``.
    """
    default_prefix = 'map'

    def __init__(self, classes: Optional[Sequence[str]] = None,
                 thresholds: Sequence[float] = tuple(
                     np.round(np.arange(0.35, 0.66, 0.05), 2)),
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.classes = None if classes is None else tuple(classes)
        self.thresholds = tuple(float(t) for t in thresholds)
        #: ``drivable_area_source`` of the scored labels (from the samples)
        self.label_sources = set()

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            source = sample.get('drivable_area_source') if isinstance(
                sample, dict) else sample.metainfo.get('drivable_area_source')
            if source:
                self.label_sources.add(source)
            self.results.append(confusion_counts(
                _field(sample, 'pred_masks_bev'),
                _field(sample, 'gt_masks_bev'), self.thresholds))

    def _class_names(self, num: int) -> List[str]:
        names = self.classes or (self.dataset_meta or {}).get('map_classes') \
            or MAP_CLASSES
        if len(names) != num:
            raise ValueError(f'{num} map channels but {len(names)} class '
                             f'names {tuple(names)}: set classes=...')
        return list(names)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if not results:
            raise ValueError('BEVSegMetric got no samples')
        counts = torch.stack(results).sum(0).double()  # (T, C, 3)
        tp, fp, fn = counts.unbind(-1)
        iou = tp / (tp + fp + fn).clamp(min=1)  # (T, C)
        best = iou.max(0).values
        # A class without any ground-truth cell has no IoU: NaN, left out of
        # the mean (otherwise a perfect prediction could not reach 1).
        absent = (tp + fn)[0] == 0
        best[absent] = float('nan')
        names = self._class_names(best.numel())
        out = {}
        for c, name in enumerate(names):
            out[f'IoU.{name}'] = float(best[c])
            for t, th in enumerate(self.thresholds):
                out[f'IoU.{name}@{th:.2f}'] = float(iou[t, c])
        if absent.all():
            raise ValueError('no ground-truth map cell of any class in the '
                             'evaluated split: check the map labels')
        out['mIoU'] = float(best[~absent].mean())
        if absent.any():
            MMLogger.get_current_instance().warning(
                'map classes without ground truth (IoU NaN, not in mIoU): '
                + ', '.join(n for n, a in zip(names, absent) if a))
        table = ' | '.join(f'{n} {best[c]:.4f}' for c, n in enumerate(names))
        source = ', '.join(sorted(self.label_sources)) or 'not recorded'
        self.label_sources = set()
        MMLogger.get_current_instance().info(
            f'map IoU (drivable_area labels: {source}): {table} | '
            f'mIoU {out["mIoU"]:.4f}')
        return out
