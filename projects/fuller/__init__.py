"""FULLER-3D: multi-task camera+LiDAR BEVFusion with multi-level gradient
calibration (FULLER, ICCV 2023) as an MMDetection3D plugin.

Importing the package registers every module (``custom_imports``).
"""
__version__ = '0.1.0'

from . import calibration, datasets, engine, evaluation, models  # noqa: F401,E402,E501
