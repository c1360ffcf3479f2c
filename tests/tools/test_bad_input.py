"""Bad input, tried as a new user would (issue 14): every case ends before
any long work with a non-zero exit and one line naming the problem and the
fix, and no file the user already has is touched.

Most cases call the tools' ``main`` in-process (the exit message is the
one line ``sys.exit`` prints); a few go through a real subprocess to see the
terminal output as the user does.
"""
import os
import re

import numpy as np
import pytest
import torch

from fuller.testing.data_roots import write_info_root
from fuller.testing.tools import REPO, TOY_CONFIG, free_port, load_tool

FULLER = str(REPO / 'configs/fuller/fuller_cpu_fuller.py')
DET_ONLY = str(REPO / 'configs/fuller/fuller_cpu_det_only.py')
NAIVE = str(REPO / 'configs/fuller/fuller_cpu_naive.py')
LIGHT = str(REPO / 'configs/fuller/fuller_cpu_fuller_light.py')
TOY = str(REPO / TOY_CONFIG)
LAUNCH_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'LOCAL_RANK')


train = load_tool('train')
test_tool = load_tool('test')


def _error(tool, argv):
    """The one-line exit message of ``tool.main(argv)``."""
    with pytest.raises(SystemExit) as info:
        tool.main([str(a) for a in argv])
    message = info.value.code
    assert isinstance(message, str), f'exit without a message: {message!r}'
    assert '\n' not in message and ': error: ' in message
    return message


@pytest.fixture
def root(tmp_path):
    """A data root with mini tables and matching (empty) info files."""
    return write_info_root(str(tmp_path / 'data'))


# ----------------------------------------------------------- config checks
@pytest.mark.parametrize('option, expected', [
    ('train_cfg.max_epoch=3', 'did you mean train_cfg.max_epochs?'),
    ('optim_wrapper.clip_grd=None', 'did you mean optim_wrapper.clip_grad?'),
    ('optim_wrapper.optimizer.weight_decy=0', 'did you mean '
     'optim_wrapper.optimizer.weight_decay?'),
    ('optim_wrapper.calibration.warmup_iter=5',
     'did you mean optim_wrapper.calibration.warmup_iters?'),
    ('model.seg_head.mid_chanels=8', 'did you mean model.seg_head.mid_channels?'),
    ('train_cfg.max_epochs=one', 'train_cfg.max_epochs=\'one\': expects an integer'),
    ('train_cfg.max_epochs=2.5', 'expects an integer'),
    ('optim_wrapper.optimizer.lr=fast',
     'optim_wrapper.optimizer.lr=\'fast\': expects a number'),
    ('optim_wrapper.calibration.sync=maybe', 'expects a bool'),
    ('train_cfg.type=IterBasedTrainLop', 'unknown type (did you mean IterBasedTrainLoop'),
    ('optim_wrapper.type=FullerOptimWraper', 'did you mean FullerOptimWrapper'),
    ('optim_wrapper.calibration.inter=IMTLGG', 'registered: AlignedMTL, CAGrad'),
    ('optim_wrapper.calibration.intra=IMTLG', 'registered: EqualNorm, Identity'),
    ('env_cfg.float32_matmul_precision=fast',
     "env_cfg.float32_matmul_precision='fast' is not one of highest, high, medium"),
])
def test_bad_cfg_option(tmp_path, option, expected):
    message = _error(train, [FULLER, '--work-dir', tmp_path, '--cfg-options', option])
    assert expected in message


@pytest.mark.parametrize('options', [
    ['model_wrapper_cfg.find_unused_parameters=True'],
    ['find_unused_parameters=True'],
    ['compile=False'],
    ['train_cfg.val_begin=2', 'optim_wrapper.accumulative_counts=2'],
    ['optim_wrapper.optimizer.lr=1'],  # an int where the config has a float
    ['train_cfg.type=IterBasedTrainLoop', 'train_cfg.max_iters=5'],
    ['env_cfg.dist_cfg.timeout=600'],  # a plain dict takes new keys
    ['model.bbox_head.test_cfg.max_num=32'],
])
def test_valid_cfg_options_pass(options):
    cfg = train.build_config(train.parse_args([FULLER, '--cfg-options', *options]))
    for option in options:
        key, value = option.split('=')
        node = cfg
        for part in key.split('.'):
            node = node[part]
        assert str(node) == value


