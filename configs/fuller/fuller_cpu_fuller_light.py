# CPU setting, FULLER calibration (inter IMTL-G + intra EqualNorm) with the
# lightweight detection and segmentation heads.
_base_ = [
    '../_base_/models/bevfusion_cpu_light.py',
    '../_base_/datasets/nuscenes_synth_cpu.py',
    '../_base_/schedules/fuller_cpu.py', '../_base_/default_runtime.py'
]
optim_wrapper = dict(
    calibration=dict(inter=dict(type='IMTLG'), intra=dict(type='EqualNorm')))
