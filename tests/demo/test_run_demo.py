"""tools/run_demo.py without training: schedules, ablation mode, the table
(failed runs, FULLER's bar), on the real configs."""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from fuller.testing.tools import REPO, load_tool

demo = load_tool('run_demo')
train = load_tool('train')


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


def test_runs_at_once_by_default(monkeypatch):
    """Without --jobs: 8 runs on a GPU, 2 on a CPU of 2+ cores, else 1."""
    assert demo.parse_args([]).jobs is None
    assert demo.default_jobs('cuda') == 8
    monkeypatch.setattr(demo.os, 'cpu_count', lambda: 2)
    assert demo.default_jobs('cpu') == 2
    monkeypatch.setattr(demo.os, 'cpu_count', lambda: 1)
    assert demo.default_jobs('cpu') == 1


@pytest.mark.parametrize('argv', [['--quick', '--schedule', 'learn'],
                                  ['--seeds', '0'], ['--epochs', '0'],
                                  ['--lr', '-1'], ['--variants', 'nope'],
                                  ['--jobs', '0'], ['--first-seed', '-1']])
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
    assert cfg.train_dataloader.batch_size == 2  # learn keeps the config's


def test_short_schedule_trains_at_batch_one():
    """`make demo`'s schedule sets the batch through tools/train.py's own
    parsing; the other schedules leave the config's batch of 2."""
    path = osp.join(REPO, demo.CONFIG.format('naive'))
    batches = {}
    for name in ('short', 'learn', 'quick'):
        cfg = train.build_config(train.parse_args(
            [path, '--cfg-options', *demo.schedule_options(demo.SCHEDULES[name])]))
        batches[name] = cfg.train_dataloader.batch_size
    assert batches == dict(short=1, learn=2, quick=2)
    # evaluation keeps its own batch
    assert cfg.val_dataloader.batch_size == 2


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


def test_runs_on_different_devices_keep_their_train_times_apart(tmp_path):
    """A seed trained on a CPU and one on a GPU: the table gives each
    device's mean train time (a mean over both would describe neither) and
    names the device of each seed; the device comes from the run's log."""
    for name, env_line in (('cpu_run', 'CUDA available: False'),
                           ('gpu_run', 'CUDA available: True\n    GPU 0: NVIDIA H100 80GB HBM3')):
        log_dir = tmp_path / name / '20261122_100000'
        log_dir.mkdir(parents=True)
        (log_dir / '20261122_100000.log').write_text(
            f'2026/11/22 10:00:00 - mmengine - INFO -\n    {env_line}\n')
    assert demo.run_device(str(tmp_path / 'cpu_run')) == 'cpu'
    assert demo.run_device(str(tmp_path / 'gpu_run')) == 'H100 80GB HBM3'
    assert demo.run_device(str(tmp_path)) is None

    def row(m_ap, seconds, device):
        return {**_row(m_ap, 0.3), 'train_time_s': seconds, 'device': device}
    per_seed = {'naive': [row(0.50, 1500.0, 'cpu'), row(0.52, 300.0, 'H100')],
                'fuller': [row(0.40, 1400.0, 'cpu'), row(0.42, 320.0, 'H100')]}
    text = demo.render_markdown(demo.aggregate(per_seed), [0, 1], per_seed)
    assert '| cpu 1,500 · H100 300 |' in text
    assert '| cpu 1,400 · H100 320 |' in text
    assert '| variant | seed 0 (cpu) | seed 1 (H100) |' in text
    mixed = {'naive': [row(0.50, 1500.0, 'cpu')], 'fuller': [row(0.40, 300.0, 'H100')]}
    text = demo.render_markdown(demo.aggregate(mixed), [0, 1],
                                {k: v + [None] for k, v in mixed.items()})
    assert '| naive | 50.0 / 50.0 / 30.0 (cpu) | FAILED |' in text


