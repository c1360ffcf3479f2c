"""Shared fixtures of the model tests: plugin registration, config loading."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DEMO = osp.abspath(osp.join(REPO, '..', 'shared', 'data', 'nuscenes-demo'))


@pytest.fixture(scope='session', autouse=True)
def _register():
    import fuller  # noqa: F401
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.set_num_threads(2)


def load_cfg(rel_path: str) -> Config:
    return Config.fromfile(osp.join(REPO, rel_path))


def build_model(model_cfg):
    from fuller.registry import MODELS
    return MODELS.build(model_cfg)
