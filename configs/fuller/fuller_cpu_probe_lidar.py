# CPU setting, unimodal probe of the LiDAR branch: the LiDAR branch of a
# trained camera + LiDAR model (pts_voxel_encoder, pts_middle_encoder) is
# loaded and frozen, and a fresh decoder and both heads train on its BEV
# feature alone (see fuller_cpu_probe_camera.py).
_base_ = ['./fuller_cpu_lidar_only.py']
model = dict(frozen_branch=dict(checkpoint=None))
