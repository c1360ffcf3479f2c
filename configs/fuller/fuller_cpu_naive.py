# CPU setting (synthetic nuScenes, 2 CPU cores), naive multi-task learning:
# detection + map segmentation, camera + LiDAR, task gradients summed, no
# modality calibration.
_base_ = [
    '../_base_/models/bevfusion_cpu.py',
    '../_base_/datasets/nuscenes_synth_cpu.py',
    '../_base_/schedules/fuller_cpu.py', '../_base_/default_runtime.py'
]
optim_wrapper = dict(
    calibration=dict(inter=dict(type='Sum'), intra=dict(type='Identity')))
