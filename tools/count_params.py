"""Print the parameter counts of a model config, per part and per head.

    python tools/count_params.py CONFIG [CONFIG ...] [--step-time]

With several configs (e.g. a standard and a light one) the head counts are
compared with the first. ``--step-time`` also times one CPU training step
(forward, backward, AdamW step; FULLER calibration) on a synthetic batch of
2 samples sized for the config (CPU setting configs only).
"""
import argparse
import time

import torch
from mmengine.config import Config

PARTS = ('img_backbone', 'img_neck', 'view_transform', 'pts_voxel_encoder',
         'pts_middle_encoder', 'fusion_layer', 'pts_backbone', 'pts_neck',
         'bbox_head', 'seg_head')


def count(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module else 0


def step_time(model, cfg, repeats: int = 5) -> float:
    from mmengine.optim import build_optim_wrapper

    from fuller.models.synthetic import synthetic_batch
    vt = cfg.model.view_transform
    seg = cfg.model.get('seg_head') or {}
    map_size = model.seg_head.output_shape if model.seg_head else (100, 100)
    data = synthetic_batch(
        batch_size=2, image_size=vt.image_size, map_size=map_size,
        num_map_classes=len(seg.get('classes', [0] * 6)),
        point_cloud_range=cfg.model.data_preprocessor.voxel_layer
        .point_cloud_range)
    wrapper = build_optim_wrapper(model, dict(
        type='FullerOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
        clip_grad=dict(max_norm=35),
        calibration=dict(inter=dict(type='IMTLG'),
                         intra=dict(type='EqualNorm'))))
    model.train()
    model.train_step(data, wrapper)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.train_step(data, wrapper)
        times.append(time.perf_counter() - t0)
    return min(times)  # the machine may be shared: the least disturbed run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--step-time', action='store_true')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads for --step-time (0: default)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import fuller  # noqa: F401
    from mmdet3d.utils import register_all_modules

    from fuller.registry import MODELS
    register_all_modules(init_default_scope=True)
    first = None
    for path in args.configs:
        cfg = Config.fromfile(path)
        model = MODELS.build(cfg.model)
        counts = {p: count(getattr(model, p, None)) for p in PARTS}
        print(f'== {path}: {count(model):,} parameters')
        for p, c in counts.items():
            if c:
                print(f'  {p:20s} {c:>12,}')
        if first is None:
            first = counts
        else:
            for head in ('bbox_head', 'seg_head'):
                if first[head] and counts[head]:
                    saved = 1 - counts[head] / first[head]
                    print(f'  {head}: {saved:.1%} fewer parameters than in '
                          f'{args.configs[0]}')
        if args.step_time:
            print(f'  CPU train step (batch 2, FULLER): '
                  f'{step_time(model, cfg):.2f} s '
                  f'({torch.get_num_threads()} threads)')


if __name__ == '__main__':
    main()
