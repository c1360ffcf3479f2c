"""`make demo` / `make ablation`: the FULLER experiment end to end.

Generates the synthetic nuScenes set if absent, builds its info files, trains
and evaluates the CPU setting's variants with the real tools/train.py and
tools/test.py (one seed list, schedule and data for all: no per-variant
tuning), then writes one table to ``<out>/results.md`` and ``results.json``
and the gradient plots to ``<out>/plots``.

    python tools/run_demo.py [--schedule short|learn|quick] [--seeds N]
                             [--epochs E] [--lr LR] [--out DIR]
    python tools/run_demo.py --ablation        # every variant, 3 seeds, learn
    python tools/run_demo.py --data-only       # just make the synthetic set
    python tools/run_demo.py --ablation --summary  # table the finished runs
    python tools/run_demo.py --ablation --jobs 8   # 8 runs at once (a GPU)
    python tools/run_demo.py --ablation --first-seed 1 --seeds 2  # seeds 1, 2

A finished run (its metrics.json exists) is reused; an interrupted one resumes
from its last checkpoint; a failed one is reported as failed (with its log)
and the others go on. Nothing in an earlier run's work dir is deleted.
Ctrl-C (or SIGTERM, SIGHUP) stops the demo: no further run starts, each running
tool gets the signal once (tools/train.py then saves a checkpoint of its
current iteration and exits; a second Ctrl-C stops it at once), and the same
command resumes.
``--jobs N`` trains N runs at once, each with 1/N of the CPU threads
(default: 8 on a GPU machine, 2 on a CPU; see ``default_jobs``).
Training runs on the GPU when CUDA is available (mmengine's Runner moves the
model there); ``--device cpu`` hides the GPU from the runs.
"""
import argparse
import concurrent.futures
import glob
import importlib.util
import json
import math
import os
import os.path as osp
import signal
import statistics
import sys
import time
from typing import Dict, List, Optional, Tuple

from fuller.experiments.processes import (STOP, Interrupted, RunFailed, log,
                                          on_stop_signal, run_tool)
from fuller.experiments.reliance import (RELIANCE_COLUMNS, TASK_METRICS,
                                         fused_config, last_checkpoint,
                                         probe_rows, sensor_drop_rows,
                                         summarise)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The demo's six variants: single-task baselines, naive MTL, each level, both.
VARIANTS = ['det_only', 'seg_only', 'naive', 'inter', 'intra', 'fuller']
#: The modality-reliance references and baselines: each sensor alone, the
#: paper's IMTL-G with EqualNorm, train-time modality dropout (alone and
#: with the task level).
RELIANCE_VARIANTS = ['camera_only', 'lidar_only', 'fuller_imtlg', 'dropout',
                     'dropout_inter']
ABLATION_VARIANTS = VARIANTS + RELIANCE_VARIANTS
#: Further inter-level calibrators, on request (--variants): IMTL-G alone,
#: and FULLER with calibrators that keep detection's step size
#: (configs/fuller/fuller_cpu_<name>.py; docs/calibration.md).
CALIBRATOR_VARIANTS = ['inter_imtlg', 'fuller_imtlg_sum', 'fuller_imtlg_max',
                       'fuller_mgda_sum', 'fuller_dbmtl', 'fuller_aligned_rmse']
ALL_VARIANTS = ABLATION_VARIANTS + CALIBRATOR_VARIANTS
BASELINE = 'naive'
CONFIG = 'configs/fuller/fuller_cpu_{}.py'
SYNTH_ROOT = 'data/nuscenes-synth'
QUICK_ROOT = 'data/nuscenes-synth-quick'
#: FULLER's bar (issue 12), means over seeds, in metric units (0..1).
BAR = dict(mAP=-0.01, mIoU=0.05)
#: Below these (naive's means) a task has not been learned: differences of
#: numbers near zero prove nothing, so the bar is not judged.
LEARNED = dict(mAP=0.10, mIoU=0.10)

