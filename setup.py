"""Installs the FULLER-3D plugin: the package ``fuller`` lives in projects/fuller/."""
from setuptools import find_packages, setup

setup(
    name='fuller-3d',
    version='0.1.0',
    description='FULLER multi-level gradient calibration for multi-task '
    'camera+LiDAR BEVFusion on MMDetection3D',
    package_dir={'': 'projects'},
    packages=find_packages('projects', include=['fuller', 'fuller.*']),
    python_requires='>=3.8',
    license='Apache-2.0',
)
