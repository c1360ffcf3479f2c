# nuScenes paper setting, naive multi-task learning: detection + map
# segmentation, camera + LiDAR, task gradients summed, no modality calibration.
_base_ = [
    '../_base_/models/bevfusion_nus.py',
    '../_base_/datasets/nuscenes_multitask.py',
    '../_base_/schedules/fuller_nus_20e.py', '../_base_/nus_runtime.py'
]
optim_wrapper = dict(
    calibration=dict(inter=dict(type='Sum'), intra=dict(type='Identity')))
