"""BEVSegMetric (map mIoU protocol), EmptySafeNuScenesMetric (a model with no
detection) and the config's val_evaluator list (EmptySafeNuScenesMetric +
BEVSegMetric) running for real on the synthetic set."""
import copy
import json
import os

import numpy as np
import pytest
import torch
from mmdet3d.utils import register_all_modules
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

import fuller  # noqa: F401
from fuller.evaluation import BEVSegMetric, confusion_counts
from fuller.registry import DATASETS, METRICS

register_all_modules(init_default_scope=True)


def _samples(n=4, shape=(6, 20, 20), seed=0):
    g = torch.Generator().manual_seed(seed)
    gts = [(torch.rand(shape, generator=g) < 0.3).to(torch.uint8)
           for _ in range(n)]
    return gts, g


def _run(metric, preds, gts):
    metric.process({}, [dict(pred_masks_bev=p, gt_masks_bev=g)
                        for p, g in zip(preds, gts)])
    return metric.evaluate(len(preds))


def test_perfect_map_prediction_scores_one_and_empty_zero():
    gts, _ = _samples()
    res = _run(BEVSegMetric(), [g.float() for g in gts], gts)
    assert res['map/mIoU'] == pytest.approx(1.0)
    assert res['map/IoU.divider'] == pytest.approx(1.0)
    res = _run(BEVSegMetric(), [torch.zeros_like(g, dtype=torch.float)
                                for g in gts], gts)
    assert res['map/mIoU'] == 0.0


def test_iou_is_max_over_thresholds_accumulated_over_the_split():
    gts, g = _samples()
    # Positives at 0.5, negatives at 0.42: right only for t in (0.42, 0.5].
    preds = [gt.float() * 0.5 + (1 - gt.float()) * 0.42 for gt in gts]
    res = _run(BEVSegMetric(), preds, gts)
    assert res['map/IoU.walkway'] == pytest.approx(1.0)
    for t in ('0.35', '0.40'):
        frac = sum(x[2].sum() for x in gts).item() / sum(
            x[2].numel() for x in gts)
        assert res[f'map/IoU.walkway@{t}'] == pytest.approx(frac, rel=1e-6)
    assert res['map/IoU.walkway@0.55'] == 0.0
    # Split-level accumulation, not a mean of per-sample IoUs.
    preds = [gts[0].float()] + [torch.zeros(6, 20, 20)] * 3
    res = _run(BEVSegMetric(), preds, gts)
    tp = gts[0][0].sum().item()
    total = sum(x[0].sum().item() for x in gts)
    assert res['map/IoU.drivable_area'] == pytest.approx(tp / total)


def test_counts_merge_exactly_across_ranks():
    """Per-sample counts are what mmengine gathers over ranks: splitting the
    samples between two 'ranks' and merging gives the one-process result."""
    gts, g = _samples(n=6, seed=1)
    preds = [torch.rand(gt.shape, generator=g) for gt in gts]
    whole = _run(BEVSegMetric(), preds, gts)
    r0, r1 = BEVSegMetric(), BEVSegMetric()
    r0.process({}, [dict(pred_masks_bev=p, gt_masks_bev=t)
                    for p, t in zip(preds[:4], gts[:4])])
    r1.process({}, [dict(pred_masks_bev=p, gt_masks_bev=t)
                    for p, t in zip(preds[4:], gts[4:])])
    merged = BEVSegMetric().compute_metrics(r0.results + r1.results)
    assert merged == pytest.approx({k[4:]: v for k, v in whole.items()})
    counts = confusion_counts(preds[0], gts[0], (0.5,))
    assert counts.shape == (1, 6, 3)
    assert counts[0, :, 0].sum() + counts[0, :, 2].sum() == gts[0].sum()


def test_absent_class_is_nan_and_bad_shapes_raise():
    gts, _ = _samples()
    for gt in gts:
        gt[4] = 0  # no car park anywhere
    res = _run(BEVSegMetric(), [g.float() for g in gts], gts)
    assert np.isnan(res['map/IoU.carpark_area'])
    assert res['map/mIoU'] == pytest.approx(1.0)
    with pytest.raises(ValueError, match='differ'):
        _run(BEVSegMetric(), [torch.zeros(6, 10, 10)], gts[:1])
    with pytest.raises(KeyError, match='pred_masks_bev'):
        BEVSegMetric().process({}, [dict(gt_masks_bev=gts[0])])


@pytest.fixture(scope='module')
def val_truth(synthetic_nuscenes_cfg):
    """The synthetic val split: its metainfo and, per sample, the packed
    test-pipeline output with the sample's ground-truth boxes and labels."""
    cfg = synthetic_nuscenes_cfg
    val = DATASETS.build(copy.deepcopy(cfg.val_dataloader.dataset))
    gt_ds = DATASETS.build(dict(copy.deepcopy(cfg.val_dataloader.dataset),
                                test_mode=False, pipeline=[]))
    samples = []
    for i in range(len(val)):
        packed = val[i]['data_samples']
        info = gt_ds.get_data_info(i)
        assert packed.sample_idx == info['sample_idx']
        ann = info['ann_info']
        samples.append((packed, ann['gt_bboxes_3d'],
                        torch.as_tensor(ann['gt_labels_3d'])))
    return val.metainfo, samples


def _truth(boxes, labels):
    return boxes, torch.ones(len(labels)), labels


def _nothing(boxes, labels):
    keep = torch.zeros(len(labels), dtype=torch.bool)
    return boxes[keep], torch.zeros(0), labels[keep]


