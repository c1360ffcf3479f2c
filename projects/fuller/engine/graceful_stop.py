"""Stop a training run on SIGTERM / SIGINT without losing the work done.

Clusters end jobs with SIGTERM (Slurm on preemption and at the time limit,
Kubernetes on eviction) and give them a grace period (Slurm's ``KillWait``,
30 s by default) before SIGKILL. :class:`GracefulStopHook` turns the first
SIGTERM or SIGINT (Ctrl-C) into: finish the current iteration, save a
checkpoint of it, point ``last_checkpoint`` at it, exit with 128 + the signal
number (143 for SIGTERM, 130 for SIGINT). A second signal stops at once.

Distributed runs: the signal may reach the ranks at different moments (or
only some of them), so every rank contributes its request to a max
all-reduce at the end of each iteration; all ranks therefore stop after the
same iteration, rank 0 writes the one checkpoint, and everybody waits for it
before exiting (a launcher that sees one rank exit kills the others).

``tools/train.py`` adds the hook to every config; in a config::

    custom_hooks = [dict(type='GracefulStopHook')]

:class:`ResumableEpochBasedTrainLoop` lets ``--resume`` continue such a
mid-epoch checkpoint with the next batch of the interrupted epoch instead of
restarting the epoch.
"""
import atexit
import multiprocessing
import multiprocessing.context
import os
import signal
import threading
import time
from itertools import islice
from typing import Dict, Iterator, Optional, Sequence

import torch
from mmdet3d.registry import LOOPS
from mmengine.dist import all_reduce, barrier, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import BatchSampler, Sampler

from ..registry import HOOKS
from .atomic_checkpoint import AtomicCheckpointHook, save_checkpoint_atomically


class TrainingStopped(SystemExit):
    """Raised on every rank after the stop checkpoint is written.

    A ``SystemExit`` whose code is 128 + the signal number, the status a
    shell reports for a process ended by that signal; uncaught it ends the
    program quietly with that status.
    """

    def __init__(self, signum: int, checkpoint: str) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.checkpoint = checkpoint


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


#: Signals blocked while a data-loader worker is forked.
_WORKER_BLOCKED = (signal.SIGTERM, signal.SIGINT)


class _IgnoreInWorker:
    """``worker_init_fn`` wrapper: data-loader workers ignore the stop
    signals while the trainer runs.

    Slurm and a terminal's Ctrl-C signal every process of the job, workers
    included. torch's workers die of SIGTERM, and the trainer then fails at
    once ("DataLoader worker ... is killed by signal") before it can save.
    Ignoring them leaves the decision to the trainer. Once ``trainer_done``
    is set (training over, or the trainer exiting), a stop signal ends the
    worker again: Python's exit handler terminates the still-running workers
    of an iteration-based loop with SIGTERM and then waits for them, which
    would wait forever on a worker that ignores it. A class, not a closure,
    so that spawned workers can unpickle it.
    """

    def __init__(self, signals: Sequence[int], trainer_done,
                 init_fn=None) -> None:
        self.signals = list(signals)
        self.trainer_done = trainer_done
        self.init_fn = init_fn

    def _on_signal(self, signum: int, frame) -> None:
        if self.trainer_done.is_set():
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def __call__(self, worker_id: int) -> None:
        for signum in self.signals:
            signal.signal(signum, self._on_signal)
        # Forked by _ShieldedForkProcess: a signal that came meanwhile was
        # held back; now that it is ignored it is dropped.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WORKER_BLOCKED)
        if self.init_fn is not None:
            self.init_fn(worker_id)


class _ShieldedForkProcess(multiprocessing.context.ForkProcess):
    """A fork-started worker that begins life with the stop signals blocked.

    torch installs its own SIGTERM handler in a worker (die unless the
    trainer sent it) before the init function runs; a job-wide signal in
    that gap would still kill the worker. Blocked signals stay pending
    instead, and :class:`_IgnoreInWorker` drops them.
    """

    def start(self) -> None:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_BLOCKED)
        try:
            super().start()
        finally:
            # The trainer's own pending signal is delivered here.
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _ShieldedForkContext(multiprocessing.context.ForkContext):
    Process = _ShieldedForkProcess


def _shield_workers(loader, signals: Sequence[int], trainer_done) -> None:
    """Make ``loader``'s future workers ignore ``signals`` until
    ``trainer_done`` is set (idempotent)."""
    if loader is None or not getattr(loader, 'num_workers', 0):
        return
    if not isinstance(loader.worker_init_fn, _IgnoreInWorker):
        loader.worker_init_fn = _IgnoreInWorker(signals, trainer_done,
                                                loader.worker_init_fn)
    context = loader.multiprocessing_context
    method = (context.get_start_method() if context is not None else
              multiprocessing.get_start_method())
    if method == 'fork' and not isinstance(context, _ShieldedForkContext):
        # (spawn / forkserver workers keep a short unshielded start.)
        loader.multiprocessing_context = _ShieldedForkContext()


