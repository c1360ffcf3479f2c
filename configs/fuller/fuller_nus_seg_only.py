# nuScenes paper setting, single-task baseline: BEV map segmentation only.
_base_ = ['./fuller_nus_naive.py']
model = dict(bbox_head=None)
# One task, one metric.
val_evaluator = [{{_base_.seg_evaluator}}]
test_evaluator = val_evaluator
