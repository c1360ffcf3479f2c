# CPU setting, FULLER with MGDA-UB's direction (the min-norm point of the
# task gradients: conflicts with no task) scaled to the naive sum's norm
# (NormKeepingMGDA, target='sum'; docs/calibration.md).
_base_ = ['./fuller_cpu_intra.py']  # EqualNorm (intra), as fuller
optim_wrapper = dict(
    calibration=dict(inter=dict(type='NormKeepingMGDA', target='sum')))
