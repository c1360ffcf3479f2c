"""Converts an upstream BEVFusion checkpoint into one FullerBEVFusion loads.

    python tools/convert_upstream_checkpoint.py SRC DST [--from mmdet3d|mit] \
        [--config CONFIG] [--verbose]

SRC: a checkpoint of MMDetection3D's projects/BEVFusion (``--from mmdet3d``)
or of mit-han-lab/bevfusion (``--from mit``), LiDAR-only or camera+LiDAR;
without ``--from`` the layout is read from the key names. CONFIG: the config
whose model the weights are for (default: configs/recipe/
nus_stage1_lidar_det.py for a LiDAR-only SRC, configs/recipe/
nus_stage2_naive.py otherwise). Names are mapped onto ours, sparse-conv
kernels reordered from upstream's x, y, z grid to our z, y, x, every shape
checked against the model; the report says what was loaded, what was
skipped (and why) and what stays at its initialisation. DST is written as
``{'state_dict': ..., 'meta': ...}`` and is never overwritten. Use it as
``load_from=DST`` (fine-tuning, stage 2) or ``tools/test.py CONFIG DST``.
"""
import argparse
import os
import os.path as osp
import sys

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))
LIDAR_CONFIG = 'configs/recipe/nus_stage1_lidar_det.py'
FUSION_CONFIG = 'configs/recipe/nus_stage2_naive.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='upstream checkpoint (.pth)')
    parser.add_argument('dst', help='converted checkpoint to write (new file)')
    parser.add_argument('--from', dest='source', choices=['mmdet3d', 'mit'],
                        default=None, help='upstream layout (default: read '
                        'from the key names)')
    parser.add_argument('--config', default=None,
                        help='our config the weights are for')
    parser.add_argument('--verbose', action='store_true',
                        help='list every key left at init or skipped')
    return parser.parse_args(argv)


def _fail(msg: str) -> None:
    print(f'convert_upstream_checkpoint: error: {msg}', file=sys.stderr)
    sys.exit(2)


def _load(path: str) -> dict:
    import torch
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception:  # noqa: BLE001  upstream checkpoints pickle meta data
        try:
            ckpt = torch.load(path, map_location='cpu', weights_only=False)
        except Exception as exc:  # noqa: BLE001
            _fail(f'cannot read {path} as a torch checkpoint ({exc})')
    state = ckpt.get('state_dict', ckpt.get('model', ckpt)) \
        if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        _fail(f'{path} holds no state dict (expected a checkpoint with '
              f'"state_dict" or a plain state dict)')
    return state


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        _fail(f'checkpoint not found: {args.src}')
    if osp.exists(args.dst):
        _fail(f'{args.dst} exists; choose a new output path (it is never '
              f'overwritten)')
    from fuller.models.upstream_checkpoint import (convert_state_dict,
                                                   format_report,
                                                   guess_source)
    state = _load(args.src)
    source = args.source or guess_source(state)
    camera = any(k.startswith(('img_backbone.', 'encoders.camera.'))
                 for k in state)
    config = args.config or osp.join(
        REPO, FUSION_CONFIG if camera else LIDAR_CONFIG)
    if not osp.isfile(config):
        _fail(f'config file not found: {config}')

    import torch
    from mmengine.config import Config

    import fuller  # noqa: F401  (registers the plugin)
    from fuller.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)
    converted, report = convert_state_dict(
        state, model, source, getattr(state, '_metadata', None))
    shown = osp.relpath(config, REPO) if config.startswith(REPO) else config
    print(f'[convert] {args.src} ({source} layout) -> {args.dst}, model of '
          f'{shown}')
    print(format_report(report, args.verbose))
    if not converted:
        _fail('nothing matched our model: check --from and --config')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=converted,
                    meta=dict(converted_from=osp.abspath(args.src),
                              source=source, config=config,
                              left_at_init=report['left_at_init'])),
               args.dst)
    print(f'[convert] wrote {args.dst}')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
