# CPU setting, FULLER with a magnitude-keeping inter calibrator: IMTL-G's
# direction (equal projections on every task gradient) with the norm of the
# naive sum, so detection's step into the shared BEV feature is not shrunk to
# about the map task's (docs/calibration.md). Intra: EqualNorm, as fuller.
_base_ = ['./fuller_cpu_fuller.py']
optim_wrapper = dict(
    calibration=dict(inter=dict(type='NormKeepingIMTLG', target='sum')))
