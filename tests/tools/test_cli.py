"""Argument handling and pre-flight errors of tools/train.py and tools/test.py."""

import pytest

from fuller.engine.runner_setup import UserInputError
from fuller.testing.tools import REPO, TOY_CONFIG, load_tool


train = load_tool('train')
test_tool = load_tool('test')
CONFIG = str(REPO / TOY_CONFIG)


def test_train_defaults():
    args = train.parse_args([CONFIG])
    cfg = train.build_config(args)
    assert cfg.work_dir == 'work_dirs/toy_fuller'
    assert cfg.launcher == 'none'
    assert not cfg.get('resume')


def test_resume_flag_forms(tmp_path):
    assert train.parse_args([CONFIG, '--resume']).resume == 'auto'
    cfg = train.build_config(train.parse_args([CONFIG, '--resume', 'auto']))
    assert cfg.resume is True and cfg.load_from is None
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'')
    cfg = train.build_config(train.parse_args([CONFIG, '--resume', str(ckpt)]))
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    with pytest.raises(UserInputError, match='checkpoint not found'):
        train.build_config(train.parse_args([CONFIG, '--resume', str(tmp_path / 'nope.pth')]))


def test_seed_deterministic_and_cfg_options():
    args = train.parse_args([CONFIG, '--seed', '7', '--deterministic', '--cfg-options',
                             'train_cfg.max_epochs=5', 'model.channels=4'])
    cfg = train.build_config(args)
    assert cfg.randomness == dict(seed=7, deterministic=True)
    assert cfg.train_cfg.max_epochs == 5 and cfg.model.channels == 4


def test_unknown_cfg_option_suggests_key():
    args = train.parse_args([CONFIG, '--cfg-options', 'optim_wraper.clip_grad=None'])
    with pytest.raises(UserInputError, match='did you mean optim_wrapper'):
        train.build_config(args)


def test_pytorch_launcher_picks_backend():
    import torch
    cfg = train.build_config(train.parse_args([CONFIG, '--launcher', 'pytorch']))
    expected = 'nccl' if torch.cuda.is_available() else 'gloo'
    assert cfg.env_cfg.dist_cfg.backend == expected


def test_amp_switches_wrapper():
    import torch
    args = train.parse_args([CONFIG, '--amp', '--cfg-options',
                             'optim_wrapper.type=FullerOptimWrapper'])
    assert train.build_config(args).optim_wrapper.type == 'FullerAmpOptimWrapper'
    if not torch.cuda.is_available():
        with pytest.raises(UserInputError, match='CPU'):
            train.build_config(train.parse_args([CONFIG, '--amp', '--cfg-options',
                                                 'optim_wrapper.type=OptimWrapper']))


@pytest.mark.parametrize('argv, message', [
    (['tools/train.py', 'configs/nope.py'], 'config file not found: configs/nope.py'),
    (['tools/train.py', 'configs/fuller/fuller_cpu_naive.py', '--data-root',
      '/no/such/root'], 'data root not found: /no/such/root'),
    # the toy dataset takes no data_root: a key no constructor reads
    (['tools/train.py', TOY_CONFIG, '--cfg-options',
      'train_dataloader.dataset.data_root=/no/such/root'],
     'train_dataloader.dataset has no "data_root" (ToyMultiTaskDataset takes: '),
    (['tools/test.py', TOY_CONFIG, 'missing.pth'], 'checkpoint not found: missing.pth'),
])
def test_bad_input_is_one_line_error(tool, argv, message):
    proc = tool(*argv, check=False, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert message in last, proc.stderr
    assert 'Traceback' not in proc.stderr


def test_test_tool_args():
    args = test_tool.parse_args([CONFIG, 'x.pth', '--metrics-out', 'm.json', '--out', 'p.pkl',
                                 '--drop-modality', 'lidar', '--launcher', 'pytorch'])
    assert args.checkpoint == 'x.pth' and args.metrics_out == 'm.json'
    assert args.out == 'p.pkl' and args.drop_modality == 'lidar'


def test_broken_config_is_one_line_error(tool, tmp_path):
    broken = tmp_path / 'broken.py'
    broken.write_text("_base_ = ['%s']\noptim_wrapper = dict(calibration=dict(\n" % CONFIG)
    proc = tool('tools/train.py', broken, check=False, timeout=120)
    assert proc.returncode != 0
    assert f'cannot load config {broken}' in proc.stderr.strip().splitlines()[-1]
    assert 'Traceback' not in proc.stderr


def test_data_root_moves_every_data_path(tmp_path):
    cfg = train.build_config(train.parse_args(
        [str(REPO / 'configs/fuller/fuller_cpu_fuller.py'), '--data-root', str(tmp_path)]))
    from fuller.engine.runner_setup import _walk_dicts
    nodes = list(_walk_dicts(cfg._cfg_dict))
    roots = {n['data_root'] for n in nodes if 'data_root' in n}
    assert roots == {f'{tmp_path}/'}
    map_loaders = [n for n in nodes if n.get('type') == 'LoadBEVSegmentation']
    assert map_loaders and all(n['data_root'] == f'{tmp_path}/' for n in map_loaders)
    anns = [n['ann_file'] for n in nodes if isinstance(n.get('ann_file'), str)]
    assert f'{tmp_path}/nuscenes_infos_val.pkl' in anns
    assert not any(a.startswith('data/') for a in anns)


def test_seed_and_backend_on_configs_without_those_keys():
    from mmengine.config import Config

    from fuller.engine.runner_setup import configure_launcher
    real = str(REPO / 'configs/fuller/fuller_cpu_naive.py')
    assert 'randomness' not in Config.fromfile(real)
    cfg = train.build_config(train.parse_args([real, '--seed', '3']))
    assert cfg.randomness == dict(seed=3, deterministic=False)
    bare = Config(dict(model=dict(type='ToyFusionModel')))
    configure_launcher(bare, 'pytorch')
    assert bare.env_cfg.dist_cfg.backend in ('gloo', 'nccl')


def test_synthetic_generator_default_val_split_fits_any_scene_count():
    """--scenes 2 alone used to fail: "need 1 to 1 val scenes of 2, got 4"."""
    gen = load_tool('make_synthetic_nuscenes')
    from fuller.datasets.synthetic import DEFAULT_SET, split_scene_names
    args = gen.parse_args(['--scenes', '2'])
    _, train, val = split_scene_names(2, gen.default_val_scenes(args.scenes, args.val_scenes))
    assert (len(train), len(val)) == (1, 1)
    args = gen.parse_args([])
    assert gen.default_val_scenes(args.scenes, args.val_scenes) == DEFAULT_SET['num_val_scenes']
    assert gen.default_val_scenes(10, 0) is None  # 0: 20%
    assert gen.default_val_scenes(10, 3) == 3