@pytest.mark.parametrize('inter', ['IMTLG', 'imtlg'])
def test_calibrator_name_is_shorthand(inter):
    if inter == 'imtlg':  # names are case-sensitive, the error lists them
        with pytest.raises(Exception, match='IMTLG'):
            train.build_config(train.parse_args(
                [FULLER, '--cfg-options', f'optim_wrapper.calibration.inter={inter}']))
        return
    cfg = train.build_config(train.parse_args(
        [FULLER, '--cfg-options', f'optim_wrapper.calibration.inter={inter}',
         'optim_wrapper.calibration.intra=None']))
    assert cfg.optim_wrapper.calibration.inter == dict(type='IMTLG')
    assert cfg.optim_wrapper.calibration.intra is None

    # config files and the wrapper itself take the bare name too
    from fuller.calibration import IMTLG, EqualNorm
    from fuller.engine import FullerOptimWrapper
    param = torch.nn.Parameter(torch.zeros(2))
    wrapper = FullerOptimWrapper(torch.optim.SGD([param], lr=0.1),
                                 calibration=dict(inter='IMTLG', intra='EqualNorm'))
    assert isinstance(wrapper.calibrators['inter'], IMTLG)
    assert isinstance(wrapper.calibrators['intra'], EqualNorm)
    assert wrapper.calibration_cfg['inter'] == dict(type='IMTLG')


@pytest.mark.parametrize('config, options, expected', [
    (FULLER, ['model.seg_head=None'],
     'calibration.inter=MetaBalance calibrates across task heads, but the model has '
     'only bbox_head: set optim_wrapper.calibration.inter=None'),
    (DET_ONLY, ['optim_wrapper.calibration.inter=IMTLG'],
     'calibration.inter=IMTLG calibrates across task heads'),
    (NAIVE, ['model.seg_head=None'],
     'val_evaluator has BEVSegMetric, which scores model.seg_head'),
    (NAIVE, ['model.bbox_head=None'],
     'val_evaluator has EmptySafeNuScenesMetric, which scores model.bbox_head'),
    (NAIVE, ['model.bbox_head=None', 'val_evaluator.0.type=NuScenesMetric'],
     'val_evaluator has NuScenesMetric, which scores model.bbox_head'),
    (FULLER, ['model.use_junctions=False'], 'model.use_junctions=False'),
    (str(REPO / 'configs/fuller/fuller_cpu_camera_only.py'),
     ['optim_wrapper.calibration.intra=EqualNorm'],
     'calibrates across input modalities, but the model has only camera'),
])
def test_calibration_needs_the_branches(tmp_path, config, options, expected):
    message = _error(train, [config, '--work-dir', tmp_path, '--cfg-options', *options])
    assert expected in message


def test_model_config_error_is_one_line(tmp_path):
    message = _error(train, [FULLER, '--work-dir', tmp_path, '--cfg-options',
                             'model.fusion_layer.in_channels=[16,16]'])
    assert 'cannot build the model of' in message and 'fusion_layer.in_channels' in message


def test_single_task_config_passes(tmp_path, root):
    # det_only keeps the (pass-through) Sum calibrator and one metric: fine.
    train.main([DET_ONLY, '--work-dir', str(tmp_path / 'w'), '--data-root', root,
                '--validate-only'])


# --------------------------------------------------- work dirs and resume
@pytest.mark.parametrize('existing, argv, expected', [
    (['epoch_1.pth'], [], 'already holds checkpoints (epoch_1.pth)'),
    (['best_NDS_epoch_3.pth', 'notes.txt'], [], 'already holds checkpoints'),
    ([], ['--resume'], 'nothing to resume from'),
    (['train.log'], ['--resume'], 'holds no checkpoint'),
    (['epoch_1.pth'], ['--resume'], 'no last_checkpoint record: name the one to '
     'resume from, e.g. --resume {work}/epoch_1.pth'),
    (None, ['--resume'], 'does not exist'),
])
def test_work_dir_protection_and_resume(tmp_path, existing, argv, expected):
    work = tmp_path / 'work'
    if existing is not None:
        work.mkdir()
        for name in existing:
            (work / name).write_bytes(b'user data')
    message = _error(train, [TOY, '--work-dir', work, *argv])
    assert expected.format(work=work) in message and str(work) in message
    for name in existing or []:
        assert (work / name).read_bytes() == b'user data'


