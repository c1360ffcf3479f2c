# BEVFusion recipe, stage 1 at CPU scale on the synthetic nuScenes set:
# LiDAR-only detection (pillars, SECOND + SECONDFPN, TransFusion head) with
# CBGS and GT-paste (the GT database from tools/create_data.py), GT-paste
# off for the last epoch; the CPU schedule (4 epochs). Stage 2:
# cpu_stage2_*.py.
#   python tools/train.py configs/recipe/cpu_stage1_lidar_det.py
# (calls, not import statements: mmengine would parse the file as a
# lazy-import config otherwise)
_base_ = [
    '../_base_/models/bevfusion_cpu.py',
    '../_base_/datasets/nuscenes_synth_cpu.py',
    '../_base_/schedules/fuller_cpu.py', '../_base_/default_runtime.py'
]
_pipelines = __import__('fuller.datasets.pipelines', fromlist=['_'])
multitask_pipelines = _pipelines.multitask_pipelines
gt_paste_sampler = _pipelines.gt_paste_sampler

data_root = 'data/nuscenes-synth/'
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
input_modality = dict(_pipelines.LIDAR_ONLY)
db_sampler = gt_paste_sampler(data_root, min_points=5)
train_pipeline, test_pipeline = multitask_pipelines(
    data_root=data_root,
    point_cloud_range=point_cloud_range,
    num_sweeps=0,
    bev_rot_range=[-0.3927, 0.3927],
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

model = dict(
    img_backbone=None,
    img_neck=None,
    view_transform=None,
    fusion_layer=None,
    seg_head=None,
    pts_backbone=dict(in_channels=32))  # pts_middle_encoder.in_channels
optim_wrapper = dict(calibration=dict(inter=None, intra=None))
custom_hooks = [
    dict(type='GradientCalibrationHook', interval=10),
    dict(type='DisableObjectSampleHook', disable_after_epoch=3)
]
