"""Evaluate a FULLER-3D checkpoint: nuScenes mAP/NDS and BEV map mIoU.

    python tools/test.py CONFIG CKPT [--work-dir DIR] [--out metrics.json]
                         [--launcher {none,pytorch,slurm}] [--cfg-options ...]

The metrics are printed and saved as JSON (default:
``<work_dir>/metrics_<timestamp>.json``; earlier files are never overwritten).
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional

import fuller  # noqa: F401 (registers the plugin)
from fuller.engine.runner_setup import (DictAction, UserInputError,
                                        build_runner, check_data_paths,
                                        configure_launcher, default_work_dir,
                                        load_config, set_data_root)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/test.py', description='Evaluate a FULLER-3D checkpoint.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--work-dir', help='where logs and the metrics JSON go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--out', help='path of the metrics JSON file')
    parser.add_argument('--data-root', metavar='DIR',
                        help='use the data in DIR: replaces every data_root of the '
                        'config (datasets, map loading, evaluators)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        metavar='KEY=VALUE', help='override config entries')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'],
                        default='none', help='job launcher (dist_test.sh sets pytorch)')
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
        if not osp.isfile(args.checkpoint):
            raise UserInputError(f'checkpoint not found: {args.checkpoint}')
        configure_launcher(cfg, args.launcher)
        cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_work_dir(args.config)
        cfg.load_from = args.checkpoint
        cfg.resume = False
        check_data_paths(cfg, ['test_dataloader'])
    except UserInputError as err:
        sys.exit(f'tools/test.py: error: {err}')

    from mmengine.dist import is_main_process
    runner = build_runner(cfg)
    metrics = _jsonable(runner.test())
    if is_main_process():
        out = args.out or osp.join(cfg.work_dir, f'metrics_{runner.timestamp}.json')
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint,
                           metrics=metrics), f, indent=2)
        runner.logger.info(f'metrics saved to {out}')
    return metrics


if __name__ == '__main__':
    main()
