# nuScenes paper setting, FULLER calibration (inter IMTL-G + intra EqualNorm)
# with the lightweight detection and segmentation heads.
_base_ = [
    '../_base_/models/bevfusion_nus_light.py',
    '../_base_/datasets/nuscenes_multitask.py',
    '../_base_/schedules/fuller_nus_20e.py', '../_base_/default_runtime.py'
]
optim_wrapper = dict(
    calibration=dict(inter=dict(type='IMTLG'), intra=dict(type='EqualNorm')))
