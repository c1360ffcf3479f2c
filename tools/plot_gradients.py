"""Plot FULLER's logged gradient statistics and the losses of training runs.

    python tools/plot_gradients.py WORK_DIR [WORK_DIR ...] [--out DIR]
                                   [--results results.json] [--smooth 10]

Each WORK_DIR is one run of tools/train.py (its name labels the curves). The
scalars come from ``<work_dir>/<timestamp>/vis_data/scalars.json`` (every
timestamp folder, so resumed runs join up). Writes PNGs to ``--out``:
task_cosine.png, modality_ratio.png (before / after calibration),
calibration_weights.png, task_grad_norms.png (each task's gradient into the
shared backbone before / after calibration, one panel per run), losses.png
and, with ``--results`` (the demo's results.json), metrics.png.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
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


def _finish(ax, title: str, ylabel: str, xlabel: str = 'iteration',
            legend: bool = True) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if not ax.lines:
        ax.text(0.5, 0.5, 'not logged by these runs', ha='center', va='center',
                transform=ax.transAxes, color='gray')
    elif legend and handles:
        ax.legend(fontsize=7, ncol=2 if len(handles) > 6 else 1)


def _line(ax, steps: np.ndarray, values: np.ndarray, *args, **kwargs):
    """``ax.plot`` that stays visible for short series: a run logged once or
    twice (a smoke run) gets markers, not an invisible one-point line."""
    if len(steps) <= 15:
        kwargs.setdefault('marker', 'o')
        kwargs.setdefault('markersize', 4)
    return ax.plot(steps, values, *args, **kwargs)


def _reference(ax, y: float) -> None:
    """A thin reference line under the data (which may sit right on it)."""
    ax.axhline(y, color='0.55', lw=0.8, ls=':', zorder=0)


def _legend(fig, entries: List[Tuple[str, dict]], ncol: int) -> None:
    """One compact legend under the figure from (label, line style) pairs."""
    handles = [Line2D([], [], **style) for _, style in entries]
    fig.legend(handles, [label for label, _ in entries], loc='lower center',
               ncol=min(ncol, len(entries)), fontsize=8, frameon=False)


def _log_axis(ax, values: List[np.ndarray], span: float = 4.0) -> bool:
    """Log y axis when the plotted values span more than ``span``x."""
    vals = np.concatenate(values) if values else np.ones(1)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if len(vals) == 0 or vals.max() / vals.min() <= span:
        return False
    ax.set_yscale('log')
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter('%.3g'))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    return True


#: Colour and width of the tasks and of the whole gradient in the norm plot
#: (drawn in this order: a thin line stays visible on a wider one under it).
TASK_COLORS = {'shared': 'black', 'det': 'tab:blue', 'seg': 'tab:orange'}
TASK_WIDTHS = {'shared': 3.2, 'det': 2.0, 'seg': 1.2}


def plot_runs(runs: Dict[str, Series], out: str, window: int) -> List[str]:
    written = []
    palette = plt.rcParams['axes.prop_cycle'].by_key()['color']
    palette = palette + ['#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173']
    colors = {name: palette[i % len(palette)] for i, name in enumerate(runs)}
    markers = dict(zip(runs, 'osD^v<>phX*' * 3))

    def save(fig, name, bottom=0.0):
        path = osp.join(out, name)
        fig.tight_layout(rect=(0, bottom, 1, 1))
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    def run_legend(fig, names):
        _legend(fig, [(n, dict(color=colors[n], marker=markers[n], markersize=4))
                      for n in names], ncol=6)

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, s in runs.items():
        if 'fuller/task_cos' in s:
            steps, vals = s['fuller/task_cos']
            _line(ax, steps, smooth(vals, window), label=name, color=colors[name])
    _reference(ax, 0.0)
    _finish(ax, 'Cosine between the det and seg gradients on the shared BEV feature',
            'cosine (1 = aligned, < 0 = conflict)')
    save(fig, 'task_cosine.png')

    # Before and after calibration in two panels: 'after' lines of EqualNorm
    # runs sit exactly on 1 and would hide each other and the reference line.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), sharey=True)
    names, plotted = [], []
    for ax, (key, tag) in zip(axes, (('fuller/cam_lid_ratio_before', 'before'),
                                    ('fuller/cam_lid_ratio_after', 'after'))):
        for i, (name, s) in enumerate(runs.items()):
            if key not in s:
                continue
            steps, vals = s[key]
            plotted.append(smooth(vals, window))
            _line(ax, steps, plotted[-1], color=colors[name], marker=markers[name],
                  markersize=4, markevery=(i % 4, 4) if len(steps) > 15 else None,
                  lw=1.4, alpha=0.85)
            names.append(name)
        _reference(ax, 1.0)
    log_scale = _log_axis(axes[0], plotted)
    ylabel = ('||g_camera|| / ||g_lidar||' + (' (log scale)' if log_scale else '')
              + ', 1 = balanced')
    _finish(axes[0], 'Camera / LiDAR gradient-norm ratio at the fuser: before calibration',
            ylabel, legend=False)
    _finish(axes[1], 'after calibration (EqualNorm runs: exactly 1)', '', legend=False)
    run_legend(fig, list(dict.fromkeys(names)))
    save(fig, 'modality_ratio.png', bottom=0.1)

    fig, ax = plt.subplots(figsize=(7, 4.3))
    names, plotted = [], []
    for name, s in runs.items():
        for task, style in (('det', '-'), ('seg', '--')):
            key = f'fuller/weight/{task}'
            if key in s:
                steps, vals = s[key]
                plotted.append(smooth(vals, window))
                _line(ax, steps, plotted[-1], style, color=colors[name])
                names.append(name)
    _reference(ax, 1.0)
    wide = bool(plotted) and np.abs(np.concatenate(plotted)).max() > 5
    if wide:  # magnitude-keeping calibrators weigh up to ~20x: keep 0..1 readable
        ax.set_yscale('symlog', linthresh=1.0)
    _finish(ax, 'Task calibration weights a_t (g = sum_t a_t g_t)',
            'weight' + (' (linear to 1, log above)' if wide else ''), legend=False)
    names = list(dict.fromkeys(names))
    _legend(fig, [(n, dict(color=colors[n])) for n in names]
            + [('det', dict(color='0.3', ls='-')), ('seg', dict(color='0.3', ls='--'))],
            ncol=6)
    save(fig, 'calibration_weights.png', bottom=0.12)

    written.append(plot_task_norms(runs, out, window))

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name, s in runs.items():
        if 'loss' in s:
            _line(axes[0], *_smoothed(s['loss'], window), color=colors[name], label=name)
        per_task = task_loss_series(s)
        for ax, task in zip(axes[1:], ('det', 'seg')):
            if task in per_task:
                _line(ax, *_smoothed(per_task[task], window), color=colors[name], label=name)
    _finish(axes[0], 'Total training loss', 'loss')
    _finish(axes[1], 'Detection loss (sum of det.* terms)', 'loss')
    _finish(axes[2], 'Map segmentation loss (sum of seg.* terms)', 'loss')
    save(fig, 'losses.png')
    return written


def plot_task_norms(runs: Dict[str, Series], out: str, window: int) -> str:
    """task_grad_norms.png: per run, each task's gradient norm into the
    shared backbone before calibration (|g_t|, dashed) and after it
    (|a_t g_t|, solid), and the norm of the whole gradient into the backbone
    (the plain sum before, the calibrated one after; black). One panel per
    run, log scale, shared y axis, so a shrunk task shows as a gap."""
    names = [n for n, s in runs.items()
             if any(k.startswith('fuller/grad_norm_after/') and k.split('/')[-1]
                    in ('det', 'seg') for k in s)]
    cols = min(len(names), 4) or 1
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 0.6, 3.0 * rows + 0.7),
                             sharey=True, squeeze=False)
    plotted = []
    for ax, name in zip(axes.flat, names):
        s = runs[name]
        for what, color in TASK_COLORS.items():
            keys = ((f'fuller/grad_norm/{what}', f'fuller/grad_norm_after/{what}')
                    if what != 'shared' else
                    ('fuller/shared_norm_before', 'fuller/shared_norm_after'))
            for key, style in zip(keys, ('--', '-')):
                if key in s:
                    steps, vals = s[key]
                    plotted.append(smooth(vals, window))
                    _line(ax, steps, plotted[-1], style, color=color,
                          lw=TASK_WIDTHS[what], alpha=0.35 if what == 'shared' else 1.0)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis('off')
    if not names:
        axes.flat[0].axis('on')
        _finish(axes.flat[0], 'Task gradient norms', 'norm')
    else:
        _log_axis(axes.flat[0], plotted, span=1.0)
        for ax in axes[:, 0]:
            ax.set_ylabel('gradient norm on the shared feature')
    fig.suptitle("Each task's gradient into the shared BEV backbone, before (dashed) and "
                 'after (solid) calibration', fontsize=11)
    _legend(fig, [('det', dict(color=TASK_COLORS['det'])),
                  ('seg', dict(color=TASK_COLORS['seg'])),
                  ('whole gradient (sum / calibrated)',
                   dict(color='black', lw=TASK_WIDTHS['shared'], alpha=0.35)),
                  ('before calibration', dict(color='0.4', ls='--')),
                  ('after calibration', dict(color='0.4', ls='-'))], ncol=5)
    path = osp.join(out, 'task_grad_norms.png')
    fig.tight_layout(rect=(0, 0.07 if rows == 1 else 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _smoothed(series: Tuple[np.ndarray, np.ndarray], window: int):
    return series[0], smooth(series[1], window)


def plot_metrics(results_file: str, out: str) -> Optional[str]:
    """Bar chart of mAP, NDS, mIoU per variant (mean with std error bars)."""
    with open(results_file) as f:
        table = json.load(f)['table']
    metrics = ['mAP', 'NDS', 'mIoU']
    variants = list(table)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.0 * len(variants) + 2), 4.5))
    width = 0.8 / len(metrics)
    x = np.arange(len(variants))
    for i, metric in enumerate(metrics):
        means = [100 * (table[v].get(metric) or {}).get('mean', np.nan) for v in variants]
        stds = [100 * (table[v].get(metric) or {}).get('std', 0.0) for v in variants]
        ax.bar(x + (i - 1) * width, means, width, label=metric,
               yerr=stds if any(stds) else None, capsize=3)
    ax.set_xticks(x, variants, rotation=25 if len(variants) > 6 else 0,
                  ha='right' if len(variants) > 6 else 'center')
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