def _predictions(val_truth, predict=_truth):
    """Data samples as the model returns them: ``predict(boxes, labels)``
    gives (boxes, scores, labels) from the ground truth (``_truth``: the
    ground truth itself, scored 1); the map prediction is the map truth."""
    out = []
    for packed, boxes, labels in val_truth[1]:
        packed = copy.deepcopy(packed)
        boxes, scores, labels = predict(boxes.clone(), labels)
        packed.pred_instances_3d = InstanceData(
            bboxes_3d=boxes, scores_3d=scores, labels_3d=labels)
        packed.pred_instances = InstanceData()
        packed.pred_masks_bev = packed.gt_masks_bev.float()
        out.append(packed.to_dict())
    return out


def _det_metric(cfg, val_truth, **overrides):
    metric = METRICS.build(dict(copy.deepcopy(cfg.det_evaluator), **overrides))
    metric.dataset_meta = val_truth[0]
    return metric


DET_KEY = 'NuScenes metric/pred_instances_3d_NuScenes/'


def test_no_detection_anywhere_scores_zero_and_keeps_the_result_file(
        synthetic_nuscenes_cfg, val_truth, tmp_path, monkeypatch):
    """A model with no box in any sample (untrained: all scores under the
    head's threshold) gets the devkit's numbers of an empty submission and
    one warning; the user's result file keeps no box."""
    assert synthetic_nuscenes_cfg.det_evaluator.type == \
        'EmptySafeNuScenesMetric'
    from mmengine.logging import MMLogger
    warnings = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'warning',
                        lambda msg, *a, **k: warnings.append(msg))
    metric = _det_metric(synthetic_nuscenes_cfg, val_truth,
                         jsonfile_prefix=str(tmp_path / 'pred'))
    preds = _predictions(val_truth, _nothing)
    metric.process({}, preds)
    res = metric.evaluate(len(preds))
    assert res[DET_KEY + 'mAP'] == 0.0
    assert res[DET_KEY + 'NDS'] == 0.0
    for cls in val_truth[0]['classes']:
        for dist in ('0.5', '1.0', '2.0', '4.0'):
            assert res[f'{DET_KEY}{cls}_AP_dist_{dist}'] == 0.0
    for err in ('mATE', 'mASE', 'mAOE', 'mAVE', 'mAAE'):
        assert res[DET_KEY + err] == 1.0
    assert res[DET_KEY + 'car_attr_err'] == 1.0
    assert np.isnan(res[DET_KEY + 'traffic_cone_attr_err'])
    assert len(warnings) == 1
    assert f'no detection in any of the {len(preds)} ' in warnings[0]
    assert 'mAP and NDS are 0' in warnings[0]
    out_dir = tmp_path / 'pred' / 'pred_instances_3d'
    assert sorted(os.listdir(out_dir)) == [
        'metrics_details.json', 'metrics_summary.json', 'plots',
        'results_nusc.json']
    written = json.loads((out_dir / 'results_nusc.json').read_text())
    tokens = {metric.data_infos[p['sample_idx']]['token'] for p in preds}
    assert written['results'] == {t: [] for t in tokens}


def test_upstream_nuscenes_metric_raises_on_no_detection(
        synthetic_nuscenes_cfg, val_truth):
    metric = _det_metric(synthetic_nuscenes_cfg, val_truth,
                         type='NuScenesMetric')
    preds = _predictions(val_truth, _nothing)
    metric.process({}, preds)
    with pytest.raises(Exception, match='Invalid box type: None'):
        metric.evaluate(len(preds))


def test_predictions_with_boxes_score_as_upstream(synthetic_nuscenes_cfg,
                                                  val_truth):
    """Imperfect predictions (boxes shifted, every third dropped, scores
    spread) get exactly mmdet3d's NuScenesMetric numbers."""
    def predict(boxes, labels):
        keep = torch.arange(len(labels)) % 3 != 2
        boxes = boxes[keep]
        boxes.tensor[:, 0] += 0.7
        n = int(keep.sum())
        return boxes, torch.linspace(0.9, 0.3, n), labels[keep]

    results = []
    for metric_type in ('EmptySafeNuScenesMetric', 'NuScenesMetric'):
        metric = _det_metric(synthetic_nuscenes_cfg, val_truth,
                             type=metric_type)
        preds = _predictions(val_truth, predict)
        metric.process({}, preds)
        results.append(metric.evaluate(len(preds)))
    assert 0.05 < results[0][DET_KEY + 'mAP'] < 0.95
    assert results[0] == pytest.approx(results[1], nan_ok=True)


def test_ground_truth_fed_back_through_val_evaluator(synthetic_nuscenes_cfg,
                                                     val_truth):
    """The config's val_evaluator list on the synthetic val split: ground
    truth as predictions gives mAP and NDS close to 1 and mIoU 1."""
    cfg = synthetic_nuscenes_cfg
    evaluator = Evaluator(copy.deepcopy(cfg.val_evaluator))
    evaluator.dataset_meta = val_truth[0]
    preds = _predictions(val_truth)
    for packed in preds:
        evaluator.process([packed], {})
    res = evaluator.evaluate(len(preds))
    assert res[DET_KEY + 'mAP'] > 0.99
    assert res[DET_KEY + 'NDS'] > 0.99
    for cls in val_truth[0]['classes']:
        assert res[f'{DET_KEY}{cls}_AP_dist_2.0'] > 0.99, cls
    assert res['map/mIoU'] == pytest.approx(1.0)
    assert {f'map/IoU.{c}' for c in val_truth[0]['map_classes']} <= set(res)
