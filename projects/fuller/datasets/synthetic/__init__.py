"""Synthetic nuScenes: a generator that writes a small dataset in the exact
nuScenes on-disk format (tables, map expansion, LiDAR sweeps, camera JPEGs).

Only numpy, OpenCV, shapely and nuscenes-devkit are needed; see
``tools/make_synthetic_nuscenes.py`` and docs/data.md.
"""
from .generator import (DEFAULT_SET, GENERATOR_VERSION, SUMMARY_FILE,
                        SyntheticNuScenes, generate, split_scene_names)
from .sensors import SENSOR_PROFILES, SensorProfile

__all__ = ['SyntheticNuScenes', 'generate', 'split_scene_names',
           'DEFAULT_SET', 'GENERATOR_VERSION', 'SUMMARY_FILE',
           'SENSOR_PROFILES', 'SensorProfile']