def test_bar_is_not_judged_before_the_tasks_are_learned():
    per_seed = {'naive': [_row(0.02, 0.30)], 'fuller': [_row(0.03, 0.40)]}
    text = demo.render_markdown(demo.aggregate(per_seed), [0])
    fuller = [ln for ln in text.splitlines() if ln.startswith('| fuller')][0]
    assert fuller.rstrip(' |').endswith('not learned')


def test_jobs_train_runs_at_once_and_keep_every_row_in_place(
        tmp_path, monkeypatch):
    """--jobs 3: three runs are in flight together (a barrier of 3 would
    time out otherwise), each run's row lands under its variant and seed,
    and a failed run is reported without stopping the others."""
    import json
    import threading
    barrier = threading.Barrier(3, timeout=120)
    seen_env = []

    def fake_run(variant, seed, out, root, schedule, env, probe=False):
        seen_env.append(env['OMP_NUM_THREADS'])
        if seed == 0:
            barrier.wait()  # the three seed-0 runs start together
        if (variant, seed) == ('naive', 1):
            raise demo.RunFailed('boom\n[demo] failed: train naive')
        return dict(mAP=0.1 * seed + 0.01, NDS=0.2, mIoU=0.3 + 0.01 * seed)

    monkeypatch.setattr(demo, 'train_and_test', fake_run)
    monkeypatch.setattr(demo, 'prepare_data', lambda root, world: None)
    monkeypatch.setattr(demo, 'run', lambda *a, **k: None)  # no plots
    out = tmp_path / 'out'
    with pytest.raises(SystemExit, match='1 run'):
        demo.main(['--variants', 'det_only', 'naive', 'fuller', '--seeds',
                   '2', '--jobs', '3', '--device', 'cpu', '--out', str(out)])
    result = json.loads((out / 'results.json').read_text())
    runs = result['runs']
    assert runs['naive'][1] is None and result['failures'] == [
        'naive seed 1: [demo] failed: train naive']
    for variant in ('det_only', 'naive', 'fuller'):
        assert runs[variant][0]['mAP'] == pytest.approx(0.01)
    assert runs['fuller'][1]['mIoU'] == pytest.approx(0.31)
    assert f"Data: {result['bed']}." in (out / 'results.md').read_text()
    cores = max(1, (os.cpu_count() or 1) // 3)
    assert seen_env == [str(cores)] * 6


def test_results_name_the_bed(tmp_path):
    from fuller.datasets.synthetic import SUMMARY_FILE
    assert demo.bed_name(str(tmp_path)) == 'not synthetic'
    (tmp_path / SUMMARY_FILE).write_text(json.dumps(
        dict(generator_version=2, sensor_profile='nuscenes')))
    assert demo.bed_name(str(tmp_path)) == \
        'synthetic, generator version 2, sensor profile nuscenes'
    (tmp_path / SUMMARY_FILE).write_text(json.dumps(dict(generator_version=2)))
    assert demo.bed_name(str(tmp_path)).endswith('sensor profile v2')  # older sets


_TOOL = '''
import os, signal, sys, time
marker = sys.argv[1]
signals = []
for stop in (signal.SIGINT, signal.SIGTERM):
    signal.signal(stop, lambda signum, frame: signals.append(signum))
with open(marker + '.started', 'w') as f:
    f.write(str(os.getsid(0)))
deadline = time.time() + 300
while not signals and time.time() < deadline:
    time.sleep(0.05)
time.sleep(1.0)  # a second delivery would land here
with open(marker + '.signals', 'w') as f:
    f.write(' '.join(map(str, signals)))
sys.exit(130 if signals else 0)
'''


@pytest.mark.parametrize('sent,forwarded', [
    ('SIGINT', 'SIGINT'), ('SIGTERM', 'SIGTERM'), ('SIGHUP', 'SIGTERM')])
def test_a_stop_signal_stops_the_demo_and_hands_each_running_tool_one(
        tmp_path, monkeypatch, sent, forwarded):
    """A stop signal to the driver: each running tool (in a session of its
    own, so that a terminal's Ctrl-C reaches it only through the driver)
    gets one signal, which tools/train.py takes as "save and stop" (a
    closed terminal's SIGHUP as SIGTERM); no queued run starts; the demo
    exits 130, writes no half table and says how to resume."""
    import signal
    import sys
    import threading
    import time
    tool = tmp_path / 'tool.py'
    tool.write_text(_TOOL)
    started = []

    def tool_run(variant, seed, out, root, schedule, env, probe=False):
        started.append(variant)
        marker = str(tmp_path / variant)
        demo.run([sys.executable, str(tool), marker], marker + '.log', env)
        return dict(mAP=0.5, NDS=0.5, mIoU=0.5)

    monkeypatch.setattr(demo, 'train_and_test', tool_run)
    monkeypatch.setattr(demo, 'prepare_data', lambda root, world: None)

    def interrupt_when_both_run():
        deadline = time.time() + 120
        while time.time() < deadline and len(
                list(tmp_path.glob('*.started'))) < 2:
            time.sleep(0.05)
        os.kill(os.getpid(), getattr(signal, sent))

    previous = {name: signal.getsignal(getattr(signal, name))
                for name in ('SIGINT', 'SIGTERM', 'SIGHUP')}
    threading.Thread(target=interrupt_when_both_run, daemon=True).start()
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as stop:
        demo.main(['--variants', 'det_only', 'naive', 'fuller', '--jobs', '2',
                   '--device', 'cpu', '--out', str(out)])
    assert stop.value.code == 130
    assert sorted(started) == ['det_only', 'naive']  # fuller never started
    for variant in started:
        assert (tmp_path / f'{variant}.signals').read_text() == str(
            int(getattr(signal, forwarded)))
        assert int((tmp_path / f'{variant}.started').read_text()) != \
            os.getsid(0)
    assert not (out / 'results.json').exists()
    for name, handler in previous.items():  # the handlers are restored
        assert signal.getsignal(getattr(signal, name)) is handler


def test_summary_tables_the_finished_runs_and_trains_nothing(
        tmp_path, monkeypatch):
    """--summary: the runs with a metrics.json are tabled, the others are
    marked "not run" (not FAILED), and nothing is trained or generated."""
    import json
    out = tmp_path / 'ablation'
    for seed, variant, m_ap in ((0, 'naive', 0.30), (1, 'naive', 0.40),
                                (0, 'fuller', 0.25)):
        work = out / f'seed{seed}' / variant
        work.mkdir(parents=True)
        (work / 'metrics.json').write_text(json.dumps(dict(
            row=dict(mAP=m_ap, NDS=0.4, mIoU=0.2), raw={})))

    def must_not_train(*args, **kwargs):
        raise AssertionError('--summary trained or generated something')

    monkeypatch.setattr(demo, 'train_and_test', must_not_train)
    monkeypatch.setattr(demo, 'prepare_data', must_not_train)
    monkeypatch.setattr(demo, 'run', lambda *a, **k: None)  # no plots
    demo.main(['--summary', '--variants', 'naive', 'fuller', '--seeds', '2',
               '--out', str(out), '--device', 'cpu'])
    result = json.loads((out / 'results.json').read_text())
    assert result['table']['naive']['mAP']['mean'] == pytest.approx(0.35)
    assert result['table']['fuller']['not_run'] == 1
    assert result['table']['fuller']['failed'] == 0
    markdown = (out / 'results.md').read_text()
    assert 'Partial: 1 of 4 runs' in markdown
    assert '| fuller | 25.0 / 40.0 / 20.0 | not run |' in markdown
    # --first-seed 1: only seed 1 (seed 0's rows are left out)
    demo.main(['--summary', '--variants', 'naive', 'fuller', '--seeds', '1',
               '--first-seed', '1', '--out', str(out), '--device', 'cpu'])
    result = json.loads((out / 'results.json').read_text())
    assert result['table']['naive']['mAP']['mean'] == pytest.approx(0.40)
    assert result['table']['fuller']['not_run'] == 1
