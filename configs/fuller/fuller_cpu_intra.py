# CPU setting (synthetic nuScenes, 2 CPU cores), intra-gradient calibration
# only: the camera and LiDAR branch gradients are brought to their mean norm at
# the fuser (EqualNorm); the task gradients are summed.
_base_ = ['./fuller_cpu_naive.py']
optim_wrapper = dict(
    calibration=dict(inter=dict(type='Sum'), intra=dict(type='EqualNorm')))