@pytest.mark.parametrize('tool, argv, script', [
    (train, [TOY], 'tools/dist_train.sh CONFIG NGPUS'),
    (test_tool, [TOY, 'x.pth'], 'tools/dist_test.sh CONFIG CKPT NGPUS'),
])
def test_pytorch_launcher_needs_torchrun(monkeypatch, tmp_path, tool, argv, script):
    monkeypatch.setenv('LOCAL_RANK', '0')  # restored afterwards (the tool sets it)
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    message = _error(tool, [*argv, '--work-dir', tmp_path, '--launcher', 'pytorch'])
    assert f'use {script}' in message and 'RANK' in message


# -------------------------------------------------------------- test.py
@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Checkpoints (mmengine layout) of three CPU configs' models."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmdet3d.registry import MODELS
    init_default_scope('mmdet3d')
    out = tmp_path_factory.mktemp('ckpts')
    paths = {}
    for name, config in (('fuller', FULLER), ('det_only', DET_ONLY), ('light', LIGHT)):
        model = MODELS.build(Config.fromfile(config).model)
        paths[name] = str(out / f'{name}.pth')
        torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), paths[name])
    return paths


@pytest.mark.parametrize('ckpt, expected', [
    ('det_only', ' 0 unexpected, 0 of another shape'),
    ('light', 'of another shape (e.g. '),
])
def test_checkpoint_of_another_config(tmp_path, root, checkpoints, capsys, ckpt, expected):
    argv = [FULLER, checkpoints[ckpt], '--work-dir', tmp_path, '--data-root', root]
    message = _error(test_tool, argv)
    assert f'checkpoint {checkpoints[ckpt]} does not fit' in message
    assert expected in message and '--allow-partial' in message
    if ckpt == 'det_only':
        assert 'model weights missing from it (seg_head.' in message
    assert not list(tmp_path.glob('metrics_*.json'))

    # --allow-partial passes, and says what stays at init
    assert test_tool.main([*map(str, argv), '--allow-partial', '--validate-only']) == {}
    assert 'model weights are left at init' in capsys.readouterr().err


def test_matching_checkpoint_passes(tmp_path, root, checkpoints, capsys):
    test_tool.main([FULLER, checkpoints['fuller'], '--work-dir', str(tmp_path),
                    '--data-root', root, '--validate-only'])
    assert 'warning' not in capsys.readouterr().err


@pytest.mark.parametrize('content', [b'', b'not a checkpoint'])
def test_unreadable_checkpoint(tmp_path, root, content):
    ckpt = tmp_path / 'broken.pth'
    ckpt.write_bytes(content)
    message = _error(test_tool, [FULLER, ckpt, '--work-dir', tmp_path, '--data-root', root])
    assert f'cannot read checkpoint {ckpt}' in message


@pytest.mark.parametrize('flag,name', [('--metrics-out', 'metrics.json'),
                                       ('--out', 'pred.pkl')])
def test_out_file_is_never_overwritten(tmp_path, root, checkpoints, flag, name):
    out = tmp_path / name
    out.write_text('{"mine": 1}')
    message = _error(test_tool, [FULLER, checkpoints['fuller'], flag, out,
                                 '--data-root', root])
    assert f'{flag} {out} already exists' in message
    assert out.read_text() == '{"mine": 1}'


def test_prediction_dump_must_be_a_pickle(tmp_path, root, checkpoints):
    message = _error(test_tool, [FULLER, checkpoints['fuller'], '--out', tmp_path / 'pred.json',
                                 '--data-root', root])
    assert 'name a .pkl or .pickle file' in message and '--metrics-out' in message


