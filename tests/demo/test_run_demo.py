"""tools/run_demo.py without training: schedules, ablation mode, the table
(failed runs, FULLER's bar), on the real configs."""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _load_tool('run_demo')
train = _load_tool('train')


def test_defaults_and_ablation_mode():
    args = demo.parse_args([])
    assert (args.schedule, args.seeds, args.variants) == ('short', 1,
                                                         demo.VARIANTS)
    args = demo.parse_args(['--ablation'])
    assert (args.schedule, args.seeds) == ('learn', 3)
    assert args.variants == demo.ABLATION_VARIANTS
    assert set(demo.VARIANTS) < set(args.variants)
    assert demo.parse_args(['--ablation', '--seeds', '2',
                            '--schedule', 'short']).seeds == 2
    assert demo.parse_args(['--quick']).schedule == 'quick'
    for variant in demo.ABLATION_VARIANTS:  # one config file per variant
        assert osp.isfile(osp.join(REPO, demo.CONFIG.format(variant))), variant


@pytest.mark.parametrize('argv', [['--quick', '--schedule', 'learn'],
                                  ['--seeds', '0'], ['--epochs', '0'],
                                  ['--lr', '-1'], ['--variants', 'nope']])
def test_bad_arguments_exit_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        demo.parse_args(argv)
    assert exc.value.code == 2
    assert 'error' in capsys.readouterr().err


@pytest.mark.parametrize('epochs,lr', [(38, None), (12, 1e-3), (1, None)])
def test_schedule_options_apply_to_the_real_config(epochs, lr):
    """Every --cfg-options key the demo passes exists in the CPU configs,
    and the cosine decay follows the number of epochs."""
    path = osp.join(REPO, demo.CONFIG.format('fuller'))
    before = Config.fromfile(path).param_scheduler[1]
    sched = dict(demo.SCHEDULES['learn'], epochs=epochs, lr=lr)
    # the options go through tools/train.py's own parsing and checks
    cfg = train.build_config(train.parse_args(
        [path, '--cfg-options', *demo.schedule_options(sched)]))
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.param_scheduler[1].end == epochs == cfg.param_scheduler[1].T_max
    assert cfg.param_scheduler[1].type == before.type == 'CosineAnnealingLR'
    assert 1 <= cfg.default_hooks.checkpoint.interval <= max(1, epochs // 8)
    if lr is not None:
        assert cfg.optim_wrapper.optimizer.lr == lr
        assert cfg.param_scheduler[1].eta_min == pytest.approx(lr / 100)
    assert (cfg.custom_hooks[0].interval == 1) == (epochs == 1)


def _row(m_ap, miou):
    return {'mAP': m_ap, 'NDS': m_ap, 'mIoU': miou, 'mAOE': 1.5,
            'det_step': 0.25, 'seg_step': 1.0, 'train_time_s': 10.0}


def test_results_table_reports_every_run_and_the_bar():
    per_seed = {
        'naive': [_row(0.50, 0.30), _row(0.52, 0.32)],
        'fuller': [_row(0.30, 0.40), _row(0.32, 0.42)],   # loses mAP
        'fuller_imtlg_sum': [_row(0.505, 0.36), None],    # clears, 1 failed
    }
    table = demo.aggregate(per_seed)
    assert table['fuller_imtlg_sum']['failed'] == 1
    assert table['fuller_imtlg_sum']['mAP']['values'] == [0.505]
    text = demo.render_markdown(table, [0, 1], per_seed)
    means, runs = text.split('Every run')
    lines = {ln.split(' | ')[0].lstrip('| '): ln for ln in means.splitlines()
             if ln.startswith('| ')}
    assert lines['fuller'].rstrip(' |').endswith('no')
    assert '| 0.25 ± 0.00 / 1.00 ± 0.00 |' in lines['fuller']
    assert lines['fuller_imtlg_sum (1 failed)'].rstrip(' |').endswith('yes')
    assert '| fuller_imtlg_sum | 50.5 / 50.5 / 36.0 | FAILED |' in runs
    assert '| fuller | 30.0 / 30.0 / 40.0 | 32.0 / 32.0 / 42.0 |' in runs


def test_bar_is_not_judged_before_the_tasks_are_learned():
    per_seed = {'naive': [_row(0.02, 0.30)], 'fuller': [_row(0.03, 0.40)]}
    text = demo.render_markdown(demo.aggregate(per_seed), [0])
    fuller = [ln for ln in text.splitlines() if ln.startswith('| fuller')][0]
    assert fuller.rstrip(' |').endswith('not learned')
