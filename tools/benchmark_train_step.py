"""Time the training step of a config on a fixed batch, side by side with
naive multi-task training.

    python tools/benchmark_train_step.py CONFIG [--device cuda|cpu] [--amp]
        [--batch N] [--steps K] [--data-root DIR] [--reduced]
        [--threads N] [--json FILE] [--ops N] [--vs KEY=VALUE ...]
        [--cfg-options KEY=VALUE ...]

The batch is built once by the config's own training pipeline (its loading
time is reported separately) and every step trains on it, so the figures are
the model's and the optimizer's alone. Two variants run in one process from
the same initial weights: the config's calibration and naive (inter ``Sum``,
intra ``Identity``), and with ``--vs`` a third: the config with some
overrides (before/after comparisons such as
``--vs model.data_preprocessor.voxelizer=mmcv``). Their steps are timed
round-robin, so a shared machine slows them alike, and the ratios of the
first to the others are printed. Per variant:

* ``train_step``: wall seconds per step (device synchronised around each),
  median over ``--steps`` after one warm-up step, and the process CPU time
  of a step (steadier on a loaded machine; with ``--threads 1`` it is the
  work done);
* forward seconds per module (forward hooks that synchronise the device,
  one extra step; on a CPU the profiled one), the heads' ``loss``
  (forward + targets + matching + losses) and, inside the detection loss,
  the heatmap targets and the Hungarian matching (summed over the batch);
* host syncs per step (one extra step under ``torch.profiler``): on CUDA the
  ``cudaMemcpy*``/``cuda*Synchronize`` runtime calls; on every device the
  ops that read a tensor's value or size back to the host
  (``aten::_local_scalar_dense`` = ``.item()``/``int()``/``bool()``,
  ``nonzero``, ``unique``, ...). On a GPU those on device tensors block the
  host; on a CPU all value reads are counted (host-side bookkeeping such as
  target drawing and the CPU optimizer's step counters included);
* peak memory: on CUDA the variant's own peak (what it keeps between steps
  plus the step's peak), or on CPU the process's peak resident set so far
  (the CPU allocator keeps no statistics; it grows monotonically over the
  run, so compare memory on CUDA);
* with ``--ops N``: the N ops of most host (CPU) self time in the profiled
  step, each variant's side by side (where a calibration's extra time goes).

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
from mmengine.config import DictAction

#: model parts timed by forward hooks, in data-flow order
PARTS = ('data_preprocessor', 'img_backbone', 'img_neck', 'view_transform',
         'pts_voxel_encoder', 'pts_middle_encoder', 'fusion_layer',
         'pts_backbone', 'pts_neck', 'bbox_head', 'seg_head')
#: steps inside a head's ``loss`` timed on their own (head class -> methods)
LOSS_STEPS = {'TransFusionHead': ('_heatmap_target', '_assign')}
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
    parser.add_argument('config',
                        help='e.g. configs/fuller/fuller_cpu_fuller.py')
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
    parser.add_argument('--ops', type=int, default=0, metavar='N',
                        help='also list the N ops of most host (CPU) time in '
                        "the profiled step, per variant: where a calibration's "
                        'extra time goes')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        metavar='KEY=VALUE', help='override config keys for '
                        'every variant, as tools/train.py does (e.g. '
                        'env_cfg.float32_matmul_precision=highest)')
    parser.add_argument('--vs', nargs='+', action=DictAction,
                        metavar='KEY=VALUE', help='a third variant: the '
                        'config with these overrides (e.g. data_preprocessor'
                        " settings as model.data_preprocessor.voxelizer=mmcv)")
    args = parser.parse_args(argv)
    if args.ops < 0:
        parser.error(f'--ops must be >= 0, got {args.ops}')
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
    """The config with --cfg-options / --data-root / --reduced / --amp
    applied; checks that the training data exists. Its ``env_cfg``'s cuDNN
    algorithm search and matmul precision are set for this process, as the
    Runner sets them for a run (process-wide: every variant gets them)."""
    from fuller.engine.runner_setup import (UserInputError, apply_amp,
                                            apply_backend_settings,
                                            check_data_paths, load_config,
                                            set_data_root)
    try:
        cfg = load_config(args.config, args.cfg_options)
        apply_backend_settings(cfg.get('env_cfg'))
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
        cfg.paper_data_preprocessor = copy.deepcopy(
            cfg.model.data_preprocessor)
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
def time_voxelisers(dp, points: List[torch.Tensor], device: str,
                    reps: int = 5) -> Optional[dict]:
    """Seconds per batch of the torch and the mmcv voxeliser with the data
    preprocessor config ``dp``'s voxel layer (best of a few runs, train
    mode) and whether their outputs are identical."""
    if not dp.get('voxel') or dp.get('voxel_type', 'hard') != 'hard':
        return None
    try:
        from fuller.models.ops import TorchHardVoxelization
    except ImportError:  # a plugin version without it (before/after runs)
        return None
    layer_cfg = dict(dp.voxel_layer)
    points = [p.to(device) for p in points]
    ours = TorchHardVoxelization(**layer_cfg).to(device).train()
    out = dict(points=[len(p) for p in points],
               voxel_size=list(layer_cfg['voxel_size']))

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
            for attr, key in [('loss', f'{name}.loss')] + [
                    (a, f'{name}.loss:{a.strip("_")}')
                    for a in LOSS_STEPS.get(type(part).__name__, ())]:
                setattr(part, attr, _timed(getattr(part, attr), key, device,
                                           times))
                patched.append((part, attr))
    try:
        yield times
    finally:
        for h in handles:
            h.remove()
        for part, attr in patched:  # the class's method again
            delattr(part, attr)


def _timed(fn: Callable, key: str, device: str, times: Dict[str, float]):
    def wrapper(*args, **kwargs):
        sync(device)
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        sync(device)
        times[key] = times.get(key, 0.0) + time.perf_counter() - t0
        return result
    return wrapper


def count_syncs(step: Callable[[], None], device: str,
                host_ms: Optional[Dict[str, float]] = None) -> Dict[str, int]:
    """Run ``step`` once under the profiler; count host-sync ops/calls.
    With ``host_ms`` (a dict to fill), also every op's self CPU time in ms."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        step()
        sync(device)
    if host_ms is not None:
        for avg in prof.key_averages():
            host_ms[avg.key] = avg.self_cpu_time_total / 1e3
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


