# Schedule of the nuScenes paper setting: AdamW, 20 epochs, cosine decay
# (the BEVFusion recipe; 8 GPUs x 4 samples). See fuller_cpu.py for what each
# calibration switch does; the experiment configs in configs/fuller/ only
# override optim_wrapper.calibration.
optim_wrapper = dict(
    type='FullerOptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2),
    calibration=dict(
        inter=dict(type='Sum'),  # task level; FULLER: MetaBalance, relax=0.25
        intra=dict(type='Identity'),  # modality; dict(type='EqualNorm')
        warmup_iters=0,
        per_sample=False,
        sync=False))

max_epochs = 20
param_scheduler = [
    dict(type='LinearLR', start_factor=0.33333333, by_epoch=False, begin=0,
         end=500),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         T_max=max_epochs, eta_min=2e-8)
]
# Resumable: --resume from a preemption checkpoint (tools/train.py on SIGTERM)
# continues inside the interrupted epoch instead of restarting it.
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs,
    val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# Learning rate above is for a total batch of 32 samples.
auto_scale_lr = dict(enable=False, base_batch_size=32)
