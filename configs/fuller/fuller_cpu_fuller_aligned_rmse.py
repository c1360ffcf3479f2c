# CPU setting, FULLER with Aligned-MTL as the inter calibrator, its aligned
# (orthogonal, equal-norm) task gradients at the root-mean-square singular
# value, which keeps their total squared magnitude (scale_mode='rmse'; the
# paper's 'min' shrinks them to the smallest; docs/calibration.md).
_base_ = ['./fuller_cpu_intra.py']  # EqualNorm (intra), as fuller
optim_wrapper = dict(
    calibration=dict(inter=dict(type='AlignedMTL', scale_mode='rmse')))