def _allocated_mib(device: str) -> float:
    return torch.cuda.memory_allocated() / 2**20 if device == 'cuda' else 0.0


class Variant:
    """One model + optimizer wrapper, stepped on the fixed batch."""

    def __init__(self, name: str, model_cfg, wrapper_cfg, data,
                 device: str) -> None:
        from mmengine.optim import build_optim_wrapper
        from mmengine.runner import set_random_seed

        from fuller.registry import MODELS
        self.name, self.data, self.device = name, data, device
        before = _allocated_mib(device)
        set_random_seed(0)  # the same initial weights for every variant
        self.model = MODELS.build(copy.deepcopy(model_cfg)).to(device)
        self.model.train()
        self.wrapper = build_optim_wrapper(self.model,
                                           copy.deepcopy(wrapper_cfg))
        self.step()  # warm-up (allocator, cuDNN autotuning, optimizer state)
        sync(device)
        # what this variant keeps between steps (weights, optimizer state)
        self.resident_mib = _allocated_mib(device) - before
        self.times: List[float] = []
        self.cpu_times: List[float] = []  # process CPU time, all threads
        self.step_peak_mib = 0.0

    def step(self) -> None:
        self.model.train_step(self.data, self.wrapper)

    def timed_step(self) -> None:
        if self.device == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        start_mib = _allocated_mib(self.device)
        sync(self.device)
        t0, c0 = time.perf_counter(), time.process_time()
        self.step()
        sync(self.device)
        self.times.append(time.perf_counter() - t0)
        self.cpu_times.append(time.process_time() - c0)
        if self.device == 'cuda':
            self.step_peak_mib = max(
                self.step_peak_mib,
                torch.cuda.max_memory_allocated() / 2**20 - start_mib)

    def peak_mib(self) -> float:
        """CUDA: this variant's own peak (resident + step peak), as if it
        ran alone; CPU: the process's peak resident set so far (KiB on
        Linux)."""
        if self.device == 'cuda':
            return self.resident_mib + self.step_peak_mib
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def results(self) -> dict:
        modules: Dict[str, float] = {}
        host_ms: Dict[str, float] = {}
        if self.device == 'cpu':
            # one step for both: on a CPU the timers' syncs are no-ops and
            # add no ops to the count (the profiler adds a little time)
            with module_timers(self.model, self.device, modules):
                syncs = count_syncs(self.step, self.device, host_ms)
        else:  # the timers' cudaDeviceSynchronize would count as syncs
            with module_timers(self.model, self.device, modules):
                self.step()
            syncs = count_syncs(self.step, self.device, host_ms)
        return dict(step_s=statistics.median(self.times), host_ms=host_ms,
                    step_all_s=self.times,
                    step_cpu_s=statistics.median(self.cpu_times),
                    peak_mib=self.peak_mib(),
                    modules=modules, syncs=syncs)


