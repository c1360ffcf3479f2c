import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fuller.testing.processes import with_default_signals

REPO = Path(__file__).resolve().parents[2]
TOY_CONFIG = 'configs/toy/toy_fuller.py'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_tool(*args, env=None, timeout=300, check=True):
    """Run a command from the repo root; returns the CompletedProcess."""
    full_env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    full_env.update(env or {})
    cmd = [str(a) for a in args]
    if cmd[0].endswith('.py'):
        cmd = [sys.executable] + cmd
    # Default SIGINT/SIGTERM even when the suite runs as a background job.
    proc = subprocess.run(with_default_signals(cmd), cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{" ".join(cmd)} exited {proc.returncode}\n'
            f'--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}')
    return proc


@pytest.fixture
def tool():
    return run_tool
