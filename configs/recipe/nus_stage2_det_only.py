# BEVFusion recipe, stage 2 on nuScenes, single task: camera + LiDAR
# detection only (upstream's fusion model).
_base_ = ['./nus_stage2_naive.py']
model = dict(seg_head=None)
val_evaluator = [{{_base_.det_evaluator}}]
test_evaluator = val_evaluator
