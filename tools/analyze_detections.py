"""Where a detector loses its mAP: nuScenes detection results broken down
by class, by distance from the ego vehicle and by LiDAR points per object.

    python tools/analyze_detections.py RESULTS_JSON --data-root DIR
        [--split val|train] [--score-thr 0.2] [--match-dist 2.0]

RESULTS_JSON is a nuScenes detection submission (``results_nusc.json``).
``tools/test.py`` keeps it where the detection metric is told to, e.g. for
a config whose first evaluator is the detection one::

    python tools/test.py CONFIG CKPT \\
        --cfg-options test_evaluator.0.jsonfile_prefix=work_dirs/preds
    # -> work_dirs/preds/pred_instances_3d/results_nusc.json

To see how far a model fits its own training data, evaluate the train
split: ``test_dataloader.dataset.ann_file=nuscenes_infos_train.pkl
test_evaluator.0.ann_file=DIR/nuscenes_infos_train.pkl``, then this tool
with ``--split train``.

The numbers come from nuscenes-devkit's ``DetectionEval`` (the same
ground truth filtering as the official metric): mAP, NDS and each class's
AP at the four distance thresholds. Then, for every ground-truth box, it
counts as *found* when a prediction of its class with a score of at least
``--score-thr`` has its centre within ``--match-dist`` metres; the share
found is printed by ego distance, by LiDAR points and per class (near the
ego vs. further out), and the boxes that are not found are split by what
lies at their place instead (another class, or nothing).
"""
import argparse
import io
import os.path as osp
import sys
import tempfile
from collections import Counter, defaultdict
from contextlib import redirect_stdout
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: (lower, upper) edges of the breakdowns; the last bin is open
DISTANCE_BINS = (0, 10, 20, 30, 40)
POINT_BINS = (0, 5, 20, 50, 200)
#: "near" in the per-class table: within this many metres of the ego
NEAR_M = 12.0
MISSED = 'nothing'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/analyze_detections.py',
        description='Break nuScenes detection results down by class, '
        'distance and LiDAR points.')
    parser.add_argument('results', help='results_nusc.json of tools/test.py')
    parser.add_argument('--data-root', required=True, metavar='DIR',
                        help='the nuScenes data root the results are on')
    parser.add_argument('--split', choices=['val', 'train'], default='val',
                        help='the split the results cover (default: val)')
    parser.add_argument('--score-thr', type=float, default=0.2,
                        help='least score of a prediction that finds a box')
    parser.add_argument('--match-dist', type=float, default=2.0,
                        help='most centre distance (m) of a finding prediction')
    return parser.parse_args(argv)


def table_version(data_root: str) -> str:
    """The nuScenes version with ground truth whose tables lie in
    ``data_root`` (v1.0-trainval before v1.0-mini)."""
    from fuller.engine.preflight import table_versions
    found = [v for v in table_versions(data_root)
             if v in ('v1.0-trainval', 'v1.0-mini')]
    if not found:
        raise ValueError(f'{data_root} has no v1.0-trainval/ or v1.0-mini/ '
                         'table folder; pass the data root of the results '
                         'with --data-root')
    return found[-1]  # sorted: 'v1.0-mini' < 'v1.0-trainval'


def eval_set(version: str, split: str) -> str:
    """The devkit's split name: 'val' / 'train', 'mini_val' / 'mini_train'."""
    return f'mini_{split}' if version == 'v1.0-mini' else split


def _bin_label(edges: Sequence[float], k: int) -> str:
    return (f'[{edges[k]:g}, {edges[k + 1]:g})' if k + 1 < len(edges) else
            f'>= {edges[k]:g}')


def _bin(value: float, edges: Sequence[float]) -> int:
    return int(np.searchsorted(edges, value, side='right')) - 1


def match_boxes(gt_boxes, pred_boxes, score_thr: float,
                match_dist: float) -> List[Tuple[str, float, int, str]]:
    """One row per ground-truth box: (class, ego distance, LiDAR points,
    what is there), where *what is there* is the box's own class when a
    prediction of that class with ``score >= score_thr`` lies within
    ``match_dist`` m of its centre, else the class of the best-scoring such
    prediction of another class, else ``MISSED``.

    Args:
        gt_boxes, pred_boxes: the devkit's ``EvalBoxes`` of ground truth and
            predictions (``DetectionEval.gt_boxes`` / ``.pred_boxes``).
    """
    rows = []
    for token in gt_boxes.sample_tokens:
        preds = [p for p in pred_boxes[token] if p.detection_score >= score_thr]
        centres = np.array([p.translation[:2] for p in preds]).reshape(-1, 2)
        for gt in gt_boxes[token]:
            near = np.hypot(*(centres - np.array(gt.translation[:2])).T) \
                <= match_dist
            there = [preds[i] for i in np.flatnonzero(near)]
            if any(p.detection_name == gt.detection_name for p in there):
                what = gt.detection_name
            elif there:
                what = max(there, key=lambda p: p.detection_score).detection_name
            else:
                what = MISSED
            rows.append((gt.detection_name, float(gt.ego_dist),
                         int(gt.num_pts), what))
    return rows