#: Training schedules. ``epochs``/``lr``/``batch`` None: the config's (4
#: epochs, AdamW 2e-3 with cosine decay to lr/100, batch 2). One schedule for
#: every variant. ``short`` trains at batch 1: on 2 CPU cores a sample costs
#: the same at batch 1 and 2, and on an H100 twice the updates for the same
#: samples took det_only from 35.6-36.4 to 45.3-46.4 mAP at 12 epochs; on the
#: CPU five seeds scatter (29.8 to 48.5, mean 40.6; batch 2: 33.9;
#: docs/results.md, "Five CPU seeds of det_only").
SCHEDULES = {
    'quick': dict(
        epochs=1, lr=None, batch=None,
        world=['--scenes', '4', '--val-scenes', '1', '--samples-per-scene', '4'],
        note='a 1-epoch SMOKE RUN on a 4-scene x 4-sample world: it checks '
        'that every step runs; its numbers say nothing about the methods'),
    'short': dict(
        epochs=12, lr=4e-3, batch=1, world=[],
        note='12 epochs (960 iterations at batch 1, AdamW 4e-3, cosine), what '
        'fitted `make demo` into 30 minutes on one 2-core CPU (another 2-core '
        'machine is 1.6x slower); at this length the detection-only model '
        'reached 45.8 +- 0.6 mAP on an H100 (3 seeds) and 40.6 +- 7.1 on a '
        '2-core CPU (5 seeds), and the segmentation-only model 25.6 mIoU on '
        'both (docs/results.md): the map task is short of its learn-schedule '
        'figure; one seed\'s differences are not findings'),
    'learn': dict(
        epochs=25, lr=4e-3, batch=None, world=[],
        note='25 epochs (1,000 iterations at batch 2, AdamW 4e-3, cosine); '
        'at this length the detection-only model reached 54.6 +- 2.4 mAP '
        'and the segmentation-only model 28.6 +- 0.8 mIoU (3 seeds, '
        'docs/results.md)'),
}


def run(cmd: List[str], log_file: Optional[str] = None,
        env: Optional[dict] = None) -> None:
    """Run a tool from the repo root (:func:`run_tool`)."""
    run_tool(cmd, REPO, log_file, env)


def dataset_version(root: str) -> Optional[str]:
    """The nuScenes version whose tables are under ``root`` (None: none)."""
    for version in ('v1.0-mini', 'v1.0-trainval'):
        if osp.isfile(osp.join(root, version, 'scene.json')):
            return version
    return None


def check_generator_version(root: str) -> None:
    """Warn when ``root`` was written by an older synthetic generator (no
    heading cue, smaller val split): it is reused, never overwritten."""
    from fuller.datasets.synthetic import GENERATOR_VERSION, SUMMARY_FILE
    path = osp.join(root, SUMMARY_FILE)
    found = None
    if osp.isfile(path):
        with open(path) as f:
            found = json.load(f).get('generator_version')
    if found != GENERATOR_VERSION:
        log(f'warning: {root} was made by an older synthetic generator '
            f'(version {found or 1}, current {GENERATOR_VERSION}: heading cue, '
            '40 val samples); move it away to regenerate it, or pass --data-root')


def bed_name(root: str) -> str:
    """What the results were measured on: the synthetic set's generator
    version and sensor profile (docs/data.md), or 'not synthetic'."""
    from fuller.datasets.synthetic import SUMMARY_FILE
    path = osp.join(root, SUMMARY_FILE)
    if not osp.isfile(path):
        return 'not synthetic'
    with open(path) as f:
        summary = json.load(f)
    return (f'synthetic, generator version {summary.get("generator_version", 1)}, '
            f'sensor profile {summary.get("sensor_profile", "v2")}')


def prepare_data(root: str, world: List[str]) -> None:
    py = sys.executable
    if dataset_version(root) is None:
        log(f'generating the synthetic nuScenes set in {root}')
        t0 = time.time()
        run([py, 'tools/make_synthetic_nuscenes.py', '--out', root, *world])
        log(f'generated in {time.time() - t0:.0f} s')
    else:
        check_generator_version(root)
    if not any('infos_train' in f for f in os.listdir(root)):
        log(f'building info files for {root}')
        run([py, 'tools/create_data.py', 'nuscenes', '--root-path', root,
             '--version', dataset_version(root)])