@MMENGINE_HOOKS.register_module()
@HOOKS.register_module()
class GracefulStopHook(Hook):
    """Save and exit after the current iteration on SIGTERM / SIGINT.

    Args:
        signals: names of the signals to handle. A signal the process was
            started with set to "ignore" (e.g. SIGINT of a background job of
            a shell script) stays ignored.
        repeat_grace: seconds during which a repeat of the first signal does
            not count as a second request. torchrun forwards the signal it
            gets to its workers, which a terminal's Ctrl-C has already
            reached: that copy arrives within milliseconds.

    The checkpoint is ``iter_<N>.pth`` (N iterations done) next to the
    regular ones (the checkpoint hook's ``out_dir`` when local, else the work
    dir), written atomically, and ``last_checkpoint`` names it.
    """

    # After every other hook of the iteration (logger, schedulers,
    # checkpoint): the saved state is that of the finished iteration.
    priority = 'LOWEST'

    def __init__(self,
                 signals: Sequence[str] = ('SIGTERM', 'SIGINT'),
                 repeat_grace: float = 1.0) -> None:
        self.signals = [getattr(signal, name) for name in signals]
        self.repeat_grace = repeat_grace
        self.requested: Optional[int] = None
        self._requested_at = 0.0
        self._previous: Dict[int, object] = {}
        self._rank = 0
        self._pid = os.getpid()
        self._training = False

    # --------------------------------------------------------- signal side
    def install(self) -> None:
        """Install the handlers (main thread only, as Python requires)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._rank, self._pid = get_rank(), os.getpid()
        for signum in self.signals:
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN:
                continue  # the launcher asked for it to be ignored
            self._previous[signum] = current
            signal.signal(signum, self._on_signal)

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def _on_signal(self, signum: int, frame) -> None:
        if os.getpid() != self._pid:
            # A forked data-loader worker inherited the handler: the signal
            # reached the whole process group; the trainer decides.
            return
        now = time.monotonic()
        if self.requested is None:
            self.requested, self._requested_at = signum, now
            again = 'Ctrl-C' if signum == signal.SIGINT else signal_name(signum)
            self._say(f'{signal_name(signum)} received: saving a checkpoint '
                      f'after the current iteration, then exiting ({again} '
                      'again stops at once)')
            return
        if now - self._requested_at < self.repeat_grace:
            return  # the launcher's forwarded copy of the same signal
        # Second request: die of the signal now, without saving.
        self.uninstall()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def _say(self, text: str) -> None:
        # os.write: safe inside a signal handler (no logging locks).
        if self._rank == 0:
            os.write(2, f'\n{text}\n'.encode())

    # ------------------------------------------------------- runner side
    def before_train(self, runner) -> None:
        self.requested = None
        self._training = True
        self.install()
        # Workers start when a loader is iterated, i.e. after this point.
        # They may be stopped again once training is over; the exit handler
        # registered here runs before multiprocessing's (atexit is LIFO),
        # which terminates leftover workers with SIGTERM.
        self._trainer_done = multiprocessing.Event()
        atexit.register(self._trainer_done.set)
        for loader in (runner.train_loop.dataloader,
                       getattr(runner.val_loop, 'dataloader', None)):
            _shield_workers(loader, list(self._previous), self._trainer_done)
        _warn_if_epoch_restarts(runner)

    def after_train(self, runner) -> None:
        self._training = False
        self._trainer_done.set()
        self.uninstall()

    def _agreed_signal(self) -> int:
        """The signal every rank stops for (0: none); one small all-reduce
        per iteration in distributed runs."""
        mine = self.requested or 0
        if get_world_size() == 1:
            return mine
        flag = torch.tensor([mine], dtype=torch.int64)
        all_reduce(flag, op='max')
        return int(flag.item())

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        signum = self._agreed_signal()
        if signum:
            # N = runner.iter + 1 iterations are done; resume at epoch E,
            # iteration N (the loop skips the epoch's consumed batches).
            self._stop(runner, signum, runner.iter + 1,
                       dict(epoch=runner.epoch, iter=runner.iter + 1))

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch=None,
                       outputs=None) -> None:
        if not self._training:
            return  # a validation outside training (tools/test.py)
        signum = self._agreed_signal()
        if signum:
            # Validation after an epoch: runner.epoch already counts it.
            self._stop(runner, signum, runner.iter,
                       dict(epoch=runner.epoch, iter=runner.iter))

    def _stop(self, runner, signum: int, done: int, meta: dict) -> None:
        out_dir, backend_args = _checkpoint_dir(runner)
        path = save_checkpoint_atomically(
            runner, out_dir, f'iter_{done}.pth', meta=meta, by_epoch=False,
            backend_args=backend_args)
        barrier()  # nobody exits before rank 0 has written the file
        runner.logger.warning(
            f'Stopped by {signal_name(signum)} after iteration {done}: saved '
            f'{path}; --resume continues from it')
        self._training = False
        self.uninstall()
        raise TrainingStopped(signum, path)


def _checkpoint_dir(runner):
    """Where the regular checkpoints go (local only), and their backend."""
    for hook in runner.hooks:
        if isinstance(hook, AtomicCheckpointHook) and hook._is_local():
            return hook.out_dir, hook.backend_args
        if isinstance(hook, CheckpointHook) and isinstance(
                getattr(hook, 'out_dir', None), str) and os.path.isdir(
                    hook.out_dir):
            return hook.out_dir, None
    return runner.work_dir, None


def _consumed_in_epoch(loop) -> int:
    """Batches of the current epoch a mid-epoch checkpoint already trained."""
    return loop.iter - loop.epoch * len(loop.dataloader)


def _warn_if_epoch_restarts(runner) -> None:
    loop = runner.train_loop
    if (isinstance(loop, EpochBasedTrainLoop)
            and not isinstance(loop, ResumableEpochBasedTrainLoop)
            and 0 < _consumed_in_epoch(loop) <= len(loop.dataloader)):
        runner.logger.warning(
            f'Resumed inside epoch {loop.epoch + 1} after its first '
            f'{_consumed_in_epoch(loop)} iterations: EpochBasedTrainLoop '
            'restarts the epoch, so these iterations are trained again. Use '
            "train_cfg=dict(type='ResumableEpochBasedTrainLoop', ...) to "
            'continue with the next batch instead')


class _SkipFirst(Sampler):
    """Yields a sampler's indices after the first ``count``, for one pass.

    Wrapping the sampler (not the data loader) skips the consumed part of an
    epoch without loading its samples.
    """

    def __init__(self, sampler, count: int) -> None:
        self.sampler = sampler
        self.count = count

    def __iter__(self) -> Iterator[int]:
        return islice(iter(self.sampler), self.count, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.count, 0)


@MMENGINE_LOOPS.register_module()
@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """:class:`~mmengine.runner.EpochBasedTrainLoop` that resumes mid-epoch.

    mmengine's loop restarts an epoch from its first batch whatever the
    checkpoint's iteration. After resuming a checkpoint written inside an
    epoch (:class:`GracefulStopHook`), this loop trains the rest of that
    epoch only: the sampler (seeded, ``set_epoch``-ed as before) yields the
    same order and the consumed batches are skipped without being loaded.
    Same arguments as ``EpochBasedTrainLoop``.
    """

    def run_epoch(self) -> None:
        done = _consumed_in_epoch(self)
        if done <= 0:
            super().run_epoch()
            return
        if done > len(self.dataloader):
            self.runner.logger.warning(
                f'checkpoint iteration {self.iter} lies beyond epoch '
                f'{self.epoch + 1} of {len(self.dataloader)} batches (batch '
                'size or number of GPUs changed?): the epoch runs in full')
            super().run_epoch()
            return
        self.runner.logger.info(
            f'Continuing epoch {self.epoch + 1} after its first {done} of '
            f'{len(self.dataloader)} iterations')
        sampler = self.dataloader.sampler
        if getattr(sampler, 'seed', None) not in (None, self.runner.seed):
            # The sampler was built before resume restored the interrupted
            # run's seed (a run without a configured seed draws one): use
            # the interrupted run's order, or other samples would be skipped.
            sampler.seed = self.runner.seed
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        for idx, data_batch in enumerate(self._remaining_batches(done),
                                         start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _remaining_batches(self, done: int) -> Iterator:
        loader = self.dataloader
        batch_sampler = loader.batch_sampler
        if type(batch_sampler) is BatchSampler:
            # Plain batching: skip done * batch_size indices, load nothing.
            inner = batch_sampler.sampler
            batch_sampler.sampler = _SkipFirst(inner,
                                               done * batch_sampler.batch_size)
            try:
                yield from loader
            finally:
                batch_sampler.sampler = inner
        else:
            # Grouping batch samplers (aspect ratio...): draw and drop.
            batches = iter(loader)
            for _ in range(done):
                next(batches)
            yield from batches


def add_graceful_stop(cfg) -> None:
    """Append a :class:`GracefulStopHook` to ``cfg.custom_hooks`` unless the
    config already has one (tools/train.py: every run stops gracefully)."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(isinstance(h, dict) and h.get('type') in (
            'GracefulStopHook', GracefulStopHook) for h in hooks):
        hooks.append(dict(type='GracefulStopHook'))
    cfg.custom_hooks = hooks
