# CPU setting, unimodal probe of the camera branch: the camera branch of a
# trained camera + LiDAR model (img_backbone, img_neck, view_transform) is
# loaded and frozen, and a fresh decoder and both heads train on its BEV
# feature alone. What the probe reaches is what the branch learned.
#   python tools/train.py configs/fuller/fuller_cpu_probe_camera.py \
#       --cfg-options model.frozen_branch.checkpoint=work_dirs/x/epoch_12.pth
# (tools/run_demo.py --probe and tools/modality_report.py --probe do this.)
_base_ = ['./fuller_cpu_camera_only.py']
model = dict(frozen_branch=dict(checkpoint=None))
