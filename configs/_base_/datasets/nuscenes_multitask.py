# nuScenes 3D detection + BEV map segmentation, the paper setting
# (BEVFusion's camera+LiDAR recipe). Build the info files first:
#   python tools/create_data.py nuscenes --root-path data/nuscenes \
#       --version v1.0-trainval
# and unpack the map expansion (v1.3) into data/nuscenes/maps/expansion/.
# The pipelines come from fuller.datasets.pipelines.multitask_pipelines
# (one builder for every dataset config; see docs/data.md for each step).
# (a call, not an import statement: mmengine would parse the file as a
# lazy-import config otherwise)
multitask_pipelines = __import__(
    'fuller.datasets.pipelines', fromlist=['_']).multitask_pipelines

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
input_modality = dict(use_lidar=True, use_camera=True)
backend_args = None
data_prefix = dict(
    pts='samples/LIDAR_TOP',
    sweeps='sweeps/LIDAR_TOP',
    CAM_FRONT='samples/CAM_FRONT',
    CAM_FRONT_RIGHT='samples/CAM_FRONT_RIGHT',
    CAM_FRONT_LEFT='samples/CAM_FRONT_LEFT',
    CAM_BACK='samples/CAM_BACK',
    CAM_BACK_LEFT='samples/CAM_BACK_LEFT',
    CAM_BACK_RIGHT='samples/CAM_BACK_RIGHT')

# 1600 x 900 images -> x0.38..0.55 (test 0.48) -> bottom 256 x 704 crop;
# 9 previous LiDAR sweeps (10 in all); BEV rot +-45 deg (upstream BEVFusion's
# +-0.7854 rad), scale 0.9-1.1, translation std 0.5 m, x/y flips.
# drivable_area labels: the map's drivable_area layer (MIT BEVFusion's
# default); 'road_segment+lane' gives the union of those two layers instead.
bev_rot_range = [-0.78539816, 0.78539816]
drivable_area_source = 'drivable_area'
train_pipeline, test_pipeline = multitask_pipelines(
    data_root=data_root,
    point_cloud_range=point_cloud_range,
    image_size=image_size,
    resize_lim=[0.38, 0.55],
    test_resize=0.48,
    map_xbound=map_xbound,
    map_ybound=map_ybound,
    num_sweeps=9,
    bev_rot_range=bev_rot_range,
    drivable_area_source=drivable_area_source,
    class_names=class_names,
    map_classes=map_classes,
    cameras=cameras,
    backend_args=backend_args)

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='nuscenes_infos_train.pkl',
        metainfo=metainfo,
        modality=input_modality,
        data_prefix=data_prefix,
        pipeline=train_pipeline,
        box_type_3d='LiDAR',
        use_valid_flag=True,
        filter_empty_gt=False,
        test_mode=False,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='nuscenes_infos_val.pkl',
        metainfo=metainfo,
        modality=input_modality,
        data_prefix=data_prefix,
        pipeline=test_pipeline,
        box_type_3d='LiDAR',
        use_valid_flag=True,
        test_mode=True,
        backend_args=backend_args))
test_dataloader = val_dataloader

# Both tasks from one list: nuScenes detection (mAP, NDS, per-class AP via
# nuscenes-devkit) and the BEV map IoU per class + mIoU. Single-task configs
# evaluate with one of the two (det_only / seg_only).
det_evaluator = dict(
    type='EmptySafeNuScenesMetric',
    data_root=data_root,
    ann_file=data_root + 'nuscenes_infos_val.pkl',
    metric='bbox',
    backend_args=backend_args)
seg_evaluator = dict(type='BEVSegMetric', classes=map_classes)
val_evaluator = [det_evaluator, seg_evaluator]
test_evaluator = val_evaluator
