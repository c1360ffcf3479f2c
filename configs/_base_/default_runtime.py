# Runtime shared by every FULLER-3D config: plugin import, hooks, logging, env.
custom_imports = dict(imports=['fuller'], allow_failed_imports=False)
default_scope = 'mmdet3d'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # max_keep_ckpts keeps disk use bounded; 'last' is always kept for resume.
    # Atomic: a checkpoint and `last_checkpoint` appear only when complete.
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='Det3DVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # 'gloo' is replaced by 'nccl' automatically on CUDA (tools/train.py).
    dist_cfg=dict(backend='gloo'))

# Scalars (losses, FULLER gradient statistics) go to the local JSON log and
# TensorBoard under <work_dir>/<timestamp>/vis_data/.
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(
    type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')

log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False

# FULLER's per-step gradient statistics (task-gradient cosine, per-task norms,
# calibration weights, camera/LiDAR norm ratio before/after) are averaged over
# `interval` iterations and written to the logger and every vis backend.
# `switches` turns a level on/off at a given iter/epoch, e.g.
#   switches=[dict(epoch=2, inter=dict(type='IMTLG'))]
custom_hooks = [dict(type='GradientCalibrationHook', interval=10)]
