"""`make demo`: the FULLER experiment end to end on CPU.

Generates the synthetic nuScenes set if absent, builds its info files, trains
and evaluates the CPU setting's six variants with the real tools/train.py and
tools/test.py (same seed, schedule and data for all), then writes one table to
``<out>/results.md`` and ``results.json`` and the gradient plots to ``<out>/plots``.

    python tools/run_demo.py [--seeds N] [--quick] [--out work_dirs/demo]

A finished run (its metrics.json exists) is reused; an interrupted one resumes
from its last checkpoint. Nothing in an earlier run's work dir is deleted.
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VARIANTS = ['det_only', 'seg_only', 'naive', 'inter', 'intra', 'fuller']
BASELINE = 'naive'
CONFIG = 'configs/fuller/fuller_cpu_{}.py'
SYNTH_ROOT = 'data/nuscenes-synth'
QUICK_ROOT = 'data/nuscenes-synth-quick'
# --quick: a smaller world and schedule, same code paths (a smoke test).
QUICK_WORLD = ['--scenes', '4', '--samples-per-scene', '4']
QUICK_OPTIONS = ['train_cfg.max_epochs=1', 'custom_hooks.0.interval=1']


def log(msg: str) -> None:
    print(f'[demo {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def run(cmd: List[str], log_file: Optional[str] = None) -> None:
    """Run a tool from the repo root; on failure show the log's tail and stop."""
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))
    if log_file:
        with open(log_file, 'a') as f:
            proc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
    else:
        proc = subprocess.run(cmd, cwd=REPO, env=env)
    if proc.returncode != 0:
        tail = ''
        if log_file:
            with open(log_file) as f:
                tail = ''.join(f.readlines()[-30:])
        sys.exit(f'{tail}\n[demo] failed: {" ".join(cmd)}'
                 + (f' (full log: {log_file})' if log_file else ''))


def prepare_data(root: str, quick: bool) -> None:
    py = sys.executable
    if not osp.isfile(osp.join(root, 'v1.0-mini', 'scene.json')):
        log(f'generating the synthetic nuScenes set in {root}')
        run([py, 'tools/make_synthetic_nuscenes.py', '--out', root]
            + (QUICK_WORLD if quick else []))
    if not any('infos_train' in f for f in os.listdir(root)):
        log(f'building info files for {root}')
        run([py, 'tools/create_data.py', 'nuscenes', '--root-path', root,
             '--version', 'v1.0-mini'])


def _find(metrics: Dict[str, float], suffix: str) -> Optional[float]:
    for key, value in metrics.items():
        if key == suffix or key.endswith('/' + suffix):
            return value
    return None


def summarise(metrics: Dict[str, float]) -> Dict[str, float]:
    """Pick the demo's columns out of the evaluators' metric names."""
    row = {'mAP': _find(metrics, 'mAP'), 'NDS': _find(metrics, 'NDS'),
           'mIoU': _find(metrics, 'mIoU')}
    for key, value in metrics.items():
        name = key.rsplit('/', 1)[-1]
        if name.startswith('IoU.') and '@' not in name:
            row[name] = value
    return row


