"""How much a trained camera + LiDAR model relies on each sensor.

    python tools/modality_report.py CONFIG CKPT [--work-dir DIR] [--data-root DIR]
                                    [--probe] [--seed N] [--probe-options KEY=VALUE ...]

Evaluates the model with both sensors, with the LiDAR dropped and with the
camera dropped (tools/test.py --drop-modality: the branch does not run, the
fuser gets zeros), and with ``--probe`` trains the unimodal probes (the
model's frozen camera or LiDAR branch under a fresh decoder and heads,
configs/fuller/fuller_cpu_probe_<sensor>.py). Writes ``reliance.md`` and
``reliance.json`` to the work dir; every step's results stay there, so the
same command resumes. Ctrl-C stops it; the same command goes on.
"""
import argparse
import json
import os
import os.path as osp
import signal
import sys
from typing import List, Optional

from fuller.experiments.processes import (STOP, Interrupted, RunFailed,
                                          on_stop_signal, run_tool)
from fuller.experiments.reliance import (fused_config, probe_rows,
                                         reliance_table, sensor_drop_rows,
                                         summarise)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='tools/modality_report.py',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config of the trained camera + LiDAR model')
    parser.add_argument('checkpoint', help='its checkpoint (.pth)')
    parser.add_argument('--work-dir', help='where the evaluations, probes and the report go '
                        '(default: work_dirs/reliance_<config name>)')
    parser.add_argument('--data-root', metavar='DIR', help='use the data in DIR')
    parser.add_argument('--probe', action='store_true',
                        help='also train and evaluate the unimodal probes')
    parser.add_argument('--seed', type=int, default=0, help="the probes' seed")
    parser.add_argument('--probe-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help="--cfg-options of the probes' training (their schedule)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    for path, what in ((args.config, 'config file'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            sys.exit(f'tools/modality_report.py: error: {what} not found: {path}')
    config, ckpt = osp.abspath(args.config), osp.abspath(args.checkpoint)
    if not fused_config(config):
        sys.exit(f'tools/modality_report.py: error: {args.config} has no camera + LiDAR '
                 'model (img_backbone and pts_voxel_encoder): a single-sensor model has '
                 'no second sensor to fall back on')
    name = osp.splitext(osp.basename(args.config))[0]
    work = osp.abspath(args.work_dir or osp.join('work_dirs', f'reliance_{name}'))
    os.makedirs(work, exist_ok=True)
    options = ['--data-root', osp.abspath(args.data_root)] if args.data_root else []

    def run(cmd, log_file=None, env=None):
        run_tool(cmd, REPO, log_file, env)

    handlers = {s: signal.signal(s, on_stop_signal)
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        both = osp.join(work, 'test_metrics.json')
        if not osp.isfile(both):
            run([sys.executable, 'tools/test.py', config, ckpt, '--work-dir', work,
                 '--metrics-out', both, *options], osp.join(work, 'test.log'))
        with open(both) as f:
            row = summarise(json.load(f)['metrics'])
        row.update(sensor_drop_rows(config, ckpt, work, options, run))
        if args.probe:
            row.update(probe_rows(ckpt, work, args.seed, options, args.probe_options, run))
    except (RunFailed, Interrupted) as err:
        if STOP.is_set():
            sys.exit('\n[report] interrupted: run the same command again to resume')
        sys.exit(str(err))
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    table = reliance_table({name: row})
    with open(osp.join(work, 'reliance.md'), 'w') as f:
        f.write(f'# Modality reliance of {args.checkpoint}\n\n{table}')
    with open(osp.join(work, 'reliance.json'), 'w') as f:
        json.dump(dict(config=args.config, checkpoint=args.checkpoint, row=row), f, indent=2)
    print(table)
    print(f'[report] {work}/reliance.md, reliance.json')


if __name__ == '__main__':
    main()
