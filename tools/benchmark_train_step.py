"""Time the training step of a config on a fixed batch, side by side with
naive multi-task training.

    python tools/benchmark_train_step.py CONFIG [--device cuda|cpu] [--amp]
        [--batch N] [--steps K] [--data-root DIR] [--reduced]
        [--threads N] [--json FILE]

The batch is built once by the config's own training pipeline (its loading
time is reported separately) and every step trains on it, so the figures are
the model's and the optimizer's alone. Two variants run in one process from
the same initial weights: the config's calibration and naive (inter ``Sum``,
intra ``Identity``); their time and memory ratios are printed. Per variant:

* ``train_step``: wall seconds per step (device synchronised around each),
  median over ``--steps`` after one warm-up step;
* forward seconds per module (forward hooks that synchronise the device,
  one extra step) and the heads' ``loss`` (forward + targets + matching);
* host syncs per step (one extra step under ``torch.profiler``): on CUDA the
  ``cudaMemcpy*``/``cuda*Synchronize`` runtime calls; on every device the
  ops that read a tensor's value or size back to the host
  (``aten::_local_scalar_dense`` = ``.item()``/``int()``/``bool()``,
  ``nonzero``, ``unique``, ...), which block the host on a GPU;
* peak memory: the CUDA allocator's peak, or on CPU the process's peak
  resident set so far (the CPU allocator keeps no statistics; it grows
  monotonically over the run, so compare memory on CUDA).

The voxeliser is timed on the batch's point clouds: the plugin's torch one
against mmcv's compiled one (same settings, train mode), with a check that
both give the same tensors. ``--reduced`` runs the paper model at 64x176
with the LiDAR branch on pillars (``fuller.testing.paper_model_reduced``),
which fits a CPU. Examples::

    python tools/benchmark_train_step.py configs/fuller/fuller_cpu_fuller.py
    python tools/benchmark_train_step.py configs/fuller/fuller_nus_fuller.py \\
        --reduced --device cpu --batch 1 --data-root data/nuscenes-synth
    python tools/benchmark_train_step.py configs/fuller/fuller_nus_fuller.py \\
        --device cuda --batch 4 --steps 10 [--amp]
"""
import argparse
import copy
import json
import resource
import statistics
import sys
import time
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional

import torch

#: model parts timed by forward hooks, in data-flow order
PARTS = ('data_preprocessor', 'img_backbone', 'img_neck', 'view_transform',
         'pts_voxel_encoder', 'pts_middle_encoder', 'fusion_layer',
         'pts_backbone', 'pts_neck', 'bbox_head', 'seg_head')
#: ops whose result the host must wait for on a GPU (values or sizes)
SYNC_OPS = ('aten::_local_scalar_dense', 'aten::nonzero',
            'aten::nonzero_static', 'aten::unique_consecutive',
            'aten::_unique2', 'aten::unique_dim', 'aten::masked_select',
            'aten::repeat_interleave')
#: CUDA runtime calls that copy between host and device or wait for it
CUDA_SYNC_CALLS = ('cudaMemcpy', 'cudaMemcpyAsync', 'cudaStreamSynchronize',
                   'cudaDeviceSynchronize', 'cudaEventSynchronize')
NAIVE = dict(inter=dict(type='Sum'), intra=dict(type='Identity'))


class BenchmarkError(Exception):
    """A problem in the arguments or the data, told in one line."""


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/benchmark_train_step.py',
        description='Time train_step of a config on a fixed batch: config '
        'calibration vs naive, per-module forward times, voxeliser, host '
        'syncs, peak memory.')
    parser.add_argument('config', help='e.g. configs/fuller/fuller_cpu_fuller.py')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default=None,
                        help='default: cuda when available, else cpu')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (CUDA float16, CPU bfloat16)')
    parser.add_argument('--batch', type=int, default=2,
                        help='samples in the fixed batch (default 2)')
    parser.add_argument('--steps', type=int, default=3,
                        help='timed steps per variant (default 3)')
    parser.add_argument('--data-root', metavar='DIR',
                        help='replace every data_root of the config')
    parser.add_argument('--reduced', action='store_true',
                        help='paper model at 64x176 with pillars (CPU-sized)')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0: torch default)')
    parser.add_argument('--json', metavar='FILE',
                        help='also write the figures to FILE')
    args = parser.parse_args(argv)
    for name in ('batch', 'steps'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be at least 1, got '
                         f'{getattr(args, name)}')
    if args.threads < 0:
        parser.error(f'--threads must be >= 0, got {args.threads}')
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is visible to torch; '
                     'use --device cpu or a CUDA build of torch')
    return args


