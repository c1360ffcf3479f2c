# CPU setting (synthetic nuScenes, 2 CPU cores), inter-gradient calibration
# only, with FULLER's default calibrator: MetaBalance (relax=0.25) on the
# detection and segmentation gradients at the shared BEV feature. The paper's
# IMTL-G alone: fuller_cpu_inter_imtlg.py.
_base_ = ['./fuller_cpu_naive.py']
optim_wrapper = dict(
    calibration=dict(
        inter=dict(type='MetaBalance', relax=0.25),
        intra=dict(type='Identity')))
