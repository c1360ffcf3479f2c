"""Multi-task nuScenes data: dataset, transforms, map rasterisation, info
files and the synthetic nuScenes generator (see docs/data.md)."""
from .map_raster import MapRasterizer, check_map_expansion
from .metainfo import CAMERAS, CLASS_NAMES, MAP_CLASSES, MAP_LAYERS
from .nuscenes_dataset import FullerNuScenesDataset
from .point_loading import (CheckedLoadPointsFromFile,
                            CheckedLoadPointsFromMultiSweeps)
from .transforms import (BEVGlobalAug, FullerDataBaseSampler,
                         LoadBEVSegmentation,
                         LoadMultiViewImages, MultiViewImageAug,
                         PackMultiTaskInputs, SeededPointShuffle,
                         apply_bev_transform,
                         bev_aug_matrix)

__all__ = [
    'FullerNuScenesDataset', 'CheckedLoadPointsFromFile',
    'CheckedLoadPointsFromMultiSweeps', 'LoadMultiViewImages', 'MultiViewImageAug',
    'BEVGlobalAug', 'LoadBEVSegmentation', 'PackMultiTaskInputs',
    'MapRasterizer', 'check_map_expansion', 'apply_bev_transform',
    'bev_aug_matrix', 'FullerDataBaseSampler', 'CLASS_NAMES', 'MAP_CLASSES',
    'MAP_LAYERS', 'CAMERAS', 'SeededPointShuffle'
]
