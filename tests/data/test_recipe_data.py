"""Upstream BEVFusion's augmentation and map-label options (issue 13,
item 3): the BEV rotation range of the configs and the drivable_area label
source of the map rasteriser, named by the map metric."""
import logging
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine import load
from mmengine.config import Config
from mmengine.logging import MMLogger

from fuller.datasets import MapRasterizer
from fuller.evaluation import BEVSegMetric

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _bev_aug(cfg_path):
    cfg = Config.fromfile(osp.join(REPO, cfg_path))
    aug, = [t for t in cfg.train_dataloader.dataset.pipeline
            if t['type'] == 'BEVGlobalAug']
    maps, = [t for t in cfg.train_dataloader.dataset.pipeline
             if t['type'] == 'LoadBEVSegmentation']
    return aug, maps


def test_rotation_range_and_label_source_of_the_configs():
    aug, maps = _bev_aug('configs/_base_/datasets/nuscenes_multitask.py')
    assert aug['rot_range'] == pytest.approx([-math.pi / 4, math.pi / 4])
    assert maps['drivable_area_source'] == 'drivable_area'
    # the CPU demo keeps its own, smaller rotation
    aug, maps = _bev_aug('configs/_base_/datasets/nuscenes_synth_cpu.py')
    assert aug['rot_range'] == pytest.approx([-math.pi / 8, math.pi / 8],
                                             abs=1e-4)
    assert maps['drivable_area_source'] == 'drivable_area'


def test_both_drivable_area_sources_label_the_synthetic_set(
        synthetic_nuscenes):
    infos = load(synthetic_nuscenes.train_infos)['data_list']
    raster = {src: MapRasterizer(synthetic_nuscenes.root,
                                 classes=('drivable_area', 'walkway'),
                                 xbound=(-50, 50, 1.0), ybound=(-50, 50, 1.0),
                                 drivable_area_source=src)
              for src in ('drivable_area', 'road_segment+lane')}
    assert raster['drivable_area'].layers['drivable_area'] == (
        'drivable_area', )
    assert raster['road_segment+lane'].layers['drivable_area'] == (
        'road_segment', 'lane')
    for info in infos[:2]:
        l2g = np.asarray(info['ego2global']) @ np.asarray(
            info['lidar_points']['lidar2ego'])
        masks = {src: r.rasterize(info['map_location'], l2g)
                 for src, r in raster.items()}
        layer, union = masks['drivable_area'][0], masks[
            'road_segment+lane'][0]
        # both label a good part of the grid as drivable ...
        assert layer.mean() > 0.05 and union.mean() > 0.05
        # ... and agree here: the generator's drivable_area layer is made of
        # its road segments, which hold the lanes
        inter = (layer & union).sum()
        assert inter / (layer | union).sum() > 0.95
        # the other classes do not depend on the option
        assert np.array_equal(masks['drivable_area'][1],
                              masks['road_segment+lane'][1])
    with pytest.raises(ValueError, match='drivable_area_source'):
        MapRasterizer(synthetic_nuscenes.root, drivable_area_source='road')


def test_metric_table_names_the_label_source():
    metric = BEVSegMetric(classes=['drivable_area'])
    gt = torch.ones(1, 4, 4, dtype=torch.uint8)
    metric.process({}, [dict(pred_masks_bev=gt.float(), gt_masks_bev=gt,
                             drivable_area_source='road_segment+lane')])
    records = []

    class _Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = _Keep()
    current = MMLogger.get_current_instance()
    current.addHandler(handler)
    try:
        metric.evaluate(1)
    finally:
        current.removeHandler(handler)
    assert any('drivable_area labels: road_segment+lane' in r
               for r in records), records
