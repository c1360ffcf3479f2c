# BEVFusion recipe, stage 2 at CPU scale, FULLER: MetaBalance + EqualNorm.
_base_ = ['./cpu_stage2_naive.py']
optim_wrapper = dict(
    calibration=dict(
        inter=dict(type='MetaBalance', relax=0.25),
        intra=dict(type='EqualNorm')))
