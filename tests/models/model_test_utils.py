"""Helpers of the model tests: config loading and model building.

(A module of its own, not conftest.py: several test folders have a
conftest.py, and ``from conftest import ...`` would be ambiguous.)
"""
import os
import os.path as osp

from mmengine.config import Config

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
# the real nuScenes sample; FULLER_NUSCENES_DEMO as in tests/conftest.py
DEMO = os.environ.get('FULLER_NUSCENES_DEMO') or osp.abspath(
    osp.join(REPO, '..', 'shared', 'data', 'nuscenes-demo'))


def load_cfg(rel_path: str) -> Config:
    """Load a config by its path relative to the repository root."""
    return Config.fromfile(osp.join(REPO, rel_path))


def build_model(model_cfg):
    """Build a model config with the mmdet3d ``MODELS`` registry."""
    from fuller.registry import MODELS
    return MODELS.build(model_cfg)
