"""Helpers for the tests of tools/: the repository root, the toy config, a
free TCP port for a launcher's rendezvous, a tool run as a subprocess the
way a user runs it, and a tool imported as a module (tests call its main()
in-process, much faster than a subprocess that imports torch and mmdet3d).

They live here, not in a conftest.py, so that test folders import them by
an unambiguous name: two folders' ``conftest`` modules collide in
``sys.modules`` when pytest collects both in one session.
"""
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, Optional

from fuller.testing.processes import with_default_signals

REPO = Path(__file__).resolve().parents[3]
TOY_CONFIG = 'configs/toy/toy_fuller.py'


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_tool(*args, env: Optional[Dict[str, str]] = None, timeout: float = 300,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run a command from the repository root with one CPU thread; a
    ``*.py`` first argument runs with this interpreter. With ``check`` a
    non-zero exit raises AssertionError with the tail of both streams."""
    full_env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    full_env.update(env or {})
    cmd = [str(a) for a in args]
    if cmd[0].endswith('.py'):
        cmd = [sys.executable] + cmd
    # default SIGINT/SIGTERM even when the suite runs as a background job
    proc = subprocess.run(with_default_signals(cmd), cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{" ".join(cmd)} exited {proc.returncode}\n'
            f'--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}')
    return proc


def load_tool(name: str) -> ModuleType:
    """tools/<name>.py as a fresh module."""
    spec = importlib.util.spec_from_file_location(
        name, REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