def step_ratios(work: str) -> Dict[str, float]:
    """How much of each task's gradient step into the shared backbone the
    calibration kept: the median over training of ``|a_t g_t| / |g_t|``
    (``fuller/grad_norm_after/<task>`` over ``fuller/grad_norm/<task>``)."""
    spec = importlib.util.spec_from_file_location(
        'plot_gradients', osp.join(REPO, 'tools', 'plot_gradients.py'))
    plots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plots)
    series = plots.load_scalars(work)
    out = {}
    for task in ('det', 'seg'):
        after = series.get(f'fuller/grad_norm_after/{task}')
        before = series.get(f'fuller/grad_norm/{task}')
        if after is None or before is None or len(after[1]) != len(before[1]):
            continue
        ok = before[1] > 0
        if ok.any():
            out[f'{task}_step'] = float(statistics.median(after[1][ok] / before[1][ok]))
    return out


def schedule_options(schedule: dict) -> List[str]:
    """``--cfg-options`` of a schedule: batch size, epochs (the cosine decay
    follows), learning rate, checkpoint and statistics intervals."""
    opts = ['train_cfg.val_interval=1000000']  # evaluated once, by test.py
    epochs, lr, batch = schedule['epochs'], schedule['lr'], schedule['batch']
    if batch is not None:
        opts.append(f'train_dataloader.batch_size={batch}')
    if epochs is not None:
        opts += [f'train_cfg.max_epochs={epochs}', f'param_scheduler.1.end={epochs}',
                 f'param_scheduler.1.T_max={epochs}',
                 # a checkpoint every ~1/8 of the run (resume granularity)
                 f'default_hooks.checkpoint.interval={max(1, epochs // 8)}']
    if lr is not None:
        opts += [f'optim_wrapper.optimizer.lr={lr}', f'param_scheduler.1.eta_min={lr / 100}']
    if epochs == 1:  # a handful of iterations: log the statistics every one
        opts.append('custom_hooks.0.interval=1')
    return opts


def run_device(work: str) -> Optional[str]:
    """The device a run trained on, from the environment block of its first
    mmengine log: the GPU's name without the vendor ('H100 80GB HBM3'),
    'cpu', or None where no log says."""
    for log_file in sorted(glob.glob(osp.join(work, '2*', '2*.log'))):
        with open(log_file, errors='replace') as f:
            for _, line in zip(range(200), f):
                line = line.strip()
                if line.startswith('GPU 0:'):
                    return line[len('GPU 0:'):].strip().removeprefix('NVIDIA ')
                if line == 'CUDA available: False':
                    return 'cpu'
    return None


def finished_run(work: str) -> Optional[Dict[str, float]]:
    """The row of a run that finished (its metrics.json exists), else None."""
    metrics_file = osp.join(work, 'metrics.json')
    if not osp.isfile(metrics_file):
        return None
    with open(metrics_file) as f:
        row = json.load(f)['row']
    if 'device' not in row:  # written before runs recorded their device
        row['device'] = run_device(work)
    return {**step_ratios(work), **row}


#: the row of a run that has not finished yet (--summary)
NOT_RUN = {'not_run': True}


def train_and_test(variant: str, seed: int, out: str, root: str,
                   schedule: dict, env: dict,
                   probe: bool = False) -> Dict[str, float]:
    """Train and test one run (reused when finished); for a camera + LiDAR
    model add the sensor-drop columns and, with ``probe``, the unimodal
    probes' (each resumable on its own)."""
    work = osp.join(out, f'seed{seed}', variant)
    cfg = osp.join(REPO, CONFIG.format(variant))
    options = ['--data-root', root]
    row = finished_run(work)
    if row is not None:
        log(f'{variant} seed {seed}: reusing {work}/metrics.json')
    else:
        row = _train_and_test(variant, seed, work, cfg, options, schedule, env)
    if fused_config(cfg):
        ckpt = last_checkpoint(work)
        log(f'{variant} seed {seed}: evaluating with each sensor dropped')
        row.update(sensor_drop_rows(cfg, ckpt, work, options, run, env))
        if probe:
            log(f'{variant} seed {seed}: unimodal probes')
            row.update(probe_rows(ckpt, work, seed, options,
                                  schedule_options(schedule), run, env))
    return row


