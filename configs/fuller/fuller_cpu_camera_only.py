# CPU setting, single-modality baseline: camera only (no LiDAR branch, no
# fuser), both tasks, task gradients summed.
_base_ = ['./fuller_cpu_naive.py']
model = dict(
    data_preprocessor=dict(voxel=False),
    pts_voxel_encoder=None,
    pts_middle_encoder=None,
    fusion_layer=None,
    pts_backbone=dict(in_channels=32))  # view_transform.out_channels
