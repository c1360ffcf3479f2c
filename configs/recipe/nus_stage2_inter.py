# BEVFusion recipe, stage 2 on nuScenes, inter-gradient calibration only
# (IMTL-G on the shared BEV feature).
_base_ = ['./nus_stage2_naive.py']
optim_wrapper = dict(
    calibration=dict(inter=dict(type='IMTLG'), intra=dict(type='Identity')))