def top_host_ops(variants: Dict[str, dict], n: int) -> List[str]:
    """The ``n`` ops of most self CPU time in any variant's profiled step,
    most first (the extra host work of a calibration shows among them)."""
    most: Dict[str, float] = {}
    for v in variants.values():
        for op, ms in v['host_ms'].items():
            most[op] = max(most.get(op, 0.0), ms)
    return sorted(most, key=most.get, reverse=True)[:n]


def run_variants(variants: List[Variant], steps: int) -> Dict[str, dict]:
    """Timed steps round-robin (a shared machine slows all alike), then
    one step with module timers and one profiled step per variant."""
    for _ in range(steps):
        for v in variants:
            v.timed_step()
    return {v.name: v.results() for v in variants}


def calibration_name(calib: dict) -> str:
    def one(c):
        return c['type'] if c else 'None'
    return f"{one(calib.get('inter'))}+{one(calib.get('intra'))}"


# ------------------------------------------------------------------ main
def benchmark(args: argparse.Namespace) -> dict:
    import fuller  # noqa: F401 (registers the plugin)
    from mmdet3d.utils import register_all_modules
    from mmengine.runner import set_random_seed

    register_all_modules(init_default_scope=True)
    cfg = load_benchmark_config(args)
    set_random_seed(0)
    data, load_s = build_batch(cfg, args.batch)
    points = data['inputs'].get('points', [])
    voxel = [time_voxelisers(cfg.model.data_preprocessor, points,
                             args.device)]
    if args.reduced:  # also at the paper's own voxel size
        voxel.append(time_voxelisers(cfg.paper_data_preprocessor, points,
                                     args.device))
    base = cfg.optim_wrapper.to_dict()
    calib = dict(base['calibration'])
    naive = dict(base, calibration=dict(calib, **NAIVE))
    specs = [(f'config ({calibration_name(calib)})', cfg.model, base),
             ('naive (Sum+Identity)', cfg.model, naive)]
    if args.vs:
        other = copy.deepcopy(cfg)
        try:
            other.merge_from_dict(args.vs)
        except (KeyError, TypeError, ValueError) as err:
            raise BenchmarkError(f'--vs {args.vs}: {err}') from err
        specs.append(('vs (overrides)', other.model,
                      other.optim_wrapper.to_dict()))
    variants = run_variants(
        [Variant(name, m, w, data, args.device) for name, m, w in specs],
        args.steps)
    return dict(config=args.config, device=args.device, amp=args.amp,
                vs=' '.join(f'{k}={v}' for k, v in (args.vs or {}).items()),
                batch=args.batch, steps=args.steps, reduced=args.reduced,
                ops=args.ops,
                cudnn_benchmark=torch.backends.cudnn.benchmark,
                matmul_precision=torch.get_float32_matmul_precision(),
                threads=torch.get_num_threads(), load_s_per_sample=load_s,
                voxeliser=voxel, variants=variants)