def _train_and_test(variant: str, seed: int, work: str, cfg: str,
                    options: List[str], schedule: dict,
                    env: dict) -> Dict[str, float]:
    os.makedirs(work, exist_ok=True)
    train_log = osp.join(work, 'train.log')
    cmd = [sys.executable, 'tools/train.py', cfg, '--work-dir', work,
           '--seed', str(seed), *options, '--cfg-options', *schedule_options(schedule)]
    if osp.isfile(osp.join(work, 'last_checkpoint')):
        cmd.append('--resume')
    t0 = time.time()
    log(f'{variant} seed {seed}: training (log: {train_log})')
    run(cmd, train_log, env)
    train_time = time.time() - t0
    ckpt = last_checkpoint(work)
    raw_file = osp.join(work, 'test_metrics.json')
    log(f'{variant} seed {seed}: evaluating {osp.basename(ckpt)}')
    run([sys.executable, 'tools/test.py', cfg, ckpt, '--work-dir', work,
         '--metrics-out', raw_file, *options], osp.join(work, 'test.log'), env)
    with open(raw_file) as f:
        raw = json.load(f)['metrics']
    row = summarise(raw)
    row.update(step_ratios(work))
    row['train_time_s'] = train_time
    row['device'] = run_device(work)
    with open(osp.join(work, 'metrics.json'), 'w') as f:
        json.dump(dict(row=row, raw=raw), f, indent=2)
    shown = '  '.join(f'{k}={row[k]:.4f}' for k in ('mAP', 'NDS', 'mIoU')
                      if row[k] is not None)
    log(f'{variant} seed {seed}: {shown}  (trained in {train_time:.0f} s)')
    return row


def aggregate(rows: Dict[str, List[Optional[Dict[str, float]]]]) -> Dict[str, Dict[str, dict]]:
    """Mean and spread (sample std; 0 for one seed) of every column over the
    runs that finished (None = a failed run)."""
    table = {}
    for variant, runs in rows.items():
        done = [r for r in runs if r is not None and r is not NOT_RUN]
        cols = {}
        for key in dict.fromkeys(k for r in done for k in r):
            if key == 'device':
                continue
            values = [r[key] for r in done if r.get(key) is not None]
            if not values:
                cols[key] = None
                continue
            cols[key] = dict(mean=statistics.fmean(values),
                             std=statistics.stdev(values) if len(values) > 1 else 0.0,
                             values=values)
        # train time means something per device only (a CPU run takes ~5x an H100's)
        by_device = {}
        for r in done:
            if r.get('train_time_s') is not None:
                by_device.setdefault(r.get('device') or 'unknown', []).append(r['train_time_s'])
        cols['train_time_by_device'] = {d: statistics.fmean(t) for d, t in by_device.items()}
        cols['failed'] = sum(r is None for r in runs)
        cols['not_run'] = sum(r is NOT_RUN for r in runs)
        table[variant] = cols
    return table


def _fmt(cell: Optional[dict], scale: float = 100.0, digits: int = 1) -> str:
    if cell is None:
        return '–'
    if math.isnan(cell['mean']):
        return 'n/a'  # e.g. a map class without ground truth in the val split
    text = f'{cell["mean"] * scale:.{digits}f}'
    if len(cell['values']) > 1:
        text += f' ± {cell["std"] * scale:.{digits}f}'
    return text


