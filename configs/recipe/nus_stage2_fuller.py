# BEVFusion recipe, stage 2 on nuScenes, FULLER: inter (MetaBalance on the
# shared BEV feature, relax=0.25) and intra (EqualNorm on the camera/LiDAR
# branch gradients), as configs/fuller/fuller_nus_fuller.py.
_base_ = ['./nus_stage2_naive.py']
optim_wrapper = dict(
    calibration=dict(
        inter=dict(type='MetaBalance', relax=0.25),
        intra=dict(type='EqualNorm')))
