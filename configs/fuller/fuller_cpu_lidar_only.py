# CPU setting, single-modality baseline: LiDAR only (no camera branch, no
# fuser), both tasks, task gradients summed.
_base_ = ['./fuller_cpu_naive.py']
model = dict(
    img_backbone=None,
    img_neck=None,
    view_transform=None,
    fusion_layer=None,
    pts_backbone=dict(in_channels=32))  # pts_middle_encoder.in_channels
