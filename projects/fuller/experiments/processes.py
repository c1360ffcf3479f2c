"""Running the project's command-line tools as child processes, for the
experiments (demo, ablation, reliance reports): each tool in its own session,
its output in a log file, and one stop signal that reaches every running
tool exactly once.

Ctrl-C (or SIGTERM, SIGHUP) in the parent sets :data:`STOP`: no further
tool starts, and each running one gets the signal once (tools/train.py then
saves its current iteration and exits; a second Ctrl-C stops it at once).
"""
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from typing import List, Optional, Set


def log(msg: str) -> None:
    # one write per line: print() writes the text and the newline apart,
    # so lines of runs logged at once from --jobs threads ran together
    sys.stdout.write(f'[demo {time.strftime("%H:%M:%S")}] {msg}\n')
    sys.stdout.flush()


class RunFailed(Exception):
    """A tool exited non-zero; the message names the command and its log."""


class Interrupted(Exception):
    """The user stopped the demo (SIGINT / SIGTERM)."""


#: Set by a stop signal: no tool starts after it.
STOP = threading.Event()
_running: Set[subprocess.Popen] = set()
_running_lock = threading.Lock()


def _signal_running(signum: int) -> None:
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)


def on_stop_signal(signum: int, _frame) -> None:
    """Ctrl-C / SIGTERM: stop starting runs and hand the signal once to each
    running tool. The tools run in their own sessions, so a terminal's
    Ctrl-C reaches them only through here: exactly once per Ctrl-C, which
    tools/train.py takes as "save and stop" (twice: "stop now")."""
    if not STOP.is_set():
        log(f'{signal.Signals(signum).name}: stopping; the running tools save '
            'their state (Ctrl-C again to stop them at once)')
    STOP.set()
    # a closed terminal (SIGHUP) stops them as SIGTERM does: saving first
    _signal_running(signal.SIGTERM if signum == signal.SIGHUP else signum)


def run_tool(cmd: List[str], cwd: str, log_file: Optional[str] = None,
             env: Optional[dict] = None) -> None:
    """Run a tool in ``cwd``; on failure raise RunFailed with the log's
    tail, when the experiment is being stopped raise Interrupted."""
    if STOP.is_set():
        raise Interrupted(' '.join(cmd))
    env = dict(env or os.environ)
    env.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))
    with (open(log_file, 'a') if log_file else contextlib.nullcontext()) as f:
        out = dict(stdout=f, stderr=subprocess.STDOUT) if f else {}
        proc = subprocess.Popen(cmd, cwd=cwd, env=env,
                                start_new_session=True, **out)
        with _running_lock:
            _running.add(proc)
        if STOP.is_set():  # the signal came while it was starting
            _signal_running(signal.SIGINT)
        try:
            proc.wait()
        finally:
            with _running_lock:
                _running.discard(proc)
    if STOP.is_set():
        raise Interrupted(' '.join(cmd))
    if proc.returncode != 0:
        tail = ''
        if log_file:
            with open(log_file) as f:
                tail = ''.join(f.readlines()[-30:])
        raise RunFailed(f'{tail}\n[demo] failed: {" ".join(cmd)}'
                        + (f' (full log: {log_file})' if log_file else ''))