# --------------------------------------------------------------- set-up
def load_benchmark_config(args: argparse.Namespace):
    """The config with --data-root / --reduced / --amp applied; checks that
    the training data exists."""
    from fuller.engine.runner_setup import (UserInputError, apply_amp,
                                            check_data_paths, load_config,
                                            set_data_root)
    try:
        cfg = load_config(args.config)
        if args.data_root:
            set_data_root(cfg, args.data_root)
        check_data_paths(cfg, ['train_dataloader'])
        if args.amp:
            apply_amp(cfg)
    except UserInputError as err:
        raise BenchmarkError(str(err)) from err
    wrapper = cfg.get('optim_wrapper', {})
    if 'calibration' not in wrapper:
        raise BenchmarkError(
            f'{args.config}: optim_wrapper has no calibration; the benchmark '
            'compares FullerOptimWrapper calibrations (use a configs/fuller '
            'config)')
    if args.amp:
        wrapper['device_type'] = args.device
    if args.reduced:
        from fuller.testing import paper_model_reduced, pipeline_reduced
        if not cfg.model.get('view_transform'):
            raise BenchmarkError('--reduced needs a model with a camera '
                                 'branch (the paper model)')
        cfg.model = paper_model_reduced(cfg.model)
        ds = cfg.train_dataloader.dataset
        while 'pipeline' not in ds and 'dataset' in ds:
            ds = ds.dataset
        ds.pipeline = pipeline_reduced(ds.pipeline)
    return cfg


def build_batch(cfg, batch: int):
    """(batch dict, seconds per sample) from the config's train pipeline."""
    from mmengine.dataset import pseudo_collate
    from mmdet3d.registry import DATASETS
    dataset = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    if len(dataset) == 0:
        raise BenchmarkError('the training dataset of the config is empty')
    t0 = time.perf_counter()
    samples = [dataset[i % len(dataset)] for i in range(batch)]
    per_sample = (time.perf_counter() - t0) / batch
    return pseudo_collate(samples), per_sample


def sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


# ------------------------------------------------------------ voxeliser
def time_voxelisers(cfg, points: List[torch.Tensor], device: str,
                    reps: int = 5) -> Optional[dict]:
    """Seconds per batch of the torch and the mmcv voxeliser (best of a few
    runs, train mode) and whether their outputs are identical."""
    dp = cfg.model.data_preprocessor
    if not dp.get('voxel') or dp.get('voxel_type', 'hard') != 'hard':
        return None
    try:
        from fuller.models.ops import TorchHardVoxelization
    except ImportError:  # a plugin version without it (before/after runs)
        return None
    layer_cfg = dict(dp.voxel_layer)
    points = [p.to(device) for p in points]
    ours = TorchHardVoxelization(**layer_cfg).to(device).train()
    out = dict(points=[len(p) for p in points])

    def best(layer, n):
        times, result = [], None
        for _ in range(n):
            sync(device)
            t0 = time.perf_counter()
            result = [layer(p) for p in points]
            sync(device)
            times.append(time.perf_counter() - t0)
        return min(times), result

    best(ours, 1)  # warm-up
    out['torch_s'], got = best(ours, reps)
    try:
        from mmdet3d.models.data_preprocessors.voxelize import \
            VoxelizationByGridShape
        ref = VoxelizationByGridShape(**layer_cfg).to(device).train()
        # mmcv's CPU kernel clears a dense grid per call (~1 s at 0.075 m)
        out['mmcv_s'], want = best(ref, 2)
    except (ImportError, RuntimeError) as err:  # mmcv ops missing on device
        out['mmcv_s'] = None
        out['mmcv_error'] = f'{type(err).__name__}: {err}'.splitlines()[0]
        return out
    out['identical'] = all(
        torch.equal(a, b) for g, w in zip(got, want) for a, b in zip(g, w))
    out['speedup'] = out['mmcv_s'] / max(out['torch_s'], 1e-12)
    return out


