"""Plot FULLER's logged gradient statistics and the losses of training runs.

    python tools/plot_gradients.py WORK_DIR [WORK_DIR ...] [--out DIR]
                                   [--results results.json] [--smooth 10]

Each WORK_DIR is one run of tools/train.py (its name labels the curves). The
scalars come from ``<work_dir>/<timestamp>/vis_data/scalars.json`` (every
timestamp folder, so resumed runs join up). Writes PNGs to ``--out``:
task_cosine.png, modality_ratio.png, calibration_weights.png, losses.png and,
with ``--results`` (the demo's results.json), metrics.png.
"""
import argparse
import glob
import json
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402

Series = Dict[str, Tuple[np.ndarray, np.ndarray]]


def load_scalars(work_dir: str) -> Series:
    """Every scalar logged by a run: ``{name: (steps, values)}``."""
    points: Dict[str, Dict[int, float]] = defaultdict(dict)
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    for path in files:
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by an interrupted run
                step = record.pop('step', None)
                if step is None:
                    continue
                for key, value in record.items():
                    if isinstance(value, (int, float)):
                        points[key][int(step)] = float(value)
    return {k: (np.array(sorted(v)), np.array([v[s] for s in sorted(v)]))
            for k, v in points.items()}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (same length; shorter windows at the start)."""
    if window <= 1 or len(values) < 2:
        return values
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def task_loss_series(series: Series) -> Series:
    """Per-task loss totals (``det.*loss*`` keys summed, same for ``seg``)."""
    out = {}
    for task in ('det', 'seg'):
        keys = [k for k in series if k.startswith(task + '.') and 'loss' in k]
        if not keys:
            continue
        steps = series[keys[0]][0]
        total = np.zeros(len(steps))
        for k in keys:
            total += np.interp(steps, *series[k])
        out[task] = (steps, total)
    return out


def _finish(ax, title: str, ylabel: str, xlabel: str = 'iteration') -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, ncol=2 if len(handles) > 6 else 1)
    else:
        ax.text(0.5, 0.5, 'not logged by these runs', ha='center', va='center',
                transform=ax.transAxes, color='gray')


def plot_runs(runs: Dict[str, Series], out: str, window: int) -> List[str]:
    written = []
    colors = dict(zip(runs, plt.rcParams['axes.prop_cycle'].by_key()['color'] * 3))

    def save(fig, name):
        path = osp.join(out, name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, s in runs.items():
        if 'fuller/task_cos' in s:
            steps, vals = s['fuller/task_cos']
            ax.plot(steps, smooth(vals, window), label=name, color=colors[name])
    ax.axhline(0.0, color='black', lw=0.8)
    _finish(ax, 'Cosine between the det and seg gradients on the shared BEV feature',
            'cosine (1 = aligned, < 0 = conflict)')
    save(fig, 'task_cosine.png')

    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = []
    for name, s in runs.items():
        for key, style, tag in (('fuller/cam_lid_ratio_before', '--', 'before'),
                                ('fuller/cam_lid_ratio_after', '-', 'after')):
            if key in s:
                steps, vals = s[key]
                plotted.append(smooth(vals, window))
                ax.plot(steps, plotted[-1], style, color=colors[name],
                        label=f'{name} ({tag} calibration)')
    ax.axhline(1.0, color='black', lw=0.8)
    values = np.concatenate(plotted) if plotted else np.ones(1)
    log_scale = values.max() / max(values.min(), 1e-12) > 4
    if log_scale:  # ratios spanning decades; plain numbers on the ticks
        ax.set_yscale('log')
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter('%.3g'))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    _finish(ax, 'Camera / LiDAR gradient-norm ratio at the fuser',
            '||g_camera|| / ||g_lidar||' + (' (log scale)' if log_scale else '')
            + ', 1 = balanced')
    save(fig, 'modality_ratio.png')

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, s in runs.items():
        for task, style in (('det', '-'), ('seg', '--')):
            key = f'fuller/weight/{task}'
            if key in s:
                steps, vals = s[key]
                ax.plot(steps, smooth(vals, window), style, color=colors[name],
                        label=f'{name}: {task}')
    _finish(ax, 'Task calibration weights a_t (g = sum_t a_t g_t)', 'weight')
    save(fig, 'calibration_weights.png')

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name, s in runs.items():
        if 'loss' in s:
            axes[0].plot(*_smoothed(s['loss'], window), color=colors[name], label=name)
        for ax, task in zip(axes[1:], ('det', 'seg')):
            per_task = task_loss_series(s)
            if task in per_task:
                ax.plot(*_smoothed(per_task[task], window), color=colors[name], label=name)
    _finish(axes[0], 'Total training loss', 'loss')
    _finish(axes[1], 'Detection loss (sum of det.* terms)', 'loss')
    _finish(axes[2], 'Map segmentation loss (sum of seg.* terms)', 'loss')
    save(fig, 'losses.png')
    return written


def _smoothed(series: Tuple[np.ndarray, np.ndarray], window: int):
    return series[0], smooth(series[1], window)


def plot_metrics(results_file: str, out: str) -> Optional[str]:
    """Bar chart of mAP, NDS, mIoU per variant (mean with std error bars)."""
    with open(results_file) as f:
        table = json.load(f)['table']
    metrics = ['mAP', 'NDS', 'mIoU']
    variants = list(table)
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(metrics)
    x = np.arange(len(variants))
    for i, metric in enumerate(metrics):
        means = [100 * (table[v].get(metric) or {}).get('mean', np.nan) for v in variants]
        stds = [100 * (table[v].get(metric) or {}).get('std', 0.0) for v in variants]
        ax.bar(x + (i - 1) * width, means, width, label=metric,
               yerr=stds if any(stds) else None, capsize=3)
    ax.set_xticks(x, variants)
    ax.set_ylabel('%')
    ax.set_title('Final metrics per variant (mean ± std over seeds; no bar = task off)')
    ax.legend()
    ax.grid(axis='y', alpha=0.3)
    path = osp.join(out, 'metrics.png')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Optional[List[str]] = None) -> List[str]:
    parser = argparse.ArgumentParser(prog='tools/plot_gradients.py',
                                     description='Plot FULLER gradient statistics.')
    parser.add_argument('work_dirs', nargs='+', help='work dirs of tools/train.py runs')
    parser.add_argument('--out', default='work_dirs/plots', help='output folder for PNGs')
    parser.add_argument('--results', help="the demo's results.json for the metrics chart")
    parser.add_argument('--smooth', type=int, default=10, help='moving-average window (iterations)')
    args = parser.parse_args(argv)
    runs = {}
    for work_dir in args.work_dirs:
        if not osp.isdir(work_dir):
            parser.error(f'work dir not found: {work_dir}')
        series = load_scalars(work_dir)
        if not series:
            parser.error(f'no vis_data/scalars.json under {work_dir}: was it trained '
                         'with a LocalVisBackend (configs/_base_/default_runtime.py)?')
        runs[osp.basename(osp.normpath(work_dir))] = series
    os.makedirs(args.out, exist_ok=True)
    written = plot_runs(runs, args.out, args.smooth)
    if args.results:
        written.append(plot_metrics(args.results, args.out))
    for path in written:
        print(path)
    return written


if __name__ == '__main__':
    main()
