"""tools/benchmark_calibration.py end to end at a tiny size."""
import json

import pytest
import torch

from fuller.testing.tools import load_tool


def _tool():
    return load_tool('benchmark_calibration')


def test_benchmark_runs_and_counts_backward_passes(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    threads = torch.get_num_threads()
    try:
        _tool().main(['--size', '8', '--channels', '16', '--steps', '2',
                      '--threads', '1', '--json', str(out)])
    finally:
        torch.set_num_threads(threads)
    table = capsys.readouterr().out
    assert all(mode in table for mode in ('naive', 'fuller', 'pcgrad'))
    results = json.loads(out.read_text())['results']
    # FULLER calibrates inside the single backward pass; classic PCGrad
    # runs one backward pass per task through the shared layers.
    assert results['naive']['trunk_backwards'] == 1
    assert results['fuller']['trunk_backwards'] == 1
    assert results['pcgrad']['trunk_backwards'] == 2
    for r in results.values():
        assert len(r['wall_s']) == 2 and r['median_s'] > 0
        assert r['peak_mib'] >= 0


def test_benchmark_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        _tool().parse_args(['--batch', '0'])
    assert exc.value.code == 2 and '--batch' in capsys.readouterr().err
