"""tools/benchmark_train_step.py on the CPU config and the session's tiny
synthetic nuScenes set: one timed step per variant, every reported field."""
import json
from pathlib import Path

import pytest
import torch

from fuller.testing.tools import load_tool

REPO = Path(__file__).resolve().parents[2]
CPU_CONFIG = 'configs/fuller/fuller_cpu_fuller.py'


def _tool():
    return load_tool('benchmark_train_step')


def test_benchmark_reports_every_field(synthetic_nuscenes, tmp_path,
                                       capsys):
    out = tmp_path / 'bench.json'
    threads = torch.get_num_threads()
    precision = torch.get_float32_matmul_precision()
    try:
        code = _tool().main([
            str(REPO / CPU_CONFIG), '--device', 'cpu', '--batch', '1',
            '--steps', '1', '--threads', '2', '--data-root',
            synthetic_nuscenes.root, '--ops', '4', '--json', str(out),
            '--cfg-options', 'env_cfg.float32_matmul_precision=high'])
        # the config's settings are applied as a run of it gets them
        assert torch.get_float32_matmul_precision() == 'high'
    finally:
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(precision)
    text = capsys.readouterr().out
    assert code == 0
    for field in ('data loading (config pipeline)', 'voxeliser',
                  'identical output: yes', 'train_step s (median)',
                  'peak RSS MiB', 'value reads/step', 'forward s per module',
                  'config (MetaBalance+EqualNorm)', 'naive (Sum+Identity)',
                  'ratio 1/2', 'img_backbone', 'bbox_head.loss', 'seg_head',
                  'cudnn_benchmark False, float32 matmul precision high'):
        assert field in text, (field, text)
    res = json.loads(out.read_text())
    a, b = res['variants'].values()
    for v in (a, b):
        assert v['step_s'] > 0 and len(v['step_all_s']) == 1
        assert v['peak_mib'] > 0
        # the target assignment reads back once per sample at least
        assert v['syncs']['ops_total'] >= 1
        assert set(v['modules']) >= {'data_preprocessor', 'view_transform',
                                     'pts_backbone', 'bbox_head.loss',
                                     'bbox_head.loss:assign',
                                     'bbox_head.loss:heatmap_target'}
        # the matching and the targets are parts of the detection loss
        assert v['modules']['bbox_head.loss:assign'] + \
            v['modules']['bbox_head.loss:heatmap_target'] < \
            v['modules']['bbox_head.loss']
    # --ops 4: the 4 ops of most host time in either variant, then the sum
    ops_lines = text.split('host (CPU) ms per op')[1].splitlines()[1:]
    assert len(ops_lines) == 5 and ops_lines[-1].lstrip().startswith('all ops')
    top = _tool().top_host_ops(res['variants'], 4)
    assert len(top) == 4 and all(op[:30] in text for op in top)
    for v in (a, b):
        assert sum(v['host_ms'].values()) > max(v['host_ms'][op] for op in top) > 0
    vox, = res['voxeliser']
    assert vox['identical'] and vox['torch_s'] > 0 and vox['mmcv_s'] > 0


def test_benchmark_bad_input_is_one_line(tmp_path, capsys):
    tool = _tool()
    code = tool.main([str(REPO / CPU_CONFIG), '--device', 'cpu',
                      '--data-root', str(tmp_path / 'missing')])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert 'data root not found' in err and 'make data' in err
    code = tool.main([str(REPO / CPU_CONFIG), '--device', 'cpu', '--cfg-options',
                      'env_cfg.float32_matmul_precision=fast'])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "float32_matmul_precision='fast' is not one of" in err
    with pytest.raises(SystemExit) as exc:
        tool.parse_args([CPU_CONFIG, '--steps', '0'])
    assert exc.value.code == 2 and '--steps' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        tool.parse_args([CPU_CONFIG, '--ops', '-1'])
    assert exc.value.code == 2 and '--ops' in capsys.readouterr().err
