"""Session-wide fixtures for every test folder.

``synthetic_nuscenes``: a tiny synthetic nuScenes set (2 scenes x 4 key
frames: one train, one val scene, as nuScenes-mini's split; the default
480x270 images, so the CPU config sees what it would on the default set)
written once per pytest session into a temporary folder, with its info files
built by tools/create_data.py. ``synthetic_nuscenes_cfg``: the CPU dataset config
(configs/_base_/datasets/nuscenes_synth_cpu.py) pointed at it.
``nuscenes_demo``: the real nuScenes sample in ../shared/data/nuscenes-demo
(skips with a message where it is missing).
"""
import os
import os.path as osp
import subprocess
import sys
from dataclasses import dataclass

import pytest

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
# FULLER_NUSCENES_DEMO: the sample elsewhere (e.g. a checkout in a worktree
# folder, whose ../shared is not the project's)
NUSCENES_DEMO = os.environ.get('FULLER_NUSCENES_DEMO') or osp.abspath(
    osp.join(REPO_ROOT, '..', 'shared', 'data', 'nuscenes-demo'))
SYNTH_CPU_CONFIG = osp.join(REPO_ROOT, 'configs', '_base_', 'datasets',
                            'nuscenes_synth_cpu.py')

#: generator arguments of the session's tiny set (fast on 2 CPU cores)
TINY_SET = dict(num_scenes=2, samples_per_scene=4, seed=0,
                image_size=(480, 270), lidar_sweeps=1, camera_sweeps=1)


@dataclass
class SyntheticSet:
    """A generated synthetic nuScenes set and its info files."""
    root: str
    version: str
    summary: dict
    train_infos: str
    val_infos: str


@pytest.fixture(scope='session')
def synthetic_nuscenes(tmp_path_factory) -> SyntheticSet:
    from fuller.datasets.synthetic import generate
    root = str(tmp_path_factory.mktemp('nuscenes-synth'))
    summary = generate(root, verbose=False, **TINY_SET)
    subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'create_data.py'),
         'nuscenes', '--root-path', root, '--version', summary['version'],
         '--max-sweeps', '2'],
        check=True, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    return SyntheticSet(root, summary['version'], summary,
                        osp.join(root, 'nuscenes_infos_train.pkl'),
                        osp.join(root, 'nuscenes_infos_val.pkl'))


@pytest.fixture(scope='session')
def synthetic_nuscenes_cfg(synthetic_nuscenes):
    """The CPU dataset config with its data roots on the session's set
    (a fresh copy per call site is ``cfg.copy()``)."""
    from mmengine.config import Config

    from fuller.engine.runner_setup import set_data_root
    cfg = Config.fromfile(SYNTH_CPU_CONFIG)
    set_data_root(cfg, synthetic_nuscenes.root)
    return cfg


@pytest.fixture(scope='session')
def nuscenes_demo() -> str:
    if not osp.isdir(NUSCENES_DEMO):
        pytest.skip(f'real nuScenes sample not found at {NUSCENES_DEMO} '
                    f'(../shared/data/nuscenes-demo next to the repository)')
    return NUSCENES_DEMO
