# BEVFusion recipe, stage 2 on nuScenes: camera + LiDAR detection + map
# segmentation, initialised from the stage-1 LiDAR-only checkpoint
# (load_from; the camera branch, fuser and map head start fresh), 6 epochs
# with CBGS, AdamW 2e-4 with cosine decay. Naive multi-task learning: task
# gradients summed, no modality calibration. Camera branch as upstream's
# fusion detector: depth-aware LSS (LiDAR depth fed to the depth net) and the
# concatenating LSS-FPN neck. The other variants
# (nus_stage2_<variant>.py) override only the calibration or the heads.
#   tools/dist_train.sh configs/recipe/nus_stage2_naive.py 8
# (another stage-1 checkpoint: --cfg-options load_from=PATH)
_base_ = [
    '../_base_/models/bevfusion_nus.py',
    '../_base_/datasets/nuscenes_multitask.py',
    '../_base_/schedules/bevfusion_fusion_6e.py',
    '../_base_/nus_runtime.py'
]
load_from = 'work_dirs/nus_stage1_lidar_det/epoch_20.pth'
model = dict(
    img_neck=dict(
        _delete_=True,
        type='GeneralizedLSSFPN',
        in_channels=[192, 384, 768],
        out_channels=256,
        start_level=0,
        num_outs=3,
        norm_cfg=dict(type='BN2d', requires_grad=True),
        act_cfg=dict(type='ReLU', inplace=True),
        upsample_cfg=dict(mode='bilinear', align_corners=False)),
    view_transform=dict(type='DepthLSSTransform'))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CBGSDataset',
        dataset={{_base_.train_dataloader.dataset}}))
optim_wrapper = dict(
    calibration=dict(inter=dict(type='Sum'), intra=dict(type='Identity')))
