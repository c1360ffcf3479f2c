"""Registers the plugin and mmdet3d's modules once for the model tests."""
import pytest
import torch


@pytest.fixture(scope='session', autouse=True)
def _register():
    import fuller  # noqa: F401
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.set_num_threads(2)
