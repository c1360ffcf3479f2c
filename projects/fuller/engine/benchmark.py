"""Helpers of the ``tools/benchmark_*.py`` scripts: the memory peak of a
measurement, and alternatives measured side by side in fresh processes."""
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB


class PeakMemory:
    """Peak memory (MiB) above the point where :meth:`start` was called.

    On CUDA the caching allocator's peak; on a CPU the process's peak
    resident set (the CPU allocator keeps no statistics), which is only the
    measurement's own in a fresh process (:func:`run_in_processes`).
    """

    def __init__(self, device: str) -> None:
        self.cuda = str(device).startswith('cuda')
        self.base = 0

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = _max_rss_bytes()

    def peak_mib(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _max_rss_bytes()
        return (peak - self.base) / 2**20


def run_in_processes(script: str, argv: List[str],
                     modes: Sequence[str]) -> Dict[str, dict]:
    """``python script *argv --mode M`` for each mode, each in a fresh
    process that prints its figures as one JSON object on its last line.

    Raises:
        RuntimeError: a run failed; the message has its stderr's tail.
    """
    results = {}
    for mode in modes:
        proc = subprocess.run([sys.executable, script, *argv, '--mode', mode],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f'{proc.stderr[-3000:]}\nthe {mode} run failed '
                               f'(exit {proc.returncode})')
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results


def median_step_time(step: Callable[[], None], steps: int,
                     device: str) -> float:
    """Median wall seconds of ``step`` over ``steps`` calls after one
    warm-up call, the device synchronised around each."""
    cuda = str(device).startswith('cuda')

    def sync():
        if cuda:
            torch.cuda.synchronize()

    step()
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


#: the rows of :func:`measure_step`'s figures in :func:`side_by_side`
STEP_ROWS = (('step_s', 'step s', '.4f'),
             ('peak_mib', 'peak MiB above start', '.0f'))


def measure_step(step: Callable[[], None], steps: int,
                 device: str) -> Dict[str, float]:
    """``step``'s median time (:func:`median_step_time`) and the memory
    peak (:class:`PeakMemory`) of all its calls, warm-up included."""
    memory = PeakMemory(device)
    memory.start()
    step_s = median_step_time(step, steps, device)
    return dict(step_s=step_s, peak_mib=memory.peak_mib())


def side_by_side(results: Dict[str, dict], modes: Sequence[str],
                 rows: Sequence[Tuple[str, str, str]] = STEP_ROWS
                 ) -> List[str]:
    """Table lines: one column per mode and the ratio of the second to the
    first; ``rows`` are (key in results[mode], label, number format)."""
    a, b = modes
    wa, wb, wr = len(a) + 4, len(b) + 4, len(a) + len(b) + 5
    lines = [f'{"":24}{a:>{wa}}{b:>{wb}}{f"{b}/{a}":>{wr}}']
    for key, label, fmt in rows:
        x, y = results[a][key], results[b][key]
        ratio = y / x if x > 0 else float('nan')
        lines.append(f'{label:24}{x:>{wa}{fmt}}{y:>{wb}{fmt}}'
                     f'{ratio:>{wr}.3f}')
    return lines
