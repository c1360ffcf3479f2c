"""Metrics: BEV map segmentation (``BEVSegMetric``); 3D detection goes
through mmdet3d's ``NuScenesMetric`` (see docs/data.md)."""
from .bev_seg_metric import BEVSegMetric, confusion_counts

__all__ = ['BEVSegMetric', 'confusion_counts']
