"""tools/modality_report.py on a trained CPU model: both sensors and each
one dropped, in reliance.md / reliance.json, resumed without re-running;
a single-sensor model is refused in one line."""
import json

from fuller.testing.tools import REPO

NAIVE = str(REPO / 'configs/fuller/fuller_cpu_naive.py')


def test_report_of_a_fused_model(tool, tmp_path, trained):
    root, ckpt = trained
    work = tmp_path / 'report'
    tool('tools/modality_report.py', NAIVE, ckpt, '--data-root', root, '--work-dir', work,
         timeout=900)
    row = json.loads((work / 'reliance.json').read_text())['row']
    for sensor in ('lidar', 'camera'):
        raw = json.loads((work / f'test_metrics_drop_{sensor}.json').read_text())
        assert raw['drop_modality'] == sensor
        miou = [v for k, v in raw['metrics'].items() if k.endswith('/mIoU')]
        assert row[f'drop_{sensor}.mIoU'] == miou[0]
        assert 0 <= row[f'drop_{sensor}.mAP'] <= 1
    assert 'probe_camera.mIoU' not in row  # only with --probe
    table = (work / 'reliance.md').read_text()
    assert '| fuller_cpu_naive |' in table and 'LiDAR dropped (mAP / mIoU)' in table
    results = sorted(work.glob('test_metrics*.json'))
    stamps = [p.stat().st_mtime_ns for p in results]
    again = tool('tools/modality_report.py', NAIVE, ckpt, '--data-root', root,
                 '--work-dir', work, timeout=900)
    assert [p.stat().st_mtime_ns for p in results] == stamps  # reused, not re-run
    assert '| fuller_cpu_naive |' in again.stdout


def test_single_sensor_model_is_refused(tool, tmp_path):
    ckpt = tmp_path / 'any.pth'
    ckpt.write_bytes(b'')
    proc = tool('tools/modality_report.py', str(REPO / 'configs/fuller/fuller_cpu_lidar_only.py'),
                ckpt, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'tools/modality_report.py: error: ' + proc.stderr.split(': error: ', 1)[1].strip()]
    assert 'no camera + LiDAR model' in proc.stderr
