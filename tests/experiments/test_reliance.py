"""fuller/experiments/reliance.py: which configs fuse two sensors, the
columns taken from the evaluators' metrics, the reliance table."""
from fuller.experiments.reliance import (fused_config, reliance_table,
                                         summarise)
from fuller.testing.tools import REPO


def test_fused_config_needs_both_branches():
    configs = REPO / 'configs/fuller'
    assert fused_config(str(configs / 'fuller_cpu_naive.py'))
    assert fused_config(str(configs / 'fuller_cpu_det_only.py'))  # one task, two sensors
    assert not fused_config(str(configs / 'fuller_cpu_camera_only.py'))
    assert not fused_config(str(configs / 'fuller_cpu_probe_lidar.py'))


def test_summarise_takes_the_columns_by_metric_name():
    row = summarise({'NuScenes metric/pred_instances_3d_NuScenes/mAP': 0.5,
                     'NuScenes metric/pred_instances_3d_NuScenes/NDS': 0.6,
                     'map/mIoU': 0.2, 'map/IoU.walkway': 0.3,
                     'map/IoU.walkway@0.40': 0.1, 'x/mAOE': 0.9})
    assert row == {'mAP': 0.5, 'NDS': 0.6, 'mIoU': 0.2, 'IoU.walkway': 0.3, 'mAOE': 0.9}


def test_table_marks_what_was_not_measured():
    table = reliance_table({'naive': {'mAP': 0.509, 'mIoU': 0.221, 'drop_lidar.mAP': 0.0,
                                      'drop_lidar.mIoU': 0.167}})
    header, _, line = table.strip().splitlines()
    assert header.count('(mAP / mIoU)') == 5
    assert line == '| naive | 50.9 / 22.1 | 0.0 / 16.7 | – / – | – / – | – / – |'
