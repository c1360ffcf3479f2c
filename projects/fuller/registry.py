"""Registries of the plugin.

Models, datasets, transforms, metrics, hooks and optimizer wrappers go into the
MMDetection3D registries (``mmdet3d.registry``), so configs keep
``default_scope='mmdet3d'`` and every upstream component stays reachable.
Only the gradient calibrators, which have no upstream counterpart, get a
registry of their own.
"""
from mmdet3d.registry import (DATASETS, HOOKS, METRICS, MODELS,  # noqa: F401
                              OPTIM_WRAPPERS, TRANSFORMS)
from mmengine.registry import Registry

#: Task-level (``G -> g``) and modality-level (``[g_cam, g_lid] -> [...]``)
#: gradient calibrators, built with ``CALIBRATORS.build(dict(type=...))``.
CALIBRATORS = Registry('calibrator', locations=['fuller.calibration'])
