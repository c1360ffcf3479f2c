# Stage 1 of the BEVFusion recipe (LiDAR-only TransFusion, 20 epochs), as
# upstream mmdet3d projects/BEVFusion: AdamW (weight decay 0.01, gradient
# clip 35) with a cyclic schedule: lr 1e-4 rises along a cosine to 1e-3 over
# the first 8 epochs, then falls to 1e-8 over the last 12; Adam's beta1
# moves the opposite way (0.95 -> 0.85 -> 0.95). Total batch 32 (8 GPUs x 4).
# One task and one modality: nothing to calibrate (junctions not armed).
lr = 1e-4
optim_wrapper = dict(
    type='FullerOptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2),
    calibration=dict(inter=None, intra=None))

max_epochs = 20
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=8, eta_min=lr * 10, begin=0, end=8,
         by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=12, eta_min=lr * 1e-4, begin=8,
         end=20, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', T_max=8, eta_min=0.85 / 0.95,
         begin=0, end=8, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', T_max=12, eta_min=1, begin=8,
         end=20, by_epoch=True, convert_to_iter_based=True)
]
# Resumable: --resume from a preemption checkpoint (tools/train.py on SIGTERM)
# continues inside the interrupted epoch instead of restarting it.
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs,
    val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=32)
