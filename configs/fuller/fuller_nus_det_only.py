# nuScenes paper setting, single-task baseline: 3D detection only (no seg head,
# so there is nothing to calibrate across tasks).
_base_ = ['./fuller_nus_naive.py']
model = dict(seg_head=None)
# One task, one metric.
val_evaluator = [{{_base_.det_evaluator}}]
test_evaluator = val_evaluator
