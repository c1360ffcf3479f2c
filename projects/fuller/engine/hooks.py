"""Hook that logs FULLER's gradient statistics and schedules the levels."""
from typing import Dict, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.registry import HOOKS as MMENGINE_HOOKS

from ..registry import HOOKS
from .optim_wrapper import LEVELS, STATS_PREFIX, FullerOptimWrapper


@MMENGINE_HOOKS.register_module()
@HOOKS.register_module()
class GradientCalibrationHook(Hook):
    """Logs the calibration statistics and switches levels on or off.

    Every ``interval`` training iterations, the mean over those iterations of
    each ``fuller/*`` scalar that :class:`FullerOptimWrapper` published goes
    to the logger (one text line) and to every visualiser backend
    (``LocalVisBackend``: JSON lines in ``<work_dir>/<timestamp>/vis_data/
    scalars.json``; ``TensorboardVisBackend``; ...).

    With another optimizer wrapper (plain ``OptimWrapper``) the hook only
    warns that there is nothing to log, unless it has ``switches``, which
    need a :class:`FullerOptimWrapper` (``TypeError``).

    Args:
        interval: logging period in iterations.
        switches: level schedule, a list of dicts each with exactly one of
            ``iter`` / ``epoch`` (0-based, the first iteration or epoch the
            change applies to) and ``inter`` and/or ``intra`` (a calibrator
            config or None for off), e.g.
            ``[dict(iter=500, inter=dict(type='IMTLG')), dict(epoch=6,
            intra=None)]``. The state at any time is the config of the
            optimizer wrapper overridden by every switch already due, in list
            order, so a resumed run ends up in the same state.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self,
                 interval: int = 50,
                 switches: Optional[Sequence[dict]] = None) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval
        self.switches = [self._check_switch(s) for s in (switches or [])]
        self._initial: Optional[Dict[str, Optional[dict]]] = None

    @staticmethod
    def _check_switch(switch: dict) -> dict:
        switch = dict(switch)
        when = [k for k in ('iter', 'epoch') if k in switch]
        levels = [k for k in LEVELS if k in switch]
        extra = set(switch) - {'iter', 'epoch'} - set(LEVELS)
        if len(when) != 1 or not levels or extra:
            raise ValueError(
                'each switch needs exactly one of iter/epoch and at least one '
                f'of {list(LEVELS)}, e.g. dict(iter=100, inter=None); got '
                f'{switch}')
        if switch[when[0]] < 0:
            raise ValueError(f'switch time must be >= 0, got {switch}')
        return switch

    @staticmethod
    def _wrapper(runner) -> FullerOptimWrapper:
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, FullerOptimWrapper):
            raise TypeError(
                'GradientCalibrationHook needs optim_wrapper=dict(type='
                "'FullerOptimWrapper', ...) (or 'FullerAmpOptimWrapper'), got "
                f'{type(wrapper).__name__}')
        return wrapper

    def before_train(self, runner) -> None:
        if not isinstance(runner.optim_wrapper, FullerOptimWrapper):
            if self.switches:
                self._wrapper(runner)  # raises: switches need the wrapper
            runner.logger.warning(
                'GradientCalibrationHook: the optimizer wrapper is '
                f'{type(runner.optim_wrapper).__name__}, not '
                'FullerOptimWrapper; no calibration statistics to log')
            return
        wrapper = self._wrapper(runner)
        self._initial = {lvl: wrapper.calibration_cfg[lvl] for lvl in LEVELS}

    def due_config(self, iteration: int,
                   epoch: int) -> Dict[str, Optional[dict]]:
        """Level configs in force at (iteration, epoch)."""
        state = dict(self._initial)
        for switch in self.switches:
            due = (switch['iter'] <= iteration
                   if 'iter' in switch else switch['epoch'] <= epoch)
            if due:
                state.update({k: switch[k] for k in LEVELS if k in switch})
        return state

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if not self.switches:
            return
        wrapper = self._wrapper(runner)
        for level, cfg in self.due_config(runner.iter, runner.epoch).items():
            if cfg != wrapper.calibration_cfg[level]:
                runner.logger.info(f'GradientCalibrationHook: iter '
                                   f'{runner.iter}, {level} -> {cfg}')
                wrapper.set_calibrator(level, cfg)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        scalars = self.collect(runner.message_hub, self.interval)
        if not scalars:
            return
        runner.visualizer.add_scalars(scalars, step=runner.iter + 1)
        text = ', '.join(f'{k[len(STATS_PREFIX):]}: {v:.4g}'
                         for k, v in sorted(scalars.items()))
        runner.logger.info(f'FULLER iter {runner.iter + 1}: {text}')

    @staticmethod
    def collect(message_hub, window: int) -> Dict[str, float]:
        """Means over the last ``window`` updates of every ``fuller/``
        scalar."""
        out = {}
        for key, buf in message_hub.log_scalars.items():
            if key.startswith(STATS_PREFIX):
                out[key] = float(buf.mean(window))
        return out
