import shutil

import pytest

from fuller.testing.tools import REPO, run_tool


@pytest.fixture
def tool():
    return run_tool


@pytest.fixture(scope='session')
def trained(tmp_path_factory, synthetic_nuscenes):
    """(data root, checkpoint): a one-epoch naive camera + LiDAR model on a
    private copy of the session's tiny set. Tests overwrite that copy's
    sensor files, so a test compares only runs it made itself."""
    base = tmp_path_factory.mktemp('drop')
    root = base / 'data'
    shutil.copytree(synthetic_nuscenes.root, root)
    work = base / 'work'
    run_tool('tools/train.py', str(REPO / 'configs/fuller/fuller_cpu_naive.py'),
             '--data-root', root, '--work-dir', work,
             '--cfg-options', 'train_cfg.max_epochs=1', timeout=900)
    return root, work / 'epoch_1.pth'