# ------------------------------------------------------------ one variant
@contextmanager
def module_timers(model, device: str, times: Dict[str, float]):
    """Forward hooks (and head ``loss`` wrappers) that add the synchronised
    wall time of each part to ``times``."""
    handles, patched = [], []
    starts: Dict[str, List[float]] = {}
    for name in PARTS:
        part = getattr(model, name, None)
        if part is None:
            continue

        def pre(_m, _a, name=name):
            sync(device)
            starts.setdefault(name, []).append(time.perf_counter())

        def post(_m, _a, _o, name=name):
            sync(device)
            times[name] = times.get(name, 0.0) + \
                time.perf_counter() - starts[name].pop()

        handles += [part.register_forward_pre_hook(pre),
                    part.register_forward_hook(post)]
        if name.endswith('_head') and hasattr(part, 'loss'):
            patched.append((part, part.loss))
            part.loss = _timed(part.loss, f'{name}.loss', device, times)
    try:
        yield times
    finally:
        for h in handles:
            h.remove()
        for part, loss in patched:
            part.loss = loss


def _timed(fn: Callable, key: str, device: str, times: Dict[str, float]):
    def wrapper(*args, **kwargs):
        sync(device)
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        sync(device)
        times[key] = times.get(key, 0.0) + time.perf_counter() - t0
        return result
    return wrapper