def _fmt_times(cols: dict) -> str:
    """Train time: mean ± std over seeds on one device; with several
    devices, each one's mean ('cpu 1,512 · H100 80GB HBM3 310')."""
    by_device = cols.get('train_time_by_device') or {}
    if len(by_device) <= 1:
        return _fmt(cols.get('train_time_s'), scale=1.0, digits=0)
    return ' · '.join(f'{d} {t:,.0f}' for d, t in by_device.items())


def bar_check(cols: dict, base: dict) -> str:
    """Whether a multi-task variant clears FULLER's bar against naive:
    mAP >= naive - 1 and mIoU >= naive + 5 (points, means over seeds);
    'not learned' while naive is below ``LEARNED`` (e.g. a smoke run)."""
    if not (cols.get('mAP') and cols.get('mIoU') and base.get('mAP') and base.get('mIoU')):
        return '–'
    if any(base[k]['mean'] < LEARNED[k] for k in LEARNED):
        return 'not learned'
    ok = (cols['mAP']['mean'] - base['mAP']['mean'] >= BAR['mAP'] - 1e-9
          and cols['mIoU']['mean'] - base['mIoU']['mean'] >= BAR['mIoU'] - 1e-9)
    return 'yes' if ok else 'no'


def render_markdown(table: Dict[str, Dict[str, dict]], seeds: List[int],
                    per_seed: Optional[Dict[str, List[Optional[dict]]]] = None) -> str:
    # Map classes in the metric's order (the first variant that has them).
    iou_cols = list(dict.fromkeys(k for cols in table.values() for k in cols
                                  if k.startswith('IoU.')))
    # the modality-reliance columns some run has (sensor drops, probes)
    reliance = [(p, h) for p, h in RELIANCE_COLUMNS
                if any(f'{p}.{m}' in cols for cols in table.values()
                       for m in TASK_METRICS)]
    head = ['variant', 'mAP', 'NDS', 'mIoU', 'mAOE', 'mAVE'] + [
        f'IoU {k[4:]}' for k in iou_cols] + [
        f'{h} (mAP / mIoU)' for _, h in reliance] + [
        'step kept det / seg', 'train time (s)', f'Δ vs {BASELINE} (mAP / NDS / mIoU)',
        'bar (mAP ≥ naive−1, mIoU ≥ naive+5)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    base = table.get(BASELINE, {})
    for variant, cols in table.items():
        deltas = []
        for key in ('mAP', 'NDS', 'mIoU'):
            if cols.get(key) and base.get(key) and variant != BASELINE:
                deltas.append(f'{(cols[key]["mean"] - base[key]["mean"]) * 100:+.1f}')
            else:
                deltas.append('–')
        name = variant + ''.join(f' ({cols[k]} {k.replace("_", " ")})'
                                 for k in ('failed', 'not_run') if cols.get(k))
        cells = [name] + [_fmt(cols.get(k)) for k in ('mAP', 'NDS', 'mIoU')]
        cells += [_fmt(cols.get(k), scale=1.0, digits=2) for k in ('mAOE', 'mAVE')]
        cells += [_fmt(cols.get(k)) for k in iou_cols]
        cells += [' / '.join(_fmt(cols.get(f'{p}.{m}')) for m in TASK_METRICS)
                  for p, _ in reliance]
        cells += [' / '.join(_fmt(cols.get(f'{t}_step'), scale=1.0, digits=2)
                             for t in ('det', 'seg'))]
        cells += [_fmt_times(cols), ' / '.join(deltas),
                  '–' if variant == BASELINE else bar_check(cols, base)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    note = (f'Metrics in %, mean ± sample std over seeds {seeds}' if len(seeds) > 1
            else f'Metrics in %, seed {seeds[0]} (one seed: no spread; run `make demo SEEDS=3`)')
    text = '\n'.join(lines) + (f'\n\n{note}; mAOE (rad) and mAVE (m/s) are nuScenes\' '
                               'orientation and velocity errors. "Step kept" is the median over '
                               'training of |a_t g_t| / |g_t|: how much of each task\'s gradient '
                               'into the shared backbone the calibration let through (1 = all; '
                               'seed 0\'s curves: plots/task_grad_norms.png). Δ is the change of '
                               'the mean against the naive multi-task run.'
                               + (' "LiDAR dropped": evaluated with the LiDAR absent '
                                  '(its branch off, zeros at the fuser; tools/test.py '
                                  '--drop-modality), so what the network does with the '
                                  'camera alone, and the other way round; a "probe" '
                                  'trains fresh heads on the frozen branch: what the '
                                  'branch learned.' if reliance else '') + '\n')
    if per_seed and len(seeds) > 1:
        text += '\nEvery run (mAP / NDS / mIoU in %):\n\n'
        # a seed whose runs all share one device names it in the header,
        # else each run names its own
        seed_device = []
        for i in range(len(seeds)):
            seed_runs = [runs[i] for runs in per_seed.values() if i < len(runs)]
            devices = {r.get('device') for r in seed_runs
                       if r is not None and r is not NOT_RUN}
            seed_device.append(devices.pop() if len(devices) == 1 else None)
        text += '| variant | ' + ' | '.join(
            f'seed {s}' + (f' ({d})' if d else '') for s, d in zip(seeds, seed_device)) + ' |\n'
        text += '|---|' + '---|' * len(seeds) + '\n'
        for variant, runs in per_seed.items():
            cells = []
            for r, shared in zip(runs, seed_device):
                if r is None or r is NOT_RUN:
                    cells.append('FAILED' if r is None else 'not run')
                    continue
                cell = ' / '.join('–' if r.get(k) is None else f'{r[k] * 100:.1f}'
                                  for k in ('mAP', 'NDS', 'mIoU'))
                if shared is None and r.get('device'):
                    cell += f' ({r["device"]})'
                cells.append(cell)
            text += f'| {variant} | ' + ' | '.join(cells) + ' |\n'
    return text


def default_jobs(device: str) -> int:
    """Runs trained at once when --jobs is not given: 8 on a GPU (the CPU
    model leaves it mostly idle: eight 1,000-iteration runs took 190-197 s
    together on an H100), 2 on a CPU with 2 or more cores (on 2 cores two
    1-thread runs took 1.10 s per iteration each, one 2-thread run
    0.74-0.80 s: 1.4x the iterations per second)."""
    if device == 'cuda':
        return 8
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='tools/run_demo.py', description=__doc__.split('\n')[0])
    parser.add_argument('--schedule', choices=sorted(SCHEDULES), default=None,
                        help='training length (default: short; learn with --ablation)')
    parser.add_argument('--quick', action='store_true', help='= --schedule quick (a smoke run)')
    parser.add_argument('--ablation', action='store_true',
                        help='every variant incl. the other calibrators, 3 seeds, '
                        'schedule learn (each can be overridden)')
    parser.add_argument('--seeds', type=int, default=None, help='number of seeds (0, 1, ...)')
    parser.add_argument('--first-seed', type=int, default=0,
                        help='seeds are FIRST_SEED, FIRST_SEED + 1, ... (default 0): '
                        'to add seeds to an ablation, or to train its seeds on '
                        'several machines')
    parser.add_argument('--epochs', type=int, default=None, help="override the schedule's epochs")
    parser.add_argument('--lr', type=float, default=None, help="override the schedule's peak lr")
    parser.add_argument('--device', choices=['auto', 'cpu'], default='auto',
                        help='auto: the GPU when CUDA is available; cpu: hide GPUs from the runs')
    parser.add_argument('--out', default=None,
                        help='output dir (default work_dirs/demo[-quick|-learn] or work_dirs/ablation)')
    parser.add_argument('--data-root', default=None,
                        help=f'synthetic set to use or create (default {SYNTH_ROOT}, '
                        f'{QUICK_ROOT} with --quick)')
    parser.add_argument('--variants', nargs='+', default=None, choices=ALL_VARIANTS)
    parser.add_argument('--probe', action=argparse.BooleanOptionalAction, default=None,
                        help='train the unimodal probes of every camera + LiDAR run '
                        '(its frozen camera / LiDAR branch under fresh heads, the '
                        "run's schedule; default: on with --ablation)")
    parser.add_argument('--jobs', type=int, default=None,
                        help='runs trained at once (default: 8 on a GPU '
                        'machine, else 2 where there are 2 or more cores)')
    parser.add_argument('--data-only', action='store_true',
                        help='only make the synthetic set and its info files')
    parser.add_argument('--summary', action='store_true',
                        help='train nothing: write the table of the runs '
                        'finished so far (the others: "not run")')
    args = parser.parse_args(argv)
    if args.quick:
        if args.schedule not in (None, 'quick'):
            parser.error('--quick is --schedule quick; give one of them')
        args.schedule = 'quick'
    if args.schedule is None:
        args.schedule = 'learn' if args.ablation else 'short'
    if args.seeds is None:
        args.seeds = 3 if args.ablation else 1
    if args.seeds < 1:
        parser.error(f'--seeds must be >= 1, got {args.seeds}')
    if args.first_seed < 0:
        parser.error(f'--first-seed must be >= 0, got {args.first_seed}')
    if args.epochs is not None and args.epochs < 1:
        parser.error(f'--epochs must be >= 1, got {args.epochs}')
    if args.jobs is not None and args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    if args.lr is not None and not args.lr > 0:
        parser.error(f'--lr must be > 0, got {args.lr}')
    if args.variants is None:
        args.variants = ABLATION_VARIANTS if args.ablation else VARIANTS
    if args.probe is None:
        args.probe = args.ablation
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    STOP.clear()
    handlers = {signum: signal.signal(signum, on_stop_signal)
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        _main(args)
    except Interrupted:
        pass
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if STOP.is_set():
        print('\n[demo] interrupted: run the same command again to resume',
              file=sys.stderr, flush=True)
        sys.exit(130)


def _main(args: argparse.Namespace) -> None:
    schedule = dict(SCHEDULES[args.schedule])
    for key in ('epochs', 'lr'):
        if getattr(args, key) is not None:
            schedule[key] = getattr(args, key)
    quick = args.schedule == 'quick'
    default_out = 'ablation' if args.ablation else {
        'quick': 'demo-quick', 'short': 'demo', 'learn': 'demo-learn'}[args.schedule]
    out = osp.abspath(args.out or osp.join(REPO, 'work_dirs', default_out))
    root = osp.abspath(args.data_root or osp.join(REPO, QUICK_ROOT if quick else SYNTH_ROOT))
    env = dict(os.environ)
    if args.device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    t_start = time.time()
    if not args.summary:
        try:
            prepare_data(root, schedule['world'])
        except RunFailed as err:
            sys.exit(str(err))
    if args.data_only:
        log(f'data ready in {root}')
        return
    import torch
    device = 'cuda' if args.device == 'auto' and torch.cuda.is_available() else 'cpu'
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    runs = [(seed, variant) for seed in seeds for variant in args.variants]
    failures: List[str] = []
    if args.summary:
        rows = [finished_run(osp.join(out, f'seed{seed}', variant)) or NOT_RUN
                for seed, variant in runs]
        log(f'summary of {sum(r is not NOT_RUN for r in rows)} finished of '
            f'{len(runs)} runs in {out}')
    else:
        log(f'schedule {args.schedule} ({schedule["epochs"] or "config"} epochs, '
            f'lr {schedule["lr"] or "config"}, batch {schedule["batch"] or "config"}), '
            f'{len(args.variants)} variants x '
            f'{len(seeds)} seeds on {device}: {out}')
        jobs = args.jobs or default_jobs(device)
        log(f'{jobs} run(s) at once')
        if jobs > 1:  # each run's torch gets its share of the cores
            env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // jobs))
        rows = train_all(runs, jobs, out, root, schedule, env, failures, args.probe)
        if STOP.is_set():  # the table of a stopped demo would be half empty
            return
    per_seed: Dict[str, List[Optional[Dict[str, float]]]] = {v: [] for v in args.variants}
    for (seed, variant), row in zip(runs, rows):
        per_seed[variant].append(row)
    report(args, schedule, device, out, seeds, per_seed, failures, bed_name(root),
           time.time() - t_start)


def train_all(runs: List[Tuple[int, str]], jobs: int, out: str, root: str,
              schedule: dict, env: dict, failures: List[str], probe: bool = False
              ) -> List[Optional[Dict[str, float]]]:
    """Train and test every (seed, variant) run, ``jobs`` at a time; their
    rows in ``runs`` order (None: failed, its line added to ``failures``;
    or not started because the demo is being stopped)."""

    def one(k: int) -> Optional[Dict[str, float]]:
        seed, variant = runs[k]
        if STOP.is_set():
            return None
        log(f'run {k + 1}/{len(runs)}')
        try:
            return train_and_test(variant, seed, out, root, schedule, env, probe)
        except Interrupted:
            return None
        except RunFailed as err:
            print(str(err), flush=True)
            log(f'{variant} seed {seed}: FAILED; going on with the others')
            failures.append(f'{variant} seed {seed}: {str(err).splitlines()[-1]}')
            return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, range(len(runs))))


