"""Metrics: BEV map segmentation (``BEVSegMetric``) and 3D detection
(``EmptySafeNuScenesMetric``: mmdet3d's ``NuScenesMetric`` that also scores
a model with no detection; see docs/data.md)."""
from .bev_seg_metric import BEVSegMetric, confusion_counts
from .nuscenes_metric import EmptySafeNuScenesMetric

__all__ = ['BEVSegMetric', 'EmptySafeNuScenesMetric', 'confusion_counts']
