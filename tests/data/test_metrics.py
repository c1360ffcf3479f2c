"""BEVSegMetric (map mIoU protocol) and the config's val_evaluator list
(NuScenesMetric + BEVSegMetric) running for real on the synthetic set."""
import copy

import numpy as np
import pytest
import torch
from mmdet3d.utils import register_all_modules
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

import fuller  # noqa: F401
from fuller.evaluation import BEVSegMetric, confusion_counts
from fuller.registry import DATASETS

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


def test_ground_truth_fed_back_through_val_evaluator(synthetic_nuscenes_cfg):
    """The config's val_evaluator list on the synthetic val split: ground
    truth as predictions gives mAP and NDS close to 1 and mIoU 1."""
    cfg = synthetic_nuscenes_cfg
    val = DATASETS.build(copy.deepcopy(cfg.val_dataloader.dataset))
    gt_ds = DATASETS.build(dict(copy.deepcopy(cfg.val_dataloader.dataset),
                                test_mode=False, pipeline=[]))
    evaluator = Evaluator(copy.deepcopy(cfg.val_evaluator))
    evaluator.dataset_meta = val.metainfo
    for i in range(len(val)):
        packed = val[i]['data_samples']
        info = gt_ds.get_data_info(i)
        ann = info['ann_info']
        labels = torch.as_tensor(ann['gt_labels_3d'])
        packed.pred_instances_3d = InstanceData(
            bboxes_3d=ann['gt_bboxes_3d'], scores_3d=torch.ones(len(labels)),
            labels_3d=labels)
        packed.pred_instances = InstanceData()
        packed.pred_masks_bev = packed.gt_masks_bev.float()
        assert packed.sample_idx == info['sample_idx']
        evaluator.process([packed.to_dict()], {})
    res = evaluator.evaluate(len(val))
    key = 'NuScenes metric/pred_instances_3d_NuScenes/'
    assert res[key + 'mAP'] > 0.99
    assert res[key + 'NDS'] > 0.99
    for cls in val.metainfo['classes']:
        assert res[f'{key}{cls}_AP_dist_2.0'] > 0.99, cls
    assert res['map/mIoU'] == pytest.approx(1.0)
    assert {f'map/IoU.{c}' for c in val.metainfo['map_classes']} <= set(res)
