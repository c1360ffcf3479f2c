"""The Runner keys ``--cfg-options`` are checked against
(``fuller.engine.config_check``): read from mmengine's public ``Runner``
signature plus a short list of keys the Runner reads from its config alone,
so a mmengine upgrade that drops or renames a key we rely on fails here.
"""
import inspect

import pytest
from mmengine.runner import Runner

from fuller.engine.config_check import (RUNNER_CFG_ONLY_KEYS, check_options,
                                        runner_keys, runner_signature_keys)

#: Top-level keys our configs and tools set, which mmengine's
#: ``Runner.from_cfg`` must keep passing to ``Runner.__init__``.
RELIED_ON = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'optim_wrapper',
    'param_scheduler', 'val_evaluator', 'test_evaluator', 'default_hooks',
    'custom_hooks', 'load_from', 'resume', 'launcher', 'env_cfg',
    'log_processor', 'log_level', 'visualizer', 'default_scope', 'randomness')


@pytest.mark.parametrize('key', RELIED_ON)
def test_runner_signature_keeps_the_keys_we_rely_on(key):
    params = inspect.signature(Runner.__init__).parameters
    assert key in params, (
        f'mmengine.runner.Runner.__init__ no longer takes "{key}": the '
        'configs set it, so --cfg-options checks and runs would break')
    assert key in runner_signature_keys() and key in runner_keys()


def test_signature_keys_leave_out_self_and_the_config_itself():
    keys = runner_signature_keys()
    assert 'self' not in keys and 'cfg' not in keys
    assert keys == set(inspect.signature(Runner.__init__).parameters) - {
        'self', 'cfg'}


def test_config_only_keys_are_no_constructor_parameters():
    """Should mmengine make one of them a parameter, the signature covers it
    and the constant can shrink."""
    assert not RUNNER_CFG_ONLY_KEYS & runner_signature_keys()
    assert RUNNER_CFG_ONLY_KEYS <= runner_keys()
    assert {'find_unused_parameters', 'compile', 'model_wrapper_cfg',
            'runner_type'} <= RUNNER_CFG_ONLY_KEYS


def test_runner_keys_add_the_configs_own_keys():
    cfg = dict(map_classes=['a'], train_cfg=dict(max_epochs=1))
    assert 'map_classes' not in runner_keys()
    assert runner_keys(cfg) == runner_keys() | {'map_classes'}


@pytest.mark.parametrize('options, expected', [
    ({'train_cfg.max_epoch': 3}, 'did you mean train_cfg.max_epochs?'),
    ({'train_cfg.max_epochs': 'two'}, 'expects an integer'),
    ({'train_cfg.max_epochs': 3, 'train_cfg.val_interval': 1}, None),
])
def test_check_options_on_a_small_tree(options, expected):
    root = dict(train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=2))
    problems = check_options(root, options)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems
