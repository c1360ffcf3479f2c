# A toy two-modality, two-task model trained with FULLER: seconds per epoch on
# CPU. Used by the tests of the tools (resume, distributed) and the engine.
_base_ = ['../_base_/default_runtime.py']
custom_imports = dict(imports=['fuller', 'fuller.testing'], allow_failed_imports=False)

model = dict(type='ToyFusionModel', channels=8)

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ToyMultiTaskDataset', num_samples=32, size=16, seed=0))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
    clip_grad=dict(max_norm=10.0))

train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=2)
param_scheduler = [dict(type='MultiStepLR', milestones=[2], gamma=0.5, by_epoch=True)]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=2),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=5))
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
randomness = dict(seed=0)
# Writes params_rank{R}.pth at the end: lets tests compare distributed ranks.
custom_hooks = [dict(type='DumpParametersHook')]
