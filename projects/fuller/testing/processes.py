"""Helpers for tests that start training processes.

- :func:`cpu_ranks_env`: N ranks on a machine with fewer than N GPUs run on
  CPU with gloo (mmengine's logger indexes ``CUDA_VISIBLE_DEVICES`` by local
  rank, and N ranks cannot share one GPU under nccl).
- :func:`with_default_signals`: a child started by a test must react to
  SIGINT / SIGTERM even when the test session itself runs as a background
  job of a script, which starts with SIGINT ignored. An ignored disposition
  survives ``exec`` and ``Popen(restore_signals=True)`` only restores
  SIGPIPE / SIGXFZ / SIGXFSZ, so the command is started through a tiny
  Python prelude that resets both signals and then execs it.
- :func:`wait_for`: wait on an event (a file, a log line) with a deadline
  instead of sleeping a fixed time that a slow machine misses.
"""
import os
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

_DEFAULT_SIGNALS_PRELUDE = (
    'import os, signal, sys\n'
    'for s in (signal.SIGINT, signal.SIGTERM):\n'
    '    signal.signal(s, signal.SIG_DFL)\n'
    'os.execvp(sys.argv[1], sys.argv[1:])\n')


def cpu_ranks_env(nprocs: int) -> Dict[str, str]:
    """Environment additions for a run of ``nprocs`` ranks: hide the GPUs
    unless there is one per rank (then nccl on the GPUs is tested)."""
    import torch
    if torch.cuda.is_available() and torch.cuda.device_count() >= nprocs:
        return {}
    return {'CUDA_VISIBLE_DEVICES': ''}


def with_default_signals(cmd: Sequence[str]) -> List[str]:
    """``cmd`` started with SIGINT and SIGTERM at their default
    dispositions, whatever the test process inherited."""
    return [sys.executable, '-c', _DEFAULT_SIGNALS_PRELUDE,
            *[str(c) for c in cmd]]


def wait_for(condition: Callable[[], bool],
             what: str,
             timeout: float = 300.0,
             proc: Optional[subprocess.Popen] = None,
             log: Optional[str] = None) -> None:
    """Poll ``condition`` until it holds.

    Raises:
        AssertionError: after ``timeout`` seconds, or at once when ``proc``
            exits first; the message names ``what`` and ends with the tail
            of the ``log`` file if given.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        failure = None
        if proc is not None and proc.poll() is not None:
            failure = f'process exited ({proc.returncode}) before {what}'
        elif time.monotonic() > deadline:
            failure = f'no {what} within {timeout:.0f} s'
        if failure:
            tail = ''
            if log is not None and os.path.isfile(log):
                with open(log, errors='replace') as f:
                    tail = '\n--- log tail ---\n' + f.read()[-4000:]
            raise AssertionError(failure + tail)
        time.sleep(0.1)
