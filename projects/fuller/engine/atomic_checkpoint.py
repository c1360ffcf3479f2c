"""Checkpoints that are either complete or absent.

mmengine 0.10.7 writes ``epoch_N.pth`` in place and then rewrites
``last_checkpoint`` in place: a job killed during either write (preemption,
``SIGKILL`` at a time limit, a full disk) leaves a truncated file under the
real name, and ``--resume`` may then pick it up. Here every file is written
under a temporary name in the same directory and renamed over the real one,
which POSIX makes atomic: readers see the old file or the new one, never a
part. ``last_checkpoint`` is only rewritten after its checkpoint is complete.

Config (the default runtime sets it)::

    default_hooks = dict(
        checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                        max_keep_ckpts=3))
"""
import os
import os.path as osp
import shutil
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS as MMENGINE_HOOKS

from ..registry import HOOKS

#: Suffix of a file being written; never matched by ``*.pth``.
TMP_SUFFIX = '.tmp'
LAST_CHECKPOINT = 'last_checkpoint'


def _fsync(path: str) -> None:
    """Flush a file (or a directory entry list) to disk; rename is only
    durable across a power loss once both are synced."""
    flags = os.O_RDONLY
    if osp.isdir(path):
        flags |= getattr(os, 'O_DIRECTORY', 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def replace_atomically(tmp_path: str, path: str) -> None:
    """Move a completely written ``tmp_path`` over ``path``."""
    _fsync(tmp_path)
    os.replace(tmp_path, path)
    _fsync(osp.dirname(osp.abspath(path)))


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp_path = path + TMP_SUFFIX
    with open(tmp_path, 'w') as f:
        f.write(text)
    replace_atomically(tmp_path, path)


def save_checkpoint_atomically(runner,
                               out_dir: str,
                               filename: str,
                               update_last: bool = True,
                               **kwargs) -> str:
    """``runner.save_checkpoint`` to ``out_dir/filename`` through a temporary
    name, then (main process) point ``<work_dir>/last_checkpoint`` at it.

    Args:
        runner: the mmengine Runner.
        out_dir: local directory of the checkpoint.
        filename: its final name, e.g. ``epoch_3.pth``.
        update_last: also rewrite ``last_checkpoint`` (what ``--resume``
            reads).
        **kwargs: the other arguments of ``Runner.save_checkpoint``
            (``meta``, ``by_epoch``, ``save_optimizer``, ``backend_args``...).

    Returns:
        The final path.
    """
    path = osp.join(out_dir, filename)
    runner.save_checkpoint(out_dir, filename + TMP_SUFFIX, **kwargs)
    if is_main_process():  # Runner.save_checkpoint writes on rank 0 only
        replace_atomically(path + TMP_SUFFIX, path)
        if update_last:
            write_text_atomically(osp.join(runner.work_dir, LAST_CHECKPOINT),
                                  path)
    return path


@MMENGINE_HOOKS.register_module()
@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's :class:`~mmengine.hooks.CheckpointHook` with atomic writes.

    Same arguments and file names. Differences: a checkpoint and
    ``last_checkpoint`` appear only complete (temporary name + rename), and
    with ``max_keep_ckpts`` the oldest checkpoint is removed after the new
    one is complete, not before, so an interrupted save never leaves fewer
    checkpoints than before. Remote storage (``backend_args`` of a non-local
    backend, deprecated ``file_client_args``) has no rename: there it
    behaves exactly as ``CheckpointHook``.
    """

    def _is_local(self) -> bool:
        return (self.file_client_args is None
                and isinstance(self.file_backend, LocalBackend))

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not self._is_local():
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        drop = self._keep(runner, step)
        save_checkpoint_atomically(
            runner,
            self.out_dir,
            filename,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if drop is not None and is_main_process():
            self._remove(osp.join(self.out_dir, self.filename_tmpl.format(drop)))

    def _keep(self, runner, step) -> Optional[int]:
        """Record ``step`` among the kept checkpoints (``max_keep_ckpts``);
        returns the step whose file is to go once the new one is written."""
        if self.max_keep_ckpts <= 0:
            return None
        if self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step:
            return None  # the same step saved twice (e.g. best + regular)
        drop = None
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            drop = self.keep_ckpt_ids.popleft()
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids',
                                       list(self.keep_ckpt_ids))
        return drop

    @staticmethod
    def _remove(path: str) -> None:
        if osp.isfile(path):
            os.remove(path)
        elif osp.isdir(path):  # DeepSpeed checkpoints are folders
            shutil.rmtree(path)