def report(args: argparse.Namespace, schedule: dict, device: str, out: str,
           seeds: List[int], per_seed: Dict[str, List[Optional[Dict[str, float]]]],
           failures: List[str], bed: str, wall: float) -> None:
    """Write results.md, results.json and the plots of seed 0's finished
    runs; print the table."""
    quick = args.schedule == 'quick'
    table = aggregate(per_seed)
    markdown = render_markdown(table, seeds, per_seed)
    head = (f'# FULLER {"ablation" if args.ablation else "demo"} results\n\n'
            f'Schedule `{args.schedule}`: {schedule["note"]}.'
            + (f' Overridden: epochs {schedule["epochs"]}, lr {schedule["lr"]}.'
               if args.epochs or args.lr else '')
            + ('' if args.summary else f' Device: {device}.') + f' Data: {bed}.\n\n')
    if quick:
        head += '**This is a smoke run, not a result.**\n\n'
    missing = sum(r is NOT_RUN for rows in per_seed.values() for r in rows)
    if missing:
        head += (f'**Partial: {missing} of {sum(map(len, per_seed.values()))} '
                 'runs have not finished yet (marked "not run"); means are '
                 'over the finished ones.**\n\n')
    tail = '' if args.summary else f'\nWall time of this run: {wall:.0f} s.\n'
    if failures:
        tail += '\nFailed runs (their logs are in the work dirs):\n\n' + ''.join(
            f'- {f}\n' for f in failures)
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, 'results.md'), 'w') as f:
        f.write(head + markdown + tail)
    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(dict(seeds=seeds, schedule=args.schedule, bed=bed, epochs=schedule['epochs'],
                       lr=schedule['lr'], quick=quick, device=device, wall_time_s=wall,
                       failures=failures, table=table, runs=per_seed), f, indent=2)
    work_dirs = [osp.join(out, f'seed{seeds[0]}', v) for v in args.variants
                 if osp.isfile(osp.join(out, f'seed{seeds[0]}', v, 'metrics.json'))
                 or (not args.summary and osp.isdir(osp.join(out, f'seed{seeds[0]}', v)))]
    try:
        run([sys.executable, 'tools/plot_gradients.py', *work_dirs, '--results',
             osp.join(out, 'results.json'), '--out', osp.join(out, 'plots')])
    except RunFailed as err:
        failures.append(f'plots: {err}')
    print('\n' + head + markdown + tail)
    log(f'done in {wall:.0f} s: {out}/results.md, results.json, plots/')
    if failures:
        sys.exit(f'[demo] {len(failures)} run(s) failed: see {out}/results.md')


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:  # a Ctrl-C before main() set up its handlers
        sys.exit('\n[demo] interrupted: run the same command again to resume')
