"""Benchmark ``bev_pool`` at the nuScenes fusion config's sizes.

6 cameras, 118 depth bins (1-60 m at 0.5 m), 32x88 feature map, 80 channels,
360x360 BEV grid (0.3 m over [-54, 54] m). Frustum points come from the real
LSS geometry of a 6-camera ring at 256x704, so the voxel occupancy pattern
(many rays into few near cells, sparse far cells) is the one the network
sees. Reports points/s of the torch implementation (forward, and forward +
backward) and of the naive per-point reference (timed on a subset: it is
~1e5x slower), as a markdown table.

``--lift`` instead compares the LSS lift followed by ``bev_pool`` (the
lifted (80, B*6, 118, 32, 88) tensor materialised) with ``lift_pool`` (the
two fused, a few depth bins at a time): forward + backward time and memory
peak of each, each in a fresh process.

    python tools/benchmark_bev_pool.py [--device cuda] [--repeats 5]
    python tools/benchmark_bev_pool.py --lift [--device cuda] [--batch-size 4]
"""
import argparse
import json
import sys
import time

import torch

from fuller.engine.benchmark import (measure_step, run_in_processes,
                                     side_by_side)
from fuller.models import LSSTransform
from fuller.models.ops import bev_pool, bev_pool_reference, lift_pool
from fuller.models.synthetic import ring_cameras

LIFT_MODES = ('lift_then_pool', 'lift_pool')


def frustum_coords(batch_size: int, device: str):
    lss = LSSTransform(
        in_channels=1, out_channels=80, image_size=(256, 704),
        feature_size=(32, 88), xbound=[-54.0, 54.0, 0.3],
        ybound=[-54.0, 54.0, 0.3], zbound=[-10.0, 10.0, 20.0],
        dbound=[1.0, 60.0, 0.5])
    cams = ring_cameras((256, 704))
    lidar2img = torch.as_tensor(cams['lidar2img'])
    lidar2img = lidar2img.expand(batch_size, -1, -1, -1)
    img_aug = torch.eye(4).expand(*lidar2img.shape)
    geom = lss.get_geometry(lidar2img, img_aug,
                            torch.eye(4).expand(batch_size, 4, 4))
    coords, keep = lss.voxel_indices(geom)
    return coords.to(device), lss.grid_shape, int(keep.sum())


def timed(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def measure_lift(args: argparse.Namespace) -> dict:
    """One --lift mode's forward+backward time and memory peak."""
    coords, grid, _ = frustum_coords(args.batch_size, args.device)
    m = 6 * args.batch_size
    g = torch.Generator(device=args.device).manual_seed(0)
    ctx = torch.randn(80, m, 32, 88, device=args.device, generator=g,
                      requires_grad=True)
    logits = torch.randn(m, 118, 32, 88, device=args.device, generator=g)
    depth = logits.softmax(dim=1).requires_grad_(True)
    b = args.batch_size

    def step():
        if args.mode == 'lift_pool':
            out = lift_pool(ctx, depth, coords, b, grid)
        else:
            lifted = ctx.unsqueeze(2) * depth.unsqueeze(0)
            out = bev_pool(lifted.view(80, -1).t(), coords, b, grid)
        out.sum().backward()
        ctx.grad = depth.grad = None

    return measure_step(step, args.repeats, args.device)


def compare_lift(args: argparse.Namespace, argv) -> None:
    res = run_in_processes(__file__, list(argv), LIFT_MODES)
    print(f'LSS lift + BEV pooling, forward+backward, device {args.device}, '
          f'batch {args.batch_size} (6 cameras x 118 bins x 32x88, 80 '
          f'channels), median of {args.repeats}')
    print('\n'.join(side_by_side(res, LIFT_MODES)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--naive-points', type=int, default=5000,
                        help='points timed for the naive reference')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0: leave the default)')
    parser.add_argument('--lift', action='store_true',
                        help='compare lift-then-bev_pool with lift_pool')
    parser.add_argument('--mode', choices=LIFT_MODES, default=None,
                        help=argparse.SUPPRESS)  # one --lift mode, a child
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mode:
        print(json.dumps(measure_lift(args)))
        return
    if args.lift:
        try:
            compare_lift(args, sys.argv[1:])
        except RuntimeError as err:
            sys.exit(f'benchmark_bev_pool: {err}')
        return
    coords, grid, inside = frustum_coords(args.batch_size, args.device)
    # channel-first memory, as LSSTransform lifts its features
    feats = torch.randn(80, len(coords), device=args.device).t()
    b = args.batch_size
    fwd = timed(lambda: bev_pool(feats, coords, b, grid), args.repeats,
                args.device)
    leaf = feats.detach().requires_grad_(True)
    bwd = timed(lambda: bev_pool(leaf, coords, b, grid).sum().backward(),
                args.repeats, args.device)
    k = min(args.naive_points, len(coords))
    naive = timed(lambda: bev_pool_reference(feats[:k], coords[:k], b, grid),
                  1, args.device) / k * len(coords)
    n = len(coords)
    print(f'device: {args.device} ({torch.get_num_threads()} threads), '
          f'batch {b}, {n:,} frustum points ({inside:,} inside the grid), '
          f'80 channels, grid {grid[1]}x{grid[2]}')
    print('| implementation | time / call | points/s | speed-up |')
    print('|---|---|---|---|')
    for name, t in (('naive loop (extrapolated from '
                     f'{k:,} points)', naive), ('bev_pool forward', fwd),
                    ('bev_pool forward+backward', bwd)):
        print(f'| {name} | {t * 1e3:,.1f} ms | {n / t:,.0f} | '
              f'{naive / t:,.0f}x |')


if __name__ == '__main__':
    main()
