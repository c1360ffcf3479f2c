# nuScenes paper setting, FULLER: inter (MetaBalance on the shared BEV
# feature, relax=0.25) and intra (EqualNorm on the camera/LiDAR branch
# gradients) calibration. MetaBalance, not the paper's IMTL-G
# (fuller_nus_fuller_imtlg.py): the best detection/map trade-off of the
# 3-seed ablation in the CPU setting (docs/results.md).
_base_ = ['./fuller_nus_naive.py']
optim_wrapper = dict(
    calibration=dict(
        inter=dict(type='MetaBalance', relax=0.25),
        intra=dict(type='EqualNorm')))
