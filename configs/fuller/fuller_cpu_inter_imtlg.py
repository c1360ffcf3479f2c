# CPU setting, the paper's inter-gradient calibration only: IMTL-G weights the
# detection and segmentation gradients on the shared BEV feature.
_base_ = ['./fuller_cpu_naive.py']
optim_wrapper = dict(
    calibration=dict(inter=dict(type='IMTLG'), intra=dict(type='Identity')))
