"""Train a FULLER-3D model with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [auto|CKPT]] [--amp]
                          [--seed N] [--deterministic] [--launcher {none,pytorch,slurm}]
                          [--cfg-options KEY=VALUE ...]

Multi-GPU / multi-node: tools/dist_train.sh, tools/slurm_train.sh.
"""
import argparse
import os.path as osp
from typing import List, Optional

# The plugin is installed editable; importing it registers every module and
# makes checkpoints written by mmengine loadable on torch >= 2.6.
import fuller  # noqa: F401
from fuller.engine.preflight import fail, validate_train
from fuller.engine.runner_setup import (DictAction, UserInputError, apply_amp,
                                        build_runner, configure_launcher,
                                        default_work_dir, load_config,
                                        process_group_closed_at_end,
                                        set_data_root)
from fuller.engine.graceful_stop import add_graceful_stop


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/train.py', description='Train a FULLER-3D model.')
    parser.add_argument('config', help='config file, e.g. configs/fuller/fuller_cpu_fuller.py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=None, metavar='CKPT',
        help='resume training: without a value (or "auto") from the work '
        'dir\'s latest checkpoint, or from the given checkpoint file')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (CUDA fp16 / CPU bfloat16 autocast)')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic cuDNN / algorithms (slower)')
    parser.add_argument('--data-root', metavar='DIR',
                        help='use the data in DIR: replaces every data_root of the '
                        'config (datasets, map loading, evaluators)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        metavar='KEY=VALUE', help='override config entries, '
                        'e.g. train_cfg.max_epochs=3 optim_wrapper.calibration.inter=None')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'],
                        default='none', help='job launcher (dist_train.sh sets pytorch)')
    parser.add_argument('--validate-only', action='store_true',
                        help='check config, data and work dir, then exit '
                        '(dist_train.sh runs this once before torchrun)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace):
    """The final training config from the file and the command line."""
    cfg = load_config(args.config, args.cfg_options)
    if args.data_root:
        set_data_root(cfg, args.data_root)
    configure_launcher(cfg, args.launcher)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_work_dir(args.config)
    if args.amp:
        apply_amp(cfg)
    if args.resume is not None:
        cfg.resume = True
        if args.resume == 'auto':
            cfg.load_from = None
        else:
            if not osp.isfile(args.resume):
                raise UserInputError(f'--resume: checkpoint not found: {args.resume}')
            cfg.load_from = args.resume
    # SIGTERM / Ctrl-C: finish the iteration, save it, exit (143 / 130).
    add_graceful_stop(cfg)
    if args.seed is not None or args.deterministic:
        # Config.setdefault hands back a detached copy: assign explicitly.
        randomness = dict(cfg.get('randomness') or {})
        if args.seed is not None:
            randomness['seed'] = args.seed
        randomness['deterministic'] = args.deterministic
        cfg.randomness = randomness
    return cfg


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
        validate_train(cfg, args.resume, args.launcher,
                       check_env=not args.validate_only)
    except UserInputError as err:
        fail('tools/train.py', err)
    if args.validate_only:
        return

    with process_group_closed_at_end():
        runner = build_runner(cfg)
        runner.train()
        del runner  # freed before the process group closes


if __name__ == '__main__':
    main()
