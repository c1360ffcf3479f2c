"""Multi-task nuScenes dataset: mmdet3d's ``NuScenesDataset`` plus what the
map task and the camera branch need from the info files."""
from typing import Optional

import numpy as np
from mmdet3d.datasets import NuScenesDataset

from ..registry import DATASETS
from .metainfo import CLASS_NAMES, MAP_CLASSES


@DATASETS.register_module()
class FullerNuScenesDataset(NuScenesDataset):
    """nuScenes for 3D detection + BEV map segmentation.

    Same arguments as ``NuScenesDataset``. Differences:

    - ``metainfo['classes']`` defaults to the project's class order
      (``CLASS_NAMES``); labels of the info files (mmdet3d's converter
      order, kept in ``METAINFO``) are remapped to it;
    - ``metainfo['map_classes']`` defaults to ``MAP_CLASSES``;
    - no default ``version``: the info file's own (v1.0-mini, -trainval) is
      the one the detection metric (``EmptySafeNuScenesMetric``) must
      evaluate against;
    - every sample carries ``map_location`` (None when the info file has
      none, e.g. infos not made by tools/create_data.py;
      ``LoadBEVSegmentation`` then raises) and ``ego2global`` as a (4, 4)
      array.
    """

    # Label indices of the info files are in the converter's class order.
    METAINFO = {k: v for k, v in NuScenesDataset.METAINFO.items()
                if k != 'version'}

    def __init__(self, *args, metainfo: Optional[dict] = None, **kwargs):
        metainfo = dict(metainfo or {})
        metainfo.setdefault('classes', CLASS_NAMES)
        metainfo.setdefault('map_classes', MAP_CLASSES)
        super().__init__(*args, metainfo=metainfo, **kwargs)

    def parse_data_info(self, info: dict) -> dict:
        info = super().parse_data_info(info)
        info.setdefault('map_location', None)
        info['ego2global'] = np.asarray(info['ego2global'], np.float64)
        return info
