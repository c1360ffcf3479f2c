"""Importing the plugin registers its modules in the mmdet3d registries."""
from mmengine.registry import init_default_scope


def test_plugin_registers_components():
    import fuller  # noqa: F401
    import fuller.testing  # noqa: F401
    from fuller.registry import CALIBRATORS, DATASETS, HOOKS, MODELS
    init_default_scope('mmdet3d')
    assert MODELS.get('ToyFusionModel') is not None
    assert DATASETS.get('ToyMultiTaskDataset') is not None
    assert HOOKS.get('DumpParametersHook') is not None
    assert CALIBRATORS.name == 'calibrator'


def test_custom_imports_config_builds_model():
    from mmengine.config import Config
    from mmengine.registry import MODELS as ROOT_MODELS  # noqa: F401

    from fuller.registry import MODELS
    from fuller.testing.tools import REPO, TOY_CONFIG
    cfg = Config.fromfile(str(REPO / TOY_CONFIG))
    assert 'fuller' in cfg.custom_imports['imports']
    init_default_scope('mmdet3d')
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'ToyFusionModel'
