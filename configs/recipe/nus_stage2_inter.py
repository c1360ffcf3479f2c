# BEVFusion recipe, stage 2 on nuScenes, inter-gradient calibration only
# (MetaBalance on the shared BEV feature, relax=0.25).
_base_ = ['./nus_stage2_naive.py']
optim_wrapper = dict(
    calibration=dict(
        inter=dict(type='MetaBalance', relax=0.25),
        intra=dict(type='Identity')))
