"""Evaluate a FULLER-3D checkpoint: nuScenes mAP/NDS and BEV map mIoU.

    python tools/test.py CONFIG CKPT [--work-dir DIR] [--out PRED.pkl]
                         [--metrics-out metrics.json]
                         [--drop-modality {camera,lidar}]
                         [--allow-partial] [--validate-only]
                         [--launcher {none,pytorch,slurm}] [--cfg-options ...]

The metrics are printed and saved as JSON (default:
``<work_dir>/metrics_<timestamp>.json``; earlier files are never overwritten).
``--out`` dumps the predictions as mmdet's test.py does (mmengine's
DumpResults). ``--drop-modality`` evaluates a camera + LiDAR model with one
sensor absent: that branch does not run and the fuser gets zeros instead.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional

import fuller  # noqa: F401 (registers the plugin)
from fuller.engine.preflight import fail, validate_test
from fuller.engine.runner_setup import (DictAction, UserInputError,
                                        add_prediction_dump, build_runner,
                                        configure_launcher, default_work_dir,
                                        drop_modality, load_config,
                                        process_group_closed_at_end,
                                        set_data_root)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/test.py', description='Evaluate a FULLER-3D checkpoint.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--work-dir', help='where logs and the metrics JSON go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--out', metavar='PRED.pkl',
                        help='dump the predictions of every sample to this '
                        'pickle file (.pkl / .pickle)')
    parser.add_argument('--metrics-out', metavar='FILE.json',
                        help='path of the metrics JSON file (default: '
                        '<work_dir>/metrics_<timestamp>.json)')
    parser.add_argument('--drop-modality', choices=['camera', 'lidar'],
                        help='evaluate with this sensor absent: its branch '
                        'does not run and the fuser receives zeros in its '
                        'place (both tasks are evaluated)')
    parser.add_argument('--data-root', metavar='DIR',
                        help='use the data in DIR: replaces every data_root of the '
                        'config (datasets, map loading, evaluators)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        metavar='KEY=VALUE', help='override config entries')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'],
                        default='none', help='job launcher (dist_test.sh sets pytorch)')
    parser.add_argument('--allow-partial', action='store_true',
                        help='load the checkpoint weights that fit the model '
                        'and leave the others at init (default: refuse a '
                        'checkpoint that does not fit the config)')
    parser.add_argument('--validate-only', action='store_true',
                        help='check config, checkpoint and data, then exit '
                        '(dist_test.sh runs this once before torchrun)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _jsonable(value):
    """Metric values as plain JSON types (numpy / torch scalars -> float)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, 'item'):
        return value.item()
    return value


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options)
        if args.data_root:
            set_data_root(cfg, args.data_root)
        configure_launcher(cfg, args.launcher)
        cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_work_dir(args.config)
        cfg.load_from = args.checkpoint
        cfg.resume = False
        for flag, path in (('--out', args.out),
                           ('--metrics-out', args.metrics_out)):
            if path and osp.exists(path):
                raise UserInputError(f'{flag} {path} already exists: choose '
                                     'another file name (results are never '
                                     'overwritten)')
        if args.out:
            add_prediction_dump(cfg, args.out)
        if args.drop_modality:
            drop_modality(cfg, args.drop_modality)
        partial_note = validate_test(cfg, args.checkpoint, args.launcher,
                                     allow_partial=args.allow_partial,
                                     check_env=not args.validate_only)
    except UserInputError as err:
        fail('tools/test.py', err)
    if partial_note:
        print(f'tools/test.py: warning: {partial_note}', file=sys.stderr)
    if args.validate_only:
        return {}

    from mmengine.dist import is_main_process
    with process_group_closed_at_end():
        runner = build_runner(cfg, mode='test')
        if partial_note:
            runner.logger.warning(partial_note)
        metrics = _jsonable(runner.test())
        main_process = is_main_process()
        timestamp, logger = runner.timestamp, runner.logger
        del runner  # freed before the process group closes
    if main_process:
        out = args.metrics_out or osp.join(cfg.work_dir,
                                           f'metrics_{timestamp}.json')
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'x') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint,
                           partial_load=partial_note,
                           drop_modality=args.drop_modality,
                           predictions=args.out, metrics=metrics), f,
                      indent=2)
        logger.info(f'metrics saved to {out}')
    return metrics


if __name__ == '__main__':
    main()
