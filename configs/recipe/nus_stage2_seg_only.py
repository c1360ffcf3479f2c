# BEVFusion recipe, stage 2 on nuScenes, single task: camera + LiDAR map
# segmentation only, from the stage-1 LiDAR branch.
_base_ = ['./nus_stage2_naive.py']
# plain LSS (no LiDAR depth) for the map-only model, as upstream's
model = dict(bbox_head=None, view_transform=dict(type='LSSTransform'))
val_evaluator = [{{_base_.seg_evaluator}}]
test_evaluator = val_evaluator
