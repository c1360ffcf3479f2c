# BEVFusion recipe, stage 2 at CPU scale: camera + LiDAR detection + map
# segmentation from the stage-1 checkpoint (cpu_stage1_lidar_det.py), with
# CBGS, 2 epochs of cosine decay from a lower learning rate, the depth-aware
# LSS and the LSS-FPN neck of the paper's stage 2; naive multi-task
# learning.
#   python tools/train.py configs/recipe/cpu_stage2_naive.py
_base_ = ['../fuller/fuller_cpu_naive.py']
load_from = 'work_dirs/cpu_stage1_lidar_det/epoch_4.pth'
model = dict(
    img_neck=dict(
        _delete_=True,
        type='GeneralizedLSSFPN',
        in_channels=[64, 128, 256],
        out_channels=64,
        num_outs=3,
        upsample_cfg=dict(mode='bilinear', align_corners=False)),
    view_transform=dict(type='DepthLSSTransform'))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CBGSDataset',
        dataset={{_base_.train_dataloader.dataset}}))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
max_epochs = 2
param_scheduler = [
    dict(type='LinearLR', start_factor=0.33333333, by_epoch=False, begin=0,
         end=10),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs,
         end=max_epochs, by_epoch=True, eta_min_ratio=1e-4,
         convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
