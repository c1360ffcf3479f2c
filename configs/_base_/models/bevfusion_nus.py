# Multi-task BEVFusion, nuScenes paper setting (BEVFusion's fusion model):
# 6 cameras at 256x704, Swin-T + FPN (TopDownFPN) + LSS (118 depth bins,
# 32x88 feature map, 80 channels, 0.3 m grid pooled to 180x180); LiDAR
# 0.075 m voxels with a sparse-conv encoder (needs CUDA + a sparse-conv
# backend; its 41x1440x1440 z, y, x grid also ends at 180x180); BEV range
# [-54, 54] m; SECOND + SECONDFPN; TransFusion-style head; map segmentation
# to 200x200 at 0.5 m.
model_point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
model_voxel_size = [0.075, 0.075, 0.2]
model_map_classes = [
    'drivable_area', 'ped_crossing', 'walkway', 'stop_line', 'carpark_area',
    'divider'
]
model = dict(
    type='FullerBEVFusion',
    data_preprocessor=dict(
        type='FullerDataPreprocessor',
        # ImageNet RGB statistics; images are loaded BGR (mmcv), and the
        # pretrained Swin-T expects RGB: flip the channels here.
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        voxel=True,
        voxel_type='hard',
        # 'torch': pure-torch hard voxeliser, same output as mmcv's kernel
        # (checked tensor for tensor) without its serial CUDA kernel or its
        # dense-grid clear on CPU; 'mmcv': mmcv's compiled Voxelization
        voxelizer='torch',
        voxel_layer=dict(
            max_num_points=10,
            point_cloud_range=model_point_cloud_range,
            voxel_size=model_voxel_size,
            max_voxels=(120000, 160000))),
    img_backbone=dict(
        type='mmdet.SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=[1, 2, 3],
        with_cp=False,
        convert_weights=True,
        # ImageNet Swin-T; needs network access at init_weights() time.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/SwinTransformer/storage/releases/'
            'download/v1.0.0/swin_tiny_patch4_window7_224.pth')),
    # All three Swin levels feed the top-down path; only the level the view
    # transform reads gets an output conv (every parameter has a gradient,
    # so DDP needs no find_unused_parameters).
    img_neck=dict(
        type='TopDownFPN',
        in_channels=[192, 384, 768],
        out_channels=256,
        out_levels=[0],
        norm_cfg=dict(type='BN2d', requires_grad=True),
        act_cfg=dict(type='ReLU', inplace=True)),
    img_neck_level=0,  # neck output 0 (stride 8): 256x704 -> 32x88
    view_transform=dict(
        type='LSSTransform',
        in_channels=256,
        out_channels=80,
        image_size=[256, 704],
        feature_size=[32, 88],
        xbound=[-54.0, 54.0, 0.3],
        ybound=[-54.0, 54.0, 0.3],
        zbound=[-10.0, 10.0, 20.0],
        dbound=[1.0, 60.0, 0.5],
        downsample=2),
    pts_voxel_encoder=dict(type='HardSimpleVFE', num_features=5),
    pts_middle_encoder=dict(
        type='BEVSparseEncoder',
        in_channels=5,
        sparse_shape=[41, 1440, 1440],
        order=('conv', 'norm', 'act'),
        norm_cfg=dict(type='BN1d', eps=1e-3, momentum=0.01),
        encoder_channels=((16, 16, 32), (32, 32, 64), (64, 64, 128), (128,
                                                                      128)),
        # mmdet3d orders paddings z, y, x (upstream BEVFusion: x, y, z): the
        # third stage pads y and x, not z, so the grid ends at 180 x 180.
        encoder_paddings=((0, 0, 1), (0, 0, 1), (0, 0, [0, 1, 1]), (0, 0)),
        block_type='basicblock'),
    fusion_layer=dict(
        type='ConvFuser', in_channels=[80, 256], out_channels=256),
    pts_backbone=dict(
        type='SECOND',
        in_channels=256,
        out_channels=[128, 256],
        layer_nums=[5, 5],
        layer_strides=[1, 2],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        conv_cfg=dict(type='Conv2d', bias=False)),
    pts_neck=dict(
        type='SECONDFPN',
        in_channels=[128, 256],
        out_channels=[256, 256],
        upsample_strides=[1, 2],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        upsample_cfg=dict(type='deconv', bias=False),
        use_conv_for_no_stride=True),
    bbox_head=dict(
        type='TransFusionHead',
        in_channels=512,
        num_classes=10,
        num_proposals=200,
        hidden_channels=128,
        num_heads=8,
        ffn_channels=256,
        head_channels=64,
        num_decoder_layers=1,
        # query init as upstream: 3x3 local maxima of the heatmap, 1x1 for
        # the small, closely packed pedestrians and traffic cones
        nms_kernel_size=3,
        class_names=[
            'car', 'truck', 'construction_vehicle', 'bus', 'trailer',
            'barrier', 'motorcycle', 'bicycle', 'pedestrian', 'traffic_cone'
        ],
        class_nms_kernel_sizes=dict(pedestrian=1, traffic_cone=1),
        bbox_coder=dict(
            type='TransFusionBBoxCoder',
            pc_range=model_point_cloud_range,
            voxel_size=model_voxel_size[:2],
            out_size_factor=8,
            post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0]),
        train_cfg=dict(
            assigner=dict(
                type='mmdet.HungarianAssigner',
                match_costs=[
                    dict(type='mmdet.FocalLossCost', gamma=2.0, alpha=0.25,
                         weight=0.15),
                    # centres normalised by the box coder's pc_range
                    dict(type='BEVCenterL1Cost', weight=0.25),
                    dict(type='IoU3DCost', weight=0.25)
                ]),
            code_weights=[1.0] * 8 + [0.2, 0.2],
            gaussian_overlap=0.1,
            min_radius=2),
        test_cfg=dict(score_threshold=0.0, max_num=200)),
    seg_head=dict(
        type='BEVSegHead',
        in_channels=512,
        classes=model_map_classes,
        input_bounds=[[-54.0, 54.0, 0.6], [-54.0, 54.0, 0.6]],
        output_bounds=[[-50.0, 50.0, 0.5], [-50.0, 50.0, 0.5]],
        mid_channels=512,
        # per-class sigmoid focal loss, BEVFusion's map loss
        loss_focal=dict(
            type='BEVSegFocalLoss', gamma=2.0, alpha=-1.0, loss_weight=1.0),
        # optional per-class soft Dice term; loss_weight 0 keeps it off (the
        # paper's head; docs/results.md has a run with 1.0)
        loss_dice=dict(type='BEVSegDiceLoss', smooth=1.0, loss_weight=0.0)))