def count_syncs(step: Callable[[], None], device: str) -> Dict[str, int]:
    """Run ``step`` once under the profiler; count host-sync ops/calls."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        step()
        sync(device)
    counts = Counter()
    for ev in prof.events():
        if ev.name in SYNC_OPS or ev.name in CUDA_SYNC_CALLS:
            counts[ev.name] += 1
    out = dict(sorted(counts.items()))
    out['ops_total'] = sum(v for k, v in counts.items() if k in SYNC_OPS)
    if device == 'cuda':
        out['cuda_calls_total'] = sum(
            v for k, v in counts.items() if k in CUDA_SYNC_CALLS)
    return out


def peak_memory_mib(device: str) -> float:
    if device == 'cuda':
        return torch.cuda.max_memory_allocated() / 2**20
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(model, init_state, wrapper_cfg, data, device: str,
                steps: int) -> dict:
    """Warm-up, timed steps, a step with module timers, a profiled step."""
    from mmengine.optim import build_optim_wrapper
    model.load_state_dict(init_state)
    model.train()
    wrapper = build_optim_wrapper(model, copy.deepcopy(wrapper_cfg))

    def step():
        model.train_step(data, wrapper)

    step()  # warm-up (allocator, cuDNN autotuning, lazy inits)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    peak = peak_memory_mib(device)
    modules: Dict[str, float] = {}
    with module_timers(model, device, modules):
        step()
    syncs = count_syncs(step, device)
    return dict(step_s=statistics.median(times), step_all_s=times,
                peak_mib=peak, modules=modules, syncs=syncs)


def calibration_name(calib: dict) -> str:
    def one(c):
        return c['type'] if c else 'None'
    return f"{one(calib.get('inter'))}+{one(calib.get('intra'))}"


# ------------------------------------------------------------------ main
def benchmark(args: argparse.Namespace) -> dict:
    import fuller  # noqa: F401 (registers the plugin)
    from mmdet3d.utils import register_all_modules
    from mmengine.runner import set_random_seed

    from fuller.registry import MODELS
    register_all_modules(init_default_scope=True)
    cfg = load_benchmark_config(args)
    set_random_seed(0)
    data, load_s = build_batch(cfg, args.batch)
    voxel = time_voxelisers(cfg, data['inputs'].get('points', []),
                            args.device)
    set_random_seed(0)
    model = MODELS.build(cfg.model).to(args.device)
    init_state = copy.deepcopy(model.state_dict())
    base = cfg.optim_wrapper.to_dict() if hasattr(
        cfg.optim_wrapper, 'to_dict') else dict(cfg.optim_wrapper)
    variants = {}
    calib = dict(base['calibration'])
    naive = dict(base, calibration=dict(calib, **NAIVE))
    for name, wcfg in ((f'config ({calibration_name(calib)})', base),
                       ('naive (Sum+Identity)', naive)):
        variants[name] = run_variant(model, init_state, wcfg, data,
                                     args.device, args.steps)
    return dict(config=args.config, device=args.device, amp=args.amp,
                batch=args.batch, steps=args.steps, reduced=args.reduced,
                threads=torch.get_num_threads(), load_s_per_sample=load_s,
                voxeliser=voxel, variants=variants)


def report(res: dict) -> str:
    lines = [
        f"benchmark_train_step: {res['config']}"
        f"{' (reduced: 64x176, pillars)' if res['reduced'] else ''}",
        f"device {res['device']}, amp {'on' if res['amp'] else 'off'}, "
        f"batch {res['batch']}, {res['steps']} timed steps, "
        f"{res['threads']} CPU threads",
        f"data loading (config pipeline): {res['load_s_per_sample']:.3f} "
        f"s/sample"]
    vox = res['voxeliser']
    if vox is None:
        lines.append('voxeliser: n/a (no hard voxelisation in this config)')
    elif vox.get('mmcv_s') is None:
        lines.append(f"voxeliser (batch, train mode): torch "
                     f"{vox['torch_s'] * 1e3:.2f} ms, mmcv n/a "
                     f"({vox['mmcv_error']})")
    else:
        lines.append(
            f"voxeliser (batch, train mode, points {vox['points']}): torch "
            f"{vox['torch_s'] * 1e3:.2f} ms, mmcv {vox['mmcv_s'] * 1e3:.2f}"
            f" ms, speed-up {vox['speedup']:.1f}x, identical output: "
            f"{'yes' if vox['identical'] else 'NO'}")
    names = list(res['variants'])
    a, b = (res['variants'][n] for n in names)
    w = max(28, *(len(n) + 2 for n in names))
    lines.append(f"{'':26s}{names[0]:>{w}s}{names[1]:>{w}s}{'ratio':>8s}")

    def row(label, x, y, fmt):
        ratio = f'{x / y:8.3f}' if y else f"{'-':>8s}"
        lines.append(f'{label:26s}{format(x, fmt):>{w}s}'
                     f'{format(y, fmt):>{w}s}{ratio}')

    row('train_step s (median)', a['step_s'], b['step_s'], '.4f')
    mem = 'peak memory MiB' if res['device'] == 'cuda' else \
        'peak RSS MiB (process)'
    row(mem, a['peak_mib'], b['peak_mib'], '.0f')
    sync_label = ('host syncs/step (cuda)' if res['device'] == 'cuda'
                  else 'host syncs/step (ops)')
    key = 'cuda_calls_total' if res['device'] == 'cuda' else 'ops_total'
    row(sync_label, a['syncs'][key], b['syncs'][key], 'd')
    if res['device'] == 'cuda':
        row('  sync ops/step', a['syncs']['ops_total'],
            b['syncs']['ops_total'], 'd')
    for op in sorted(set(a['syncs']) | set(b['syncs'])):
        if op in SYNC_OPS or op in CUDA_SYNC_CALLS:
            row(f'  {op.replace("aten::", "")}', a['syncs'].get(op, 0),
                b['syncs'].get(op, 0), 'd')
    lines.append('forward s per module (synchronised hooks):')
    for part in list(PARTS) + [p + '.loss' for p in PARTS]:
        if part in a['modules'] or part in b['modules']:
            row(f'  {part}', a['modules'].get(part, 0.0),
                b['modules'].get(part, 0.0), '.4f')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        res = benchmark(args)
    except BenchmarkError as err:
        print(f'tools/benchmark_train_step.py: error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    print(report(res))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
