# CPU setting, FULLER with MetaBalance as the inter calibrator: each task
# gradient's magnitude moved halfway (relax=0.5, set before any run, not
# tuned) to the largest one, so detection keeps a larger share of the shared
# backbone's step than under IMTL-G's equal shares (docs/calibration.md).
_base_ = ['./fuller_cpu_fuller.py']
optim_wrapper = dict(
    calibration=dict(inter=dict(type='MetaBalance', relax=0.5)))
