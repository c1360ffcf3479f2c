# CPU setting (synthetic nuScenes, 2 CPU cores), FULLER: inter (IMTL-G on the
# shared BEV feature) and intra (EqualNorm on the camera/LiDAR branch
# gradients) calibration.
_base_ = ['./fuller_cpu_naive.py']
optim_wrapper = dict(
    calibration=dict(inter=dict(type='IMTLG'), intra=dict(type='EqualNorm')))