def found_share(rows, key, edges) -> Dict[str, Tuple[int, int]]:
    """(found, total) per bin of ``key(row)``."""
    out: Dict[str, List[int]] = {}
    for row in rows:
        label = _bin_label(edges, _bin(key(row), edges))
        cell = out.setdefault(label, [0, 0])
        cell[0] += row[0] == row[3]
        cell[1] += 1
    order = [_bin_label(edges, k) for k in range(len(edges))]
    return {k: tuple(out[k]) for k in order if k in out}


def report(metrics, class_names: Sequence[str], dist_ths: Sequence[float],
           rows, args: argparse.Namespace) -> str:
    lines = [f'{args.split}: mAP {metrics.mean_ap:.3f}  NDS '
             f'{metrics.nd_score:.3f}  ({len(rows)} ground-truth boxes)',
             '', 'AP at ' + ' / '.join(f'{d:g}' for d in dist_ths) + ' m:']
    for name in class_names:
        aps = ' '.join(f'{metrics.get_label_ap(name, d):.2f}'
                       for d in dist_ths)
        lines.append(f'  {name:22s} {aps}')

    def share(title, table):
        lines.extend(['', title])
        for label, (hit, total) in table.items():
            lines.append(f'  {label:12s} {hit:5d} / {total:5d} = '
                         f'{hit / total:.2f}')

    found = (f'found (a {args.score_thr:g}+ prediction of its class within '
             f'{args.match_dist:g} m)')
    share(f'{found}, by distance from the ego (m):',
          found_share(rows, lambda r: r[1], DISTANCE_BINS))
    share(f'{found}, by LiDAR points in the box:',
          found_share(rows, lambda r: r[2], POINT_BINS))
    lines.extend(['', f'found per class, within {NEAR_M:g} m / beyond; '
                  'what lies at the boxes not found:'])
    near_far = (0, NEAR_M)
    by_class = defaultdict(list)
    instead: Dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        name, _, _, what = row
        by_class[name].append(row)
        if what != name:
            instead[name][what] += 1
    for name in class_names:
        table = found_share(by_class[name], lambda r: r[1], near_far)
        (hn, tn), (hf, tf) = (table.get(_bin_label(near_far, k), (0, 0))
                              for k in range(2))
        misses = ', '.join(f'{k} {v}' for k, v in instead[name].most_common(3))
        lines.append(f'  {name:22s} {hn:4d}/{tn:<4d} {hf:4d}/{tf:<4d}  '
                     f'{misses}')
    return '\n'.join(lines)


def analyze(args: argparse.Namespace) -> str:
    if not osp.isfile(args.results):
        raise ValueError(f'no results file {args.results}; tools/test.py '
                         'writes one with --cfg-options '
                         'test_evaluator.0.jsonfile_prefix=DIR')
    version = table_version(args.data_root)
    from nuscenes import NuScenes
    from nuscenes.eval.detection.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval
    cfg = config_factory('detection_cvpr_2019')
    # the devkit's progress chatter, and its plot folder in a temporary one
    with redirect_stdout(io.StringIO()), tempfile.TemporaryDirectory() as tmp:
        nusc = NuScenes(version, args.data_root, verbose=False)
        try:
            ev = DetectionEval(nusc, cfg, args.results,
                               eval_set(version, args.split),
                               output_dir=tmp,
                               verbose=False)
        except AssertionError as err:  # the devkit's check of the tokens
            raise ValueError(f'{args.results} does not cover the '
                             f'{args.split} split of {args.data_root} ({err});'
                             ' give the --split the results were made on')
        metrics, _ = ev.evaluate()
    rows = match_boxes(ev.gt_boxes, ev.pred_boxes, args.score_thr,
                       args.match_dist)
    return report(metrics, cfg.class_names, cfg.dist_ths, rows, args)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        print(analyze(args))
    except ValueError as err:
        sys.exit(f'tools/analyze_detections.py: error: {err}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
