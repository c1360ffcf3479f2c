# CPU setting, FULLER with a magnitude-keeping inter calibrator: IMTL-G's
# direction (equal projections on every task gradient) with the norm of the
# naive sum, so detection's step into the shared BEV feature is not shrunk to
# about the map task's (docs/calibration.md).
_base_ = ['./fuller_cpu_intra.py']  # EqualNorm (intra), as fuller
optim_wrapper = dict(
    calibration=dict(inter=dict(type='NormKeepingIMTLG', target='sum')))
