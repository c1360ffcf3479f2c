# CPU setting, FULLER calibration, with mmdet3d's CenterHead as the detection
# head (the alternative to the TransFusion-style head).
_base_ = [
    '../_base_/models/bevfusion_cpu_centerhead.py',
    '../_base_/datasets/nuscenes_synth_cpu.py',
    '../_base_/schedules/fuller_cpu.py', '../_base_/default_runtime.py'
]
optim_wrapper = dict(
    calibration=dict(
        inter=dict(type='MetaBalance', relax=0.25),
        intra=dict(type='EqualNorm')))
