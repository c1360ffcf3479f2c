# BEVFusion recipe, stage 2 on nuScenes, FULLER: inter (IMTL-G on the shared
# BEV feature) and intra (EqualNorm on the camera/LiDAR branch gradients).
_base_ = ['./nus_stage2_naive.py']
optim_wrapper = dict(
    calibration=dict(inter=dict(type='IMTLG'), intra=dict(type='EqualNorm')))
