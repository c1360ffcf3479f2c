# The CPU setting on the synthetic nuScenes set: small images, LiDAR key
# frames only, a 1 m map grid. Make the data first:
#   python tools/make_synthetic_nuscenes.py --out data/nuscenes-synth
#   python tools/create_data.py nuscenes --root-path data/nuscenes-synth \
#       --version v1.0-mini
_base_ = ['./nuscenes_multitask.py']

data_root = 'data/nuscenes-synth/'
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
map_xbound = [-50.0, 50.0, 1.0]  # 100 x 100 map grid
map_ybound = [-50.0, 50.0, 1.0]
image_size = [64, 176]  # final (H, W); the synthetic images are 480 x 270
class_names = {{_base_.class_names}}
map_classes = {{_base_.map_classes}}
cameras = {{_base_.cameras}}
input_modality = dict(use_lidar=True, use_camera=True)

_points = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5),
    # no extra sweeps: only sets column 4 to the time lag 0
    dict(
        type='LoadPointsFromMultiSweeps',
        sweeps_num=0,
        load_dim=5,
        use_dim=[0, 1, 2, 3, 4],
        pad_empty_sweeps=True,
        remove_close=True),
]
_map = dict(
    type='LoadBEVSegmentation',
    data_root=data_root,
    xbound=map_xbound,
    ybound=map_ybound,
    classes=map_classes)
# 480 x 270 -> x0.367 -> 176 x 99 -> bottom 64 rows
train_pipeline = [
    *_points,
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    dict(type='LoadMultiViewImages', cameras=cameras, to_float32=True),
    dict(
        type='MultiViewImageAug',
        final_dim=image_size,
        resize_lim=[0.35, 0.40],
        bot_pct_lim=[0.0, 0.0],
        rot_lim=[-5.4, 5.4],
        rand_flip=True,
        is_train=True),
    dict(
        type='BEVGlobalAug',
        rot_range=[-0.3927, 0.3927],
        scale_range=[0.9, 1.1],
        translation_std=[0.5, 0.5, 0.5],
        flip_ratio_x=0.5,
        flip_ratio_y=0.5,
        is_train=True),
    _map,
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
        resize_lim=[0.3667, 0.3667],
        bot_pct_lim=[0.0, 0.0],
        is_train=False),
    dict(type='BEVGlobalAug', is_train=False),
    _map,
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='PackMultiTaskInputs', keys=['points', 'img', 'gt_masks_bev']),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
# Single-task configs evaluate with one of these (det_only / seg_only).
det_evaluator = dict(
    type='NuScenesMetric',
    data_root=data_root,
    ann_file=data_root + 'nuscenes_infos_val.pkl',
    metric='bbox')
seg_evaluator = dict(type='BEVSegMetric', classes=map_classes)
val_evaluator = [det_evaluator, seg_evaluator]
test_evaluator = val_evaluator
