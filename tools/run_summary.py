"""One line about a training run: median step time and peak GPU memory.

    python tools/run_summary.py WORK_DIR

Reads the scalars mmengine logged under ``WORK_DIR/<timestamp>/vis_data/``
(``time`` per logged iteration, ``memory`` = peak CUDA memory in MB, only on
GPUs) and prints e.g. ``1.06 s/iter, peak 24.1 GB`` (``peak n/a (CPU)``
without CUDA). The first logged iteration is left out of the median (warm-up)
when there are more. Used by tools/check_cuda.sh.
"""
import argparse
import sys
from typing import List, Optional

import numpy as np

from plot_gradients import load_scalars


def summarize(work_dir: str) -> str:
    """The summary line; ValueError when no training iteration was logged."""
    scalars = load_scalars(work_dir)
    if 'time' not in scalars:
        raise ValueError(f'no training iterations logged under {work_dir} '
                         '(<timestamp>/vis_data/scalars.json has no "time")')
    times = scalars['time'][1]
    step = float(np.median(times[1:] if len(times) > 1 else times))
    if 'memory' in scalars:
        peak = f'peak {scalars["memory"][1].max() / 1024:.1f} GB'
    else:
        peak = 'peak n/a (CPU)'
    return f'{step:.2f} s/iter, {peak}'


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog='tools/run_summary.py',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('work_dir', help='the --work-dir of a training run')
    args = parser.parse_args(argv)
    try:
        print(summarize(args.work_dir))
    except ValueError as err:
        sys.exit(f'tools/run_summary.py: error: {err}')


if __name__ == '__main__':
    main()
