# BEVFusion recipe, stage 2 at CPU scale, FULLER: IMTL-G + EqualNorm.
_base_ = ['./cpu_stage2_naive.py']
optim_wrapper = dict(
    calibration=dict(inter=dict(type='IMTLG'), intra=dict(type='EqualNorm')))
