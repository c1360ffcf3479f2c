# The CPU setting on the synthetic nuScenes set: small images, LiDAR key
# frames only, a 1 m map grid. Make the data first:
#   python tools/make_synthetic_nuscenes.py --out data/nuscenes-synth
#   python tools/create_data.py nuscenes --root-path data/nuscenes-synth \
#       --version v1.0-trainval   (the default set: 8 train / 4 val scenes)
_base_ = ['./nuscenes_multitask.py']
# (a call, not an import statement: mmengine would parse the file as a
# lazy-import config otherwise)
multitask_pipelines = __import__(
    'fuller.datasets.pipelines', fromlist=['_']).multitask_pipelines

data_root = 'data/nuscenes-synth/'
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
map_xbound = [-50.0, 50.0, 1.0]  # 100 x 100 map grid
map_ybound = [-50.0, 50.0, 1.0]
image_size = [64, 176]  # final (H, W)

# 480 x 270 synthetic images -> x0.35..0.40 (test 0.3667: 176 x 99) ->
# bottom 64 x 176 crop; no extra sweeps; dividers 1 cell (1 m) wide; the
# CPU demo keeps its BEV rotation of +-22.5 deg (the paper config: +-45).
bev_rot_range = [-0.3927, 0.3927]
drivable_area_source = 'drivable_area'  # the map's layer, as the paper config
train_pipeline, test_pipeline = multitask_pipelines(
    data_root=data_root,
    point_cloud_range=point_cloud_range,
    image_size=image_size,
    resize_lim=[0.35, 0.40],
    test_resize=0.3667,
    map_xbound=map_xbound,
    map_ybound=map_ybound,
    num_sweeps=0,
    bev_rot_range=bev_rot_range,
    drivable_area_source=drivable_area_source,
    map_line_width=1)

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
    type='EmptySafeNuScenesMetric',
    data_root=data_root,
    ann_file=data_root + 'nuscenes_infos_val.pkl',
    metric='bbox')
seg_evaluator = dict(type='BEVSegMetric', classes={{_base_.map_classes}})
val_evaluator = [det_evaluator, seg_evaluator]
test_evaluator = val_evaluator
