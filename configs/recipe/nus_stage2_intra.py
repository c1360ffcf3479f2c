# BEVFusion recipe, stage 2 on nuScenes, intra-gradient calibration only
# (EqualNorm on the camera/LiDAR branch gradients; task gradients summed).
_base_ = ['./nus_stage2_naive.py']
optim_wrapper = dict(
    calibration=dict(inter=dict(type='Sum'), intra=dict(type='EqualNorm')))
