# BEVFusion recipe, stage 1 on nuScenes: LiDAR-only TransFusion detection
# (sparse-conv LiDAR branch, SECOND + SECONDFPN, TransFusion head; no camera
# branch, no map head), 20 epochs with CBGS, GT-paste switched off for the
# last 5 epochs (mmdet3d's DisableObjectSampleHook), upstream's cyclic AdamW
# schedule. 8 GPUs x 4 samples:
#   tools/dist_train.sh configs/recipe/nus_stage1_lidar_det.py 8
# Its last checkpoint is what stage 2 loads (configs/recipe/nus_stage2_*.py).
_base_ = [
    '../_base_/models/bevfusion_nus.py',
    '../_base_/datasets/nuscenes_lidar_det.py',
    '../_base_/schedules/bevfusion_lidar_20e.py',
    '../_base_/nus_runtime.py'
]
model = dict(
    img_backbone=None,
    img_neck=None,
    view_transform=None,
    fusion_layer=None,
    seg_head=None)
custom_hooks = [
    dict(type='GradientCalibrationHook', interval=10),
    dict(type='DisableObjectSampleHook', disable_after_epoch=15)
]
default_hooks = dict(checkpoint=dict(interval=5))
