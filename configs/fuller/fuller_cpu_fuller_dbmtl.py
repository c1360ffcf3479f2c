# CPU setting, FULLER with DB-MTL's gradient-magnitude balancing as the inter
# calibrator: every task gradient raised to the largest task-gradient norm,
# then summed (Lin et al. 2023; docs/calibration.md).
_base_ = ['./fuller_cpu_intra.py']  # EqualNorm (intra), as fuller
optim_wrapper = dict(calibration=dict(inter=dict(type='DBMTL')))
