# Stage 2 of the BEVFusion recipe (camera + LiDAR from the stage-1
# checkpoint, 6 epochs), as upstream: AdamW lr 2e-4 (weight decay 0.01,
# gradient clip 35), linear warm-up over 500 iterations from lr/3, cosine
# decay to 2e-8 (ratio 1e-4) over the 6 epochs; Adam's beta1 0.95 -> 0.85
# (first 2.4 epochs) -> 0.95. Total batch 32 (8 GPUs x 4). The calibration
# levels are set by each experiment config (see fuller_cpu.py for what each
# switch does).
optim_wrapper = dict(
    type='FullerOptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2),
    calibration=dict(
        inter=dict(type='Sum'),
        intra=dict(type='Identity'),
        warmup_iters=0,
        per_sample=False,
        sync=False))

max_epochs = 6
param_scheduler = [
    dict(type='LinearLR', start_factor=0.33333333, by_epoch=False, begin=0,
         end=500),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs,
         end=max_epochs, by_epoch=True, eta_min_ratio=1e-4,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', eta_min=0.85 / 0.95, begin=0,
         end=2.4, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', eta_min=1, begin=2.4,
         end=max_epochs, by_epoch=True, convert_to_iter_based=True)
]
# Resumable: --resume from a preemption checkpoint (tools/train.py on SIGTERM)
# continues inside the interrupted epoch instead of restarting it.
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs,
    val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=32)
