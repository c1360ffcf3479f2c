"""Test-only pieces that interrupt a training run at a known point.

- :class:`SignalAtIterHook` sends a signal to its own process before a given
  iteration, so a test knows exactly which iteration a stop must save.
- :class:`BlockingLocalBackend` (``backend_args=dict(backend=
  'fuller_blocking_local', ...)`` of a checkpoint hook) writes half of a
  chosen file, announces it through an event file and then blocks until the
  test kills the process: a kill "during a checkpoint write" without timing
  luck.
"""
import os
import os.path as osp
import signal as signal_lib
import time
from pathlib import Path
from typing import Optional, Union

from mmengine.dist import get_rank
from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook

from ..registry import HOOKS


@HOOKS.register_module()
class SignalAtIterHook(Hook):
    """Send ``signal`` to this process before iteration ``iter`` (0-based).

    Args:
        iter: the iteration before which the signal is sent.
        signal: its name, e.g. ``'SIGTERM'``.
        rank: only this rank signals itself (None: every rank).

    Also writes ``<work_dir>/done_rank{R}.txt``, the number of iterations
    this rank finished, after each iteration: tests compare ranks with it.
    """

    priority = 'LOW'  # before GracefulStopHook (LOWEST), which may exit

    def __init__(self, iter: int, signal: str = 'SIGTERM',
                 rank: Optional[int] = None) -> None:
        self.iter = iter
        self.signum = getattr(signal_lib, signal)
        self.rank = rank

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if runner.iter == self.iter and self.rank in (None, get_rank()):
            os.kill(os.getpid(), self.signum)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        path = osp.join(runner.work_dir, f'done_rank{get_rank()}.txt')
        Path(path).write_text(str(runner.iter + 1))


@register_backend('fuller_blocking_local')
class BlockingLocalBackend(LocalBackend):
    """Local storage that stops for good half-way through one write.

    Args:
        block_on: a write to a file whose name contains this string writes
            half of its bytes, creates ``event_file`` and then sleeps until
            the process is killed.
        event_file: the file announcing that the write is under way.
    """

    def __init__(self, block_on: str, event_file: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.block_on = block_on
        self.event_file = event_file

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        if self.block_on not in osp.basename(str(filepath)):
            super().put(obj, filepath)
            return
        os.makedirs(osp.dirname(str(filepath)), exist_ok=True)
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
            f.flush()
            os.fsync(f.fileno())
        Path(self.event_file).touch()
        while True:  # the test kills the process here
            time.sleep(1)
