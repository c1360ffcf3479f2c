# CPU setting (synthetic nuScenes, 2 CPU cores), FULLER: inter (MetaBalance on
# the shared BEV feature: each task gradient's norm moved halfway, relax=0.5,
# to the largest one) and intra (EqualNorm on the camera/LiDAR branch
# gradients) calibration.
# Why MetaBalance and not the paper's IMTL-G (fuller_cpu_fuller_imtlg.py): in
# the 3-seed ablation (docs/results.md) no calibrator kept detection within
# 1 mAP of naive while adding 5 mIoU; MetaBalance came closest (-2.1 mAP,
# +6.0 mIoU), IMTL-G cost 8.4 mAP for +6.8 mIoU. relax=0.5 was set before
# any run, not tuned.
_base_ = ['./fuller_cpu_naive.py']
optim_wrapper = dict(
    calibration=dict(
        inter=dict(type='MetaBalance', relax=0.5),
        intra=dict(type='EqualNorm')))
