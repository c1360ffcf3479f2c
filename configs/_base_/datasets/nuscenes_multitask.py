# nuScenes 3D detection + BEV map segmentation, the paper setting
# (BEVFusion's camera+LiDAR recipe). Build the info files first:
#   python tools/create_data.py nuscenes --root-path data/nuscenes \
#       --version v1.0-trainval
# and unpack the map expansion (v1.3) into data/nuscenes/maps/expansion/.
dataset_type = 'FullerNuScenesDataset'
data_root = 'data/nuscenes/'
class_names = [
    'car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier',
    'motorcycle', 'bicycle', 'pedestrian', 'traffic_cone'
]
map_classes = [
    'drivable_area', 'ped_crossing', 'walkway', 'stop_line', 'carpark_area',
    'divider'
]
metainfo = dict(classes=class_names, map_classes=map_classes)
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
map_xbound = [-50.0, 50.0, 0.5]  # 200 x 200 map grid
map_ybound = [-50.0, 50.0, 0.5]
image_size = [256, 704]  # final (H, W) of every view
cameras = [
    'CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK',
    'CAM_BACK_LEFT', 'CAM_BACK_RIGHT'
]
num_sweeps = 9  # previous sweeps added to the key frame (10 in all)
input_modality = dict(use_lidar=True, use_camera=True)
backend_args = None
data_prefix = dict(
    pts='samples/LIDAR_TOP',
    sweeps='sweeps/LIDAR_TOP',
    **{cam: f'samples/{cam}'
       for cam in cameras})

_points = [
    dict(
        type='LoadPointsFromFile',
        coord_type='LIDAR',
        load_dim=5,
        use_dim=5,
        backend_args=backend_args),
    # column 4 becomes the time lag (0 for the key frame)
    dict(
        type='LoadPointsFromMultiSweeps',
        sweeps_num=num_sweeps,
        load_dim=5,
        use_dim=[0, 1, 2, 3, 4],
        pad_empty_sweeps=True,
        remove_close=True,
        backend_args=backend_args),
]
_map = dict(
    type='LoadBEVSegmentation',
    data_root=data_root,
    xbound=map_xbound,
    ybound=map_ybound,
    classes=map_classes)
train_pipeline = [
    *_points,
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    dict(type='LoadMultiViewImages', cameras=cameras, to_float32=True),
    dict(
        type='MultiViewImageAug',
        final_dim=image_size,
        resize_lim=[0.38, 0.55],
        bot_pct_lim=[0.0, 0.0],
        rot_lim=[-5.4, 5.4],
        rand_flip=True,
        is_train=True),
    dict(
        type='BEVGlobalAug',
        rot_range=[-0.3927, 0.3927],  # +-22.5 deg
        scale_range=[0.9, 1.1],
        translation_std=[0.5, 0.5, 0.5],
        flip_ratio_x=0.5,
        flip_ratio_y=0.5,
        is_train=True),
    _map,  # after the BEV aug: labels follow it through lidar_aug_matrix
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes=class_names),
    dict(type='PointShuffle'),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    *_points,
    dict(type='LoadMultiViewImages', cameras=cameras, to_float32=True),
    dict(
        type='MultiViewImageAug',
        final_dim=image_size,
        resize_lim=[0.48, 0.48],
        bot_pct_lim=[0.0, 0.0],
        is_train=False),
    dict(type='BEVGlobalAug', is_train=False),
    _map,
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='PackMultiTaskInputs', keys=['points', 'img', 'gt_masks_bev']),
]

_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    modality=input_modality,
    data_prefix=data_prefix,
    box_type_3d='LiDAR',
    use_valid_flag=True,
    backend_args=backend_args)
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        **_dataset,
        ann_file='nuscenes_infos_train.pkl',
        pipeline=train_pipeline,
        filter_empty_gt=False,
        test_mode=False))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **_dataset,
        ann_file='nuscenes_infos_val.pkl',
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = val_dataloader

# Both tasks from one list: nuScenes detection (mAP, NDS, per-class AP via
# nuscenes-devkit) and the BEV map mIoU.
# Single-task configs evaluate with one of these (det_only / seg_only).
det_evaluator = dict(
    type='NuScenesMetric',
    data_root=data_root,
    ann_file=data_root + 'nuscenes_infos_val.pkl',
    metric='bbox',
    backend_args=backend_args)
seg_evaluator = dict(type='BEVSegMetric', classes=map_classes)
val_evaluator = [det_evaluator, seg_evaluator]
test_evaluator = val_evaluator
