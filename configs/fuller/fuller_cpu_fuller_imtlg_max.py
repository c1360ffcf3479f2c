# CPU setting, FULLER with IMTL-G's direction scaled to the largest task
# gradient's norm (NormKeepingIMTLG, target='max'; docs/calibration.md).
_base_ = ['./fuller_cpu_intra.py']  # EqualNorm (intra), as fuller
optim_wrapper = dict(
    calibration=dict(inter=dict(type='NormKeepingIMTLG', target='max')))
