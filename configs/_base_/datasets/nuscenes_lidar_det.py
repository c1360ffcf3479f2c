# nuScenes, LiDAR-only 3D detection: stage 1 of the BEVFusion recipe. As
# upstream: 10 sweeps, GT-paste (ObjectSample from the GT database that
# tools/create_data.py writes: nuscenes_dbinfos_train.pkl and
# nuscenes_gt_database/ in the data root), BEV rot +-45 deg, scale 0.9-1.1,
# translation std 0.5 m, flips, and class-balanced grouping and sampling
# (mmdet3d's CBGSDataset) of the train split. No images, no map labels.
# (calls, not import statements: mmengine would parse the file as a
# lazy-import config otherwise)
_base_ = ['./nuscenes_multitask.py']
_pipelines = __import__('fuller.datasets.pipelines', fromlist=['_'])
multitask_pipelines = _pipelines.multitask_pipelines
gt_paste_sampler = _pipelines.gt_paste_sampler

data_root = 'data/nuscenes/'
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
input_modality = dict(_pipelines.LIDAR_ONLY)
# each class filled up to upstream's group sizes with objects of >= 5 points
db_sampler = gt_paste_sampler(data_root, min_points=5)
train_pipeline, test_pipeline = multitask_pipelines(
    data_root=data_root,
    point_cloud_range=point_cloud_range,
    num_sweeps=9,
    bev_rot_range=[-0.78539816, 0.78539816],
    use_camera=False,
    with_map=False,
    db_sampler=db_sampler)

train_dataloader = dict(dataset=dict(
    _delete_=True, **_pipelines.cbgs_lidar_train_set(data_root,
                                                     train_pipeline)))
val_dataloader = dict(
    dataset=dict(modality=input_modality, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [{{_base_.det_evaluator}}]
test_evaluator = val_evaluator
