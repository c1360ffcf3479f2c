# Multi-task BEVFusion, CPU setting: small enough to train on 2 CPU cores.
# Matches configs/_base_/datasets/nuscenes_synth_cpu.py: 6 cameras at 64x176,
# point cloud range [-51.2, 51.2] m, map grid [-50, 50] m at 1.0 m (100x100).
# Camera: ResNet-18 layout at half width (base_channels=32, from scratch) +
# FPN + LSS to a 128x128 BEV grid (0.8 m). LiDAR: 0.8 m pillars.
# Decoder: SECOND + SECONDFPN to 64x64 (1.6 m). Heads: TransFusion-style
# detection + BEV map segmentation.
model_point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
model_voxel_size = [0.8, 0.8, 8.0]
model_map_classes = [
    'drivable_area', 'ped_crossing', 'walkway', 'stop_line', 'carpark_area',
    'divider'
]
model = dict(
    type='FullerBEVFusion',
    data_preprocessor=dict(
        type='FullerDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=False,
        voxel=True,
        voxel_type='hard',
        voxel_layer=dict(
            max_num_points=20,
            point_cloud_range=model_point_cloud_range,
            voxel_size=model_voxel_size,
            max_voxels=(16000, 16000))),
    img_backbone=dict(
        type='mmdet.ResNet',
        depth=18,
        base_channels=32,
        num_stages=4,
        out_indices=(1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch'),
    img_neck=dict(
        type='mmdet.FPN',
        in_channels=[64, 128, 256],
        out_channels=64,
        num_outs=3),
    img_neck_level=0,  # stride 8: 64x176 -> 8x22
    view_transform=dict(
        type='LSSTransform',
        in_channels=64,
        out_channels=32,
        image_size=[64, 176],
        feature_size=[8, 22],
        xbound=[-51.2, 51.2, 0.8],
        ybound=[-51.2, 51.2, 0.8],
        zbound=[-10.0, 10.0, 20.0],
        dbound=[1.0, 60.0, 1.0],
        downsample=1),
    pts_voxel_encoder=dict(
        type='PillarFeatureNet',
        in_channels=5,
        feat_channels=[32],
        with_distance=False,
        voxel_size=model_voxel_size,
        point_cloud_range=model_point_cloud_range,
        norm_cfg=dict(type='BN1d', eps=1e-3, momentum=0.01),
        legacy=False),
    pts_middle_encoder=dict(
        type='BEVPointPillarsScatter', in_channels=32,
        output_shape=[128, 128]),
    fusion_layer=dict(type='ConvFuser', in_channels=[32, 32], out_channels=32),
    pts_backbone=dict(
        type='SECOND',
        in_channels=32,
        out_channels=[32, 64],
        layer_nums=[2, 2],
        layer_strides=[2, 2],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        conv_cfg=dict(type='Conv2d', bias=False)),
    pts_neck=dict(
        type='SECONDFPN',
        in_channels=[32, 64],
        out_channels=[32, 32],
        upsample_strides=[1, 2],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        upsample_cfg=dict(type='deconv', bias=False),
        use_conv_for_no_stride=True),
    bbox_head=dict(
        type='TransFusionHead',
        in_channels=64,
        num_classes=10,
        num_proposals=64,
        hidden_channels=32,
        num_heads=4,
        ffn_channels=64,
        head_channels=16,
        num_decoder_layers=1,
        bbox_coder=dict(
            type='TransFusionBBoxCoder',
            pc_range=model_point_cloud_range,
            voxel_size=model_voxel_size[:2],
            out_size_factor=2,
            post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0]),
        train_cfg=dict(
            assigner=dict(
                type='mmdet.HungarianAssigner',
                match_costs=[
                    dict(type='mmdet.FocalLossCost', gamma=2.0, alpha=0.25,
                         weight=0.15),
                    dict(type='BEVCenterL1Cost', weight=0.25),
                    dict(type='IoU3DCost', weight=0.25)
                ]),
            code_weights=[1.0] * 8 + [0.2, 0.2],
            gaussian_overlap=0.1,
            min_radius=2),
        test_cfg=dict(score_threshold=0.0, max_num=64)),
    seg_head=dict(
        type='BEVSegHead',
        in_channels=64,
        classes=model_map_classes,
        input_bounds=[[-51.2, 51.2, 1.6], [-51.2, 51.2, 1.6]],
        output_bounds=[[-50.0, 50.0, 1.0], [-50.0, 50.0, 1.0]],
        mid_channels=64))
