"""Cost of FULLER's gradient calibration against naive multi-task training.

Times one training step (forward, backward, optimizer step) of a BEV-sized
two-branch, two-head toy side by side, in one run:

* ``naive``  : plain sum of the task losses (mmengine ``OptimWrapper``);
* ``fuller`` : ``FullerOptimWrapper`` with IMTLG + EqualNorm (junctions,
  statistics published to the message hub, as in training);
* ``pcgrad`` : PCGrad applied the classic way on the shared parameters,
  with one backward pass per task.

Steps of the modes are interleaved round-robin so that a noisy machine
affects them alike; both the wall time and the process CPU time of a step are
reported (the latter is steadier on a shared machine). Peak memory: on CUDA
the allocator's peak per step; on CPU the peak resident set of a fresh child
process per mode (the torch CPU allocator keeps no statistics). The number of
gradient passes through the shared layer per step shows that FULLER adds no
backward pass (classic PCGrad needs one per task).

Example::

    python tools/benchmark_calibration.py        # batch 2, 256 x 128 x 128
    python tools/benchmark_calibration.py --device cuda --batch 4 --steps 20
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Dict, List

import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from fuller.calibration import ModalityJunction, PCGrad, TaskJunction
from fuller.engine import FullerOptimWrapper

MODES = ('naive', 'fuller', 'pcgrad')


def conv_block(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU())


class BEVToy(nn.Module):
    """camera / LiDAR branches (B, in, S, S) -> modality junction -> fuser
    -> shared layer ``z`` (B, C, S, S) -> task junction -> det / seg heads.

    Args:
        channels: C of the fused and shared feature.
        in_channels: channels of each raw modality input.
    """

    def __init__(self, channels: int = 256, in_channels: int = 32) -> None:
        super().__init__()
        half = channels // 2
        self.camera = nn.Sequential(
            conv_block(in_channels, half // 2), conv_block(half // 2, half))
        self.lidar = nn.Sequential(
            conv_block(in_channels, half // 2), conv_block(half // 2, half))
        self.fuser = conv_block(2 * half, channels)
        self.shared = conv_block(channels, channels)
        self.det_head = nn.Sequential(
            conv_block(channels, 64), nn.Conv2d(64, 10, 1))
        self.seg_head = nn.Sequential(
            conv_block(channels, 64), nn.Conv2d(64, 6, 1))
        self.modality_junction = ModalityJunction(('camera', 'lidar'))
        self.task_junction = TaskJunction(('det', 'seg'))

    def shared_parameters(self) -> List[nn.Parameter]:
        return [p for m in (self.camera, self.lidar, self.fuser, self.shared)
                for p in m.parameters()]

    def forward(self, batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        feats = self.modality_junction(
            [self.camera(batch['camera']), self.lidar(batch['lidar'])])
        z = self.shared(self.fuser(torch.cat(feats, 1)))
        per_task = self.task_junction(z)
        det = self.det_head(per_task['det'])
        seg = self.seg_head(per_task['seg'])
        return {
            'det.loss_heatmap': F.mse_loss(det, batch['det']),
            'seg.loss_mask':
            F.binary_cross_entropy_with_logits(seg, batch['seg']),
        }


def make_batch(args, device) -> Dict[str, Tensor]:
    gen = torch.Generator().manual_seed(0)
    b, s = args.batch, args.size

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(device)

    return dict(camera=rand(b, 32, s, s), lidar=rand(b, 32, s, s),
                det=rand(b, 10, s, s), seg=(rand(b, 6, s, s) > 0).float())


class Stepper:
    """One mode: its own model copy, optimizer and step function."""

    def __init__(self, mode: str, args, device) -> None:
        torch.manual_seed(0)
        self.mode = mode
        self.model = BEVToy(args.channels).to(device)
        optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        if mode == 'fuller':
            self.wrapper = FullerOptimWrapper(
                optimizer,
                calibration=dict(inter=dict(type='IMTLG'),
                                 intra=dict(type='EqualNorm')))
        else:
            self.wrapper = OptimWrapper(optimizer)
        self.pcgrad = PCGrad()
        # Counts the gradient computations through the shared layer's output.
        self.trunk_backwards = 0
        self.model.shared.register_forward_hook(self._watch_trunk)

    def _watch_trunk(self, module, args, out) -> None:
        if out.requires_grad:
            out.register_hook(self._count_trunk)

    def _count_trunk(self, grad: Tensor) -> None:
        self.trunk_backwards += 1

    def step(self, batch: Dict[str, Tensor]) -> None:
        with self.wrapper.optim_context(self.model):
            losses = self.model(batch)
        if self.mode != 'pcgrad':
            self.wrapper.update_params(sum(losses.values()))
            return
        # Classic PCGrad: one backward pass per task over the whole network.
        shared = self.model.shared_parameters()
        heads = {'det': list(self.model.det_head.parameters()),
                 'seg': list(self.model.seg_head.parameters())}
        rows = []
        for i, (key, loss) in enumerate(losses.items()):
            task = key.split('.')[0]
            grads = torch.autograd.grad(
                loss, shared + heads[task],
                retain_graph=i < len(losses) - 1)
            rows.append(torch.cat([g.flatten() for g in grads[:len(shared)]]))
            for p, g in zip(heads[task], grads[len(shared):]):
                p.grad = g
        flat = self.pcgrad(torch.stack(rows))
        offset = 0
        for p in shared:
            p.grad = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        self.wrapper.step()
        self.wrapper.zero_grad()


def _sync(device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def child_peak_memory(args, mode: str) -> float:
    """Peak RSS increase (bytes) of a training step, in a fresh process."""
    cmd = [sys.executable, __file__, '--_child', mode] + [
        f'--{k}={getattr(args, k)}'
        for k in ('batch', 'size', 'channels', 'threads')
    ]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    out = subprocess.run(cmd, env=env, check=True, capture_output=True,
                         text=True).stdout
    return float(out.strip().splitlines()[-1])


def run_child(args) -> None:
    device = torch.device('cpu')
    stepper = Stepper(args._child, args, device)
    batch = make_batch(args, device)
    base = _rss_bytes()
    for _ in range(2):
        stepper.step(batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(peak - base)


def benchmark(args) -> Dict[str, dict]:
    device = torch.device(args.device)
    peaks = {m: 0.0 for m in args.modes}
    if device.type == 'cpu':  # before this process holds big tensors
        peaks = {m: child_peak_memory(args, m) for m in args.modes}
    batch = make_batch(args, device)
    steppers = {m: Stepper(m, args, device) for m in args.modes}
    wall = {m: [] for m in args.modes}
    cpu = {m: [] for m in args.modes}
    for it in range(args.warmup + args.steps):
        for mode, stepper in steppers.items():
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            stepper.step(batch)
            _sync(device)
            if it < args.warmup:
                continue
            wall[mode].append(time.perf_counter() - t0)
            cpu[mode].append(time.process_time() - c0)
            if device.type == 'cuda':
                peaks[mode] = max(peaks[mode],
                                  torch.cuda.max_memory_allocated() - base)
    steps = args.warmup + args.steps
    return {
        m: dict(median_s=statistics.median(wall[m]),
                median_cpu_s=statistics.median(cpu[m]),
                peak_mib=peaks[m] / 2**20,
                trunk_backwards=steppers[m].trunk_backwards / steps,
                wall_s=wall[m], cpu_s=cpu[m])
        for m in args.modes
    }


def report(results: Dict[str, dict], args) -> str:
    ref = results.get('naive')

    def ratio(r, key):
        return r[key] / ref[key] if ref else float('nan')

    lines = [
        f'# BEV toy: batch {args.batch}, shared feature {args.channels} x '
        f'{args.size} x {args.size}, device {args.device}, '
        f'{torch.get_num_threads()} threads, {args.steps} timed steps',
        f'{"mode":<7} {"step s":>7} {"cpu s":>7} {"peak MiB":>9} '
        f'{"bwd/step":>8} {"time/naive":>10} {"cpu/naive":>9} '
        f'{"mem/naive":>9}'
    ]
    for mode, r in results.items():
        lines.append(
            f'{mode:<7} {r["median_s"]:>7.3f} {r["median_cpu_s"]:>7.3f} '
            f'{r["peak_mib"]:>9.1f} {r["trunk_backwards"]:>8.0f} '
            f'{ratio(r, "median_s"):>10.3f} {ratio(r, "median_cpu_s"):>9.3f} '
            f'{ratio(r, "peak_mib"):>9.3f}')
    lines.append('step s / cpu s: median wall / process CPU time of a step; '
                 'peak MiB: peak memory of a step above the model and data; '
                 'bwd/step: gradient passes through the shared layer')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, default=128,
                        help='BEV side S (feature S x S)')
    parser.add_argument('--channels', type=int, default=256,
                        help='channels of the shared BEV feature')
    parser.add_argument('--steps', type=int, default=5,
                        help='timed steps per mode')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0: torch default)')
    parser.add_argument('--modes', nargs='+', default=list(MODES),
                        choices=MODES)
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--_child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but no CUDA device is available')
    if args.batch < 1 or args.size < 1 or args.channels < 2:
        parser.error('--batch, --size must be >= 1 and --channels >= 2')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._child:
        run_child(args)
        return
    results = benchmark(args)
    print(report(results, args))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=vars(args), results=results), f, indent=1)


if __name__ == '__main__':
    main()
