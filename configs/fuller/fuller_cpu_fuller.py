# CPU setting (synthetic nuScenes, 2 CPU cores), FULLER: inter (MetaBalance on
# the shared BEV feature: each task gradient's norm moved a quarter of the way,
# relax=0.25, to the largest one) and intra (EqualNorm on the camera/LiDAR
# branch gradients) calibration.
# Why MetaBalance and not the paper's IMTL-G (fuller_cpu_fuller_imtlg.py): in
# the 3-seed ablation (docs/results.md, fixed evaluation) no calibrator kept
# detection within 1 mAP of naive while adding 5 mIoU; MetaBalance at
# relax=0.5 came closest (-6.7 mAP, +6.2 mIoU), IMTL-G cost 16.7 mAP for +6.6
# mIoU. Why relax=0.25: on 3 CPU seeds paired with naive it cost -3.9 / +6.3
# against -9.3 / +6.6 at 0.5, better for detection in every seed; chosen on
# the val split after the ablation; held-out seed 3: +9.3 mAP, -2.5 mIoU
# against 0.5.
_base_ = ['./fuller_cpu_naive.py']
optim_wrapper = dict(
    calibration=dict(
        inter=dict(type='MetaBalance', relax=0.25),
        intra=dict(type='EqualNorm')))