def voxeliser_line(vox: Optional[dict]) -> str:
    if vox is None:
        return 'voxeliser: n/a (no hard voxelisation in this config)'
    head = (f"voxeliser {vox['voxel_size']} (batch, train mode, points "
            f"{vox['points']}): torch {vox['torch_s'] * 1e3:.2f} ms, ")
    if vox.get('mmcv_s') is None:
        return head + f"mmcv n/a ({vox['mmcv_error']})"
    return head + (f"mmcv {vox['mmcv_s'] * 1e3:.2f} ms, speed-up "
                   f"{vox['speedup']:.1f}x, identical output: "
                   f"{'yes' if vox['identical'] else 'NO'}")


def report(res: dict) -> str:
    lines = [
        f"benchmark_train_step: {res['config']}"
        f"{' (reduced: 64x176, pillars)' if res['reduced'] else ''}",
        f"device {res['device']}, amp {'on' if res['amp'] else 'off'}, "
        f"batch {res['batch']}, {res['steps']} timed steps, "
        f"{res['threads']} CPU threads, cudnn_benchmark "
        f"{res['cudnn_benchmark']}, float32 matmul precision "
        f"{res['matmul_precision']}",
        f"data loading (config pipeline): {res['load_s_per_sample']:.3f} "
        f"s/sample"]
    for vox in res['voxeliser']:
        lines.append(voxeliser_line(vox))
    if res['vs']:
        lines.append(f"vs (overrides): {res['vs']}")
    names = list(res['variants'])
    vs = [res['variants'][n] for n in names]
    w = max(24, *(len(n) + 2 for n in names))
    ratio_names = [f'ratio 1/{i + 1}' for i in range(1, len(names))]
    lines.append(f"{'':32s}" + ''.join(f'{n:>{w}s}' for n in names) +
                 ''.join(f'{r:>12s}' for r in ratio_names))

    def row(label, values, fmt):
        cells = ''.join(f'{format(x, fmt):>{w}s}' for x in values)
        ratios = ''.join(f'{values[0] / y:12.3f}' if y else f"{'-':>12s}"
                         for y in values[1:])
        lines.append(f'{label:32s}{cells}{ratios}')

    row('train_step s (median)', [v['step_s'] for v in vs], '.4f')
    # steadier than wall time on a shared machine (with --threads 1)
    row('  process CPU s (median)', [v['step_cpu_s'] for v in vs], '.4f')
    mem = 'peak memory MiB' if res['device'] == 'cuda' else \
        'peak RSS MiB (process)'
    row(mem, [v['peak_mib'] for v in vs], '.0f')
    if res['device'] == 'cuda':
        row('host syncs/step (cuda)',
            [v['syncs']['cuda_calls_total'] for v in vs], 'd')
    # on a CPU every read of a tensor value counts: only those of device
    # tensors would block the host on a GPU
    row('value reads/step (ops)', [v['syncs']['ops_total'] for v in vs],
        'd')
    ops = sorted(set().union(*(v['syncs'] for v in vs)))
    for op in ops:
        if op in SYNC_OPS or op in CUDA_SYNC_CALLS:
            row(f'  {op.replace("aten::", "")}',
                [v['syncs'].get(op, 0) for v in vs], 'd')
    lines.append('forward s per module (synchronised hooks):')
    keys = list(PARTS) + [p + '.loss' for p in PARTS]
    keys += sorted({k for v in vs for k in v['modules'] if ':' in k})
    for part in keys:
        if any(part in v['modules'] for v in vs):
            row(f'  {part}', [v['modules'].get(part, 0.0) for v in vs],
                '.4f')
    if res['ops']:
        lines.append('host (CPU) ms per op in the profiled step, self time:')
        for op in top_host_ops(res['variants'], res['ops']):
            row(f'  {op[:30]}', [v['host_ms'].get(op, 0.0) for v in vs],
                '.1f')
        row('  all ops', [sum(v['host_ms'].values()) for v in vs], '.1f')
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
