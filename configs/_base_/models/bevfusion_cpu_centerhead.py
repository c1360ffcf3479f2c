# CPU setting with mmdet3d's CenterHead (CenterPoint) as the detection head
# instead of the TransFusion-style head: one task group with all 10 classes.
_base_ = ['./bevfusion_cpu.py']
model = dict(
    bbox_head=dict(
        _delete_=True,
        type='BEVCenterHead',
        in_channels=64,
        tasks=[
            dict(
                num_class=10,
                class_names=[
                    'car', 'truck', 'construction_vehicle', 'bus', 'trailer',
                    'barrier', 'motorcycle', 'bicycle', 'pedestrian',
                    'traffic_cone'
                ])
        ],
        common_heads=dict(
            reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)),
        share_conv_channel=32,
        bbox_coder=dict(
            type='CenterPointBBoxCoder',
            post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0],
            max_num=100,
            score_threshold=0.05,
            out_size_factor=1,
            voxel_size=[0.8, 0.8],
            pc_range=[-51.2, -51.2],
            code_size=9),
        separate_head=dict(
            type='SeparateHead', init_bias=-2.19, final_kernel=3),
        loss_cls=dict(type='mmdet.GaussianFocalLoss', reduction='mean'),
        loss_bbox=dict(
            type='mmdet.L1Loss', reduction='mean', loss_weight=0.25),
        norm_bbox=True,
        train_cfg=dict(
            grid_size=[128, 128, 1],
            voxel_size=[0.8, 0.8, 8.0],
            out_size_factor=1,
            dense_reg=1,
            gaussian_overlap=0.1,
            max_objs=500,
            min_radius=2,
            code_weights=[1.0] * 8 + [0.2, 0.2],
            point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]),
        test_cfg=dict(
            post_center_limit_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0],
            max_per_img=100,
            max_pool_nms=False,
            min_radius=[4, 12, 10, 1, 0.85, 0.175],
            score_threshold=0.05,
            out_size_factor=1,
            voxel_size=[0.8, 0.8],
            pc_range=[-51.2, -51.2],
            nms_type='rotate',
            pre_max_size=1000,
            post_max_size=83,
            nms_thr=0.2)))
