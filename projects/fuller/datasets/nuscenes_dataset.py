"""Multi-task nuScenes dataset: mmdet3d's ``NuScenesDataset`` plus what the
map task and the camera branch need from the info files."""
import numpy as np
from mmdet3d.datasets import NuScenesDataset

from ..registry import DATASETS
from .metainfo import CLASS_NAMES, MAP_CLASSES


@DATASETS.register_module()
class FullerNuScenesDataset(NuScenesDataset):
    """nuScenes for 3D detection + BEV map segmentation.

    Same arguments as ``NuScenesDataset``. Each sample additionally carries
    ``map_location`` (None when the info file has none, e.g. infos not made
    by tools/create_data.py; ``LoadBEVSegmentation`` then raises),
    ``ego2global`` as a (4, 4) array, and the dataset metainfo gains
    ``map_classes`` and takes ``version`` from the info file.
    """

    # No default 'version': the info file's own (v1.0-mini, -trainval) is
    # what NuScenesMetric must evaluate against.
    METAINFO = dict({k: v for k, v in NuScenesDataset.METAINFO.items()
                     if k != 'version'}, classes=CLASS_NAMES,
                    map_classes=MAP_CLASSES)

    def parse_data_info(self, info: dict) -> dict:
        info = super().parse_data_info(info)
        info.setdefault('map_location', None)
        info['ego2global'] = np.asarray(info['ego2global'], np.float64)
        return info
