"""The TransFusion decoder's attention: torch's fused kernel against the
explicit (B * heads, P, L) weights, side by side.

    python tools/benchmark_decoder_attention.py [--device cpu|cuda] [--amp]
        [--batch 4] [--proposals 200] [--cells 32400] [--channels 128]
        [--heads 8] [--ffn 256] [--dropout 0.1] [--steps 3] [--threads N]

Trains one ``TransFusionDecoderLayer`` step (forward + backward, train mode)
at the given sizes (defaults: the paper setting, 200 queries over the
180x180 BEV cells, batch 4) with ``fused_attention`` on and off. Each mode
runs in a fresh process so that its memory peak is its own: on CUDA the
allocator's peak above what the layer and its inputs hold, on a CPU the
peak resident set above the process's before the first step (the CPU
allocator keeps no statistics). Prints the median step time over
``--steps`` after one warm-up step, the peak, and fused / explicit ratios.
"""
import argparse
import json
import sys
from typing import Dict, List, Optional

from fuller.engine.benchmark import (measure_step, run_in_processes,
                                     side_by_side)

MODES = ('explicit', 'fused')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='autocast: float16 on CUDA, bfloat16 on a CPU')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--proposals', type=int, default=200)
    parser.add_argument('--cells', type=int, default=180 * 180)
    parser.add_argument('--channels', type=int, default=128)
    parser.add_argument('--heads', type=int, default=8)
    parser.add_argument('--ffn', type=int, default=256)
    parser.add_argument('--dropout', type=float, default=0.1)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0: torch default)')
    parser.add_argument('--mode', choices=MODES, default=None,
                        help=argparse.SUPPRESS)  # one mode, in a child
    args = parser.parse_args(argv)
    for key in ('batch', 'proposals', 'cells', 'channels', 'heads', 'ffn',
                'steps'):
        if getattr(args, key) < 1:
            parser.error(f'--{key} must be >= 1, got {getattr(args, key)}')
    if args.channels % args.heads:
        parser.error(f'--channels ({args.channels}) must be a multiple of '
                     f'--heads ({args.heads})')
    if not 0.0 <= args.dropout < 1.0:
        parser.error(f'--dropout must be in [0, 1), got {args.dropout}')
    return args


def measure(args: argparse.Namespace) -> Dict[str, float]:
    """One mode's step time (s) and peak memory (MiB) in this process."""
    import torch

    from fuller.models.heads import TransFusionDecoderLayer
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: CUDA is not available here')
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    layer = TransFusionDecoderLayer(
        args.channels, args.heads, args.ffn, dropout=args.dropout,
        fused_attention=args.mode == 'fused').to(dev).train()
    b, p, l, c = args.batch, args.proposals, args.cells, args.channels
    query = torch.randn(b, p, c, device=dev)
    key = torch.randn(b, l, c, device=dev, requires_grad=True)
    query_pos = torch.rand(b, p, 2, device=dev)
    key_pos = torch.rand(b, l, 2, device=dev)
    dtype = torch.float16 if args.device == 'cuda' else torch.bfloat16

    def step():
        with torch.autocast(args.device, dtype=dtype, enabled=args.amp):
            out = layer(query, key, query_pos, key_pos)
        out.float().sum().backward()
        layer.zero_grad(set_to_none=True)
        key.grad = None

    return measure_step(step, args.steps, args.device)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.mode:
        print(json.dumps(measure(args)))
        return 0
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        res = run_in_processes(__file__, argv, MODES)
    except RuntimeError as err:
        print(f'benchmark_decoder_attention: {err}', file=sys.stderr)
        return 1
    print(f'decoder layer, {args.device}{" amp" if args.amp else ""}, batch '
          f'{args.batch}, {args.proposals} queries x {args.cells} cells, '
          f'{args.channels} channels, {args.heads} heads, dropout '
          f'{args.dropout}, median of {args.steps} steps (forward+backward)')
    print('\n'.join(side_by_side(res, MODES)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
