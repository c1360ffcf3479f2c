# nuScenes paper setting, inter-gradient calibration only, with FULLER's
# default calibrator: MetaBalance (relax=0.25) on the detection and
# segmentation gradients at the shared BEV feature.
_base_ = ['./fuller_nus_naive.py']
optim_wrapper = dict(
    calibration=dict(
        inter=dict(type='MetaBalance', relax=0.25),
        intra=dict(type='Identity')))