def test_drop_modality_needs_a_fused_model(tmp_path, root):
    camera_only = str(REPO / 'configs/fuller/fuller_cpu_camera_only.py')
    ckpt = tmp_path / 'any.pth'
    ckpt.write_bytes(b'')
    message = _error(test_tool, [camera_only, ckpt, '--drop-modality', 'camera',
                                 '--data-root', root])
    assert 'no lidar branch' in message and 'camera + LiDAR config' in message


def test_test_run_keeps_the_training_config_dump(tmp_path):
    from fuller.engine.runner_setup import build_runner
    work = tmp_path / 'work'
    work.mkdir()
    dump = work / 'toy_fuller.py'
    dump.write_text('# the training run\'s config\n')
    cfg = test_tool.load_config(TOY)
    cfg.work_dir = str(work)
    runner = build_runner(cfg, mode='test')
    assert dump.read_text() == '# the training run\'s config\n'
    assert os.path.isfile(os.path.join(runner.log_dir, 'test_toy_fuller.py'))
    # a training runner never replaces an existing dump either
    runner = build_runner(cfg)
    assert dump.read_text() == '# the training run\'s config\n'
    assert os.path.isfile(os.path.join(runner.log_dir, 'toy_fuller.py'))


def test_runner_applies_the_configs_backend_settings(tmp_path):
    """env_cfg's cuDNN algorithm search (mmengine) and float32 matmul
    precision (the plugin's runner) are what the run computes with."""
    from fuller.engine.runner_setup import build_runner
    cfg = test_tool.load_config(TOY)
    cfg.work_dir = str(tmp_path)
    cfg.env_cfg.update(cudnn_benchmark=True, float32_matmul_precision='high')
    before = (torch.get_float32_matmul_precision(),
              torch.backends.cudnn.benchmark)
    assert before[0] != 'high'
    try:
        build_runner(cfg)
        assert torch.get_float32_matmul_precision() == 'high'
        assert torch.backends.cudnn.benchmark
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.benchmark = before[1]


# ------------------------------------------------------------------- data
@pytest.mark.parametrize('tables, info_version, expected', [
    (['v1.0-mini'], 'v1.0-trainval',
     'was built for v1.0-trainval, but {root} holds v1.0-mini tables: build '
     'the info files with `python tools/create_data.py nuscenes --root-path '
     '{root} --version v1.0-mini`'),
    (['v1.0-mini'], None, '--root-path {root} --version v1.0-mini`'),
    (['v1.0-mini', 'v1.0-trainval'], None, '--version {{v1.0-mini|v1.0-trainval}}'),
    ([], None, 'holds no nuScenes tables (v1.0-*/)'),
])
def test_info_files_match_the_tables(tmp_path, tables, info_version, expected):
    root = write_info_root(str(tmp_path / 'data'), tables, info_version)
    message = _error(train, [FULLER, '--work-dir', tmp_path / 'w', '--data-root', root])
    assert expected.format(root=root + '/') in message


@pytest.mark.parametrize('size, expected', [
    (0, 'is empty (0 bytes)'),
    (5 * 4 * 7 + 3, 'has 143 bytes, not a multiple of 20 (load_dim=5'),
    (5 * 4 * 7 + 16, 'has 156 bytes, not a multiple of 20'),
])
def test_broken_point_file(tmp_path, size, expected):
    root = write_info_root(str(tmp_path / 'data'), lidar_files={'a.pcd.bin': size})
    path = os.path.join(root, 'samples', 'LIDAR_TOP', 'a.pcd.bin')
    # found before training, from the info files
    message = _error(train, [FULLER, '--work-dir', tmp_path / 'w', '--data-root', root])
    assert f'point file {path} {expected}' in message
    # and by the pipeline's loader, should a file break later
    from fuller.datasets import CheckedLoadPointsFromFile
    loader = CheckedLoadPointsFromFile(coord_type='LIDAR', load_dim=5, use_dim=5)
    with pytest.raises(ValueError, match=re.escape(f'point file {path} {expected}')):
        loader._load_points(path)


