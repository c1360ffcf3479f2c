# nuScenes paper setting, intra-gradient calibration only: the camera and LiDAR
# branch gradients are brought to their mean norm at the fuser (EqualNorm); the
# task gradients are summed.
_base_ = ['./fuller_nus_naive.py']
optim_wrapper = dict(
    calibration=dict(inter=dict(type='Sum'), intra=dict(type='EqualNorm')))