def train_and_test(variant: str, seed: int, out: str, root: str,
                   quick: bool) -> Dict[str, float]:
    work = osp.join(out, f'seed{seed}', variant)
    metrics_file = osp.join(work, 'metrics.json')
    if osp.isfile(metrics_file):
        log(f'{variant} seed {seed}: reusing {metrics_file}')
        with open(metrics_file) as f:
            return json.load(f)['row']
    os.makedirs(work, exist_ok=True)
    cfg = osp.join(REPO, CONFIG.format(variant))
    options = ['--data-root', root]
    # Evaluated once, by tools/test.py, instead of also at the end of training.
    train_options = ['--cfg-options', 'train_cfg.val_interval=1000000']
    train_options += QUICK_OPTIONS if quick else []
    train_log = osp.join(work, 'train.log')
    cmd = [sys.executable, 'tools/train.py', cfg, '--work-dir', work,
           '--seed', str(seed), *options, *train_options]
    if osp.isfile(osp.join(work, 'last_checkpoint')):
        cmd.append('--resume')
    t0 = time.time()
    log(f'{variant} seed {seed}: training (log: {train_log})')
    run(cmd, train_log)
    train_time = time.time() - t0
    with open(osp.join(work, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    raw_file = osp.join(work, 'test_metrics.json')
    log(f'{variant} seed {seed}: evaluating {osp.basename(ckpt)}')
    run([sys.executable, 'tools/test.py', cfg, ckpt, '--work-dir', work,
         '--out', raw_file, *options], osp.join(work, 'test.log'))
    with open(raw_file) as f:
        raw = json.load(f)['metrics']
    row = summarise(raw)
    row['train_time_s'] = train_time
    with open(metrics_file, 'w') as f:
        json.dump(dict(row=row, raw=raw), f, indent=2)
    shown = '  '.join(f'{k}={row[k]:.4f}' for k in ('mAP', 'NDS', 'mIoU')
                      if row[k] is not None)
    log(f'{variant} seed {seed}: {shown}  (trained in {train_time:.0f} s)')
    return row


def aggregate(rows: Dict[str, List[Dict[str, float]]]) -> Dict[str, Dict[str, dict]]:
    """Mean and spread (sample std; 0 for one seed) of every column."""
    table = {}
    for variant, runs in rows.items():
        cols = {}
        for key in runs[0]:
            values = [r[key] for r in runs if r.get(key) is not None]
            if not values:
                cols[key] = None
                continue
            cols[key] = dict(mean=statistics.fmean(values),
                             std=statistics.stdev(values) if len(values) > 1 else 0.0,
                             values=values)
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


def render_markdown(table: Dict[str, Dict[str, dict]], seeds: List[int]) -> str:
    # Map classes in the metric's order (the first variant that has them).
    iou_cols = list(dict.fromkeys(k for cols in table.values() for k in cols
                                  if k.startswith('IoU.')))
    head = ['variant', 'mAP', 'NDS', 'mIoU'] + [f'IoU {k[4:]}' for k in iou_cols] + [
        'train time (s)',
                                                          f'Δ vs {BASELINE} (mAP / NDS / mIoU)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    base = table.get(BASELINE, {})
    for variant, cols in table.items():
        deltas = []
        for key in ('mAP', 'NDS', 'mIoU'):
            if cols.get(key) and base.get(key) and variant != BASELINE:
                deltas.append(f'{(cols[key]["mean"] - base[key]["mean"]) * 100:+.1f}')
            else:
                deltas.append('–')
        cells = [variant] + [_fmt(cols.get(k)) for k in ('mAP', 'NDS', 'mIoU')]
        cells += [_fmt(cols.get(k)) for k in iou_cols]
        cells += [_fmt(cols.get('train_time_s'), scale=1.0, digits=0), ' / '.join(deltas)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    note = (f'Metrics in %, mean ± sample std over seeds {seeds}' if len(seeds) > 1
            else f'Metrics in %, seed {seeds[0]} (one seed: no spread; run `make demo SEEDS=3`)')
    return '\n'.join(lines) + f'\n\n{note}. Δ is the change of the mean against the naive multi-task run.\n'


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog='tools/run_demo.py', description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, default=1, help='number of seeds (0, 1, ...)')
    parser.add_argument('--quick', action='store_true', help='small world, 1 epoch: a smoke run')
    parser.add_argument('--out', default=None, help='output dir (default work_dirs/demo[-quick])')
    parser.add_argument('--data-root', default=None,
                        help=f'synthetic set to use or create (default {SYNTH_ROOT}, '
                        f'{QUICK_ROOT} with --quick)')
    parser.add_argument('--variants', nargs='+', default=VARIANTS, choices=VARIANTS)
    args = parser.parse_args(argv)
    out = osp.abspath(args.out or osp.join(REPO, 'work_dirs', 'demo-quick' if args.quick else 'demo'))
    root = osp.abspath(args.data_root or osp.join(REPO, QUICK_ROOT if args.quick else SYNTH_ROOT))
    t_start = time.time()
    prepare_data(root, args.quick)
    seeds = list(range(args.seeds))
    rows: Dict[str, List[Dict[str, float]]] = {v: [] for v in args.variants}
    total = len(seeds) * len(args.variants)
    done = 0
    for seed in seeds:
        for variant in args.variants:
            done += 1
            log(f'run {done}/{total}')
            rows[variant].append(train_and_test(variant, seed, out, root, args.quick))
    table = aggregate(rows)
    markdown = render_markdown(table, seeds)
    wall = time.time() - t_start
    with open(osp.join(out, 'results.md'), 'w') as f:
        f.write(f'# FULLER demo results\n\n{markdown}\nWall time of this demo run: {wall:.0f} s.\n')
    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(dict(seeds=seeds, quick=args.quick, wall_time_s=wall, table=table), f, indent=2)
    work_dirs = [osp.join(out, f'seed{seeds[0]}', v) for v in args.variants]
    run([sys.executable, 'tools/plot_gradients.py', *work_dirs, '--results',
         osp.join(out, 'results.json'), '--out', osp.join(out, 'plots')])
    print('\n' + markdown)
    log(f'done in {wall:.0f} s: {out}/results.md, results.json, plots/')


if __name__ == '__main__':
    main()