def test_good_point_file_loads(tmp_path):
    from fuller.datasets import CheckedLoadPointsFromFile
    path = tmp_path / 'ok.pcd.bin'
    np.arange(20, dtype=np.float32).tofile(path)
    loader = CheckedLoadPointsFromFile(coord_type='LIDAR', load_dim=5, use_dim=5)
    points = loader.transform(dict(lidar_points=dict(lidar_path=str(path))))['points']
    assert points.tensor.shape == (4, 5) and float(points.tensor[3, 4]) == 19.0


@pytest.mark.parametrize('tool, argv', [
    ('create_data', ['nuscenes', '--root-path', '{root}', '--version', 'v1.0-mini']),
    ('make_synthetic_nuscenes', ['--out', '{root}']),
])
def test_data_tools_never_overwrite(tmp_path, tool, argv):
    root = write_info_root(str(tmp_path / 'data'))
    info = os.path.join(root, 'nuscenes_infos_train.pkl')
    before = open(info, 'rb').read()
    message = _error(load_tool(tool), [a.format(root=root) for a in argv])
    assert '--overwrite' in message
    assert open(info, 'rb').read() == before


# ------------------------------------------------------ through the terminal
def test_dist_train_reports_a_config_error_once(tool, tmp_path):
    proc = tool('bash', 'tools/dist_train.sh', TOY_CONFIG, 2, '--work-dir', tmp_path,
                '--cfg-options', 'train_cfg.max_epoch=3', check=False,
                env=dict(PORT=str(free_port()), CUDA_VISIBLE_DEVICES=''), timeout=300)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert 'did you mean train_cfg.max_epochs?' in lines[-1]
    assert sum('did you mean' in line for line in lines) == 1, proc.stderr
    assert 'Traceback' not in proc.stderr and 'ChildFailedError' not in proc.stderr


def test_train_terminal_shows_progress_not_dumps(tool, tmp_path):
    work = tmp_path / 'run'
    proc = tool('tools/train.py', TOY_CONFIG, '--work-dir', work,
                '--cfg-options', 'train_cfg.max_epochs=1', timeout=300)
    terminal = proc.stdout + proc.stderr
    assert 'Epoch(train)' in terminal
    assert 'System environment' not in terminal and 'Config:' not in terminal
    logs = list(work.glob('*/*.log'))
    assert len(logs) == 1
    log = logs[0].read_text()
    assert 'System environment' in log and 'Config:' in log
    assert f'see {logs[0]}' in terminal
    assert len(terminal.splitlines()) < len(log.splitlines()) // 2


def test_persistent_loader_workers_end_without_a_traceback(
        tool, tmp_path, synthetic_nuscenes):
    """Training and testing stop their data loaders' persistent workers
    (every nus config has them) when they end. Left to interpreter exit,
    multiprocessing killed them and torch printed "DataLoader worker (pid N)
    is killed by signal: Terminated" with a traceback after a run that
    succeeded."""
    persistent = [f'{split}_dataloader.{option}'
                  for split in ('train', 'val', 'test')
                  for option in ('num_workers=2', 'persistent_workers=True')]
    work = tmp_path / 'run'
    proc = tool('tools/train.py', FULLER, '--data-root', synthetic_nuscenes.root,
                '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1',
                *persistent, timeout=600)
    terminal = proc.stdout + proc.stderr
    assert 'Epoch(val)' in terminal
    assert 'killed by signal' not in terminal and 'Traceback' not in terminal
    proc = tool('tools/test.py', FULLER, work / 'epoch_1.pth', '--data-root',
                synthetic_nuscenes.root, '--work-dir', work, '--cfg-options',
                *persistent, timeout=600)
    terminal = proc.stdout + proc.stderr
    assert len(list(work.glob('metrics_*.json'))) == 1
    assert 'killed by signal' not in terminal and 'Traceback' not in terminal


@pytest.mark.parametrize('config', sorted((REPO / 'configs/fuller').glob('*.py')),
                         ids=lambda p: p.stem)
def test_shipped_configs_pass_the_model_checks(config):
    from fuller.engine.preflight import check_model_tasks
    cfg = train.load_config(str(config))
    check_model_tasks(cfg, ['val_evaluator', 'test_evaluator'])
