# Schedule of the CPU setting (2 cores, a few hundred steps per run).
# The FULLER calibration lives in the optimizer wrapper:
#   inter  task-level calibration of the gradients that the detection and
#          segmentation heads send into the shared BEV feature (the task
#          junction): dict(type='Sum') = plain sum of the task gradients
#          (naive multi-task learning, statistics still logged);
#          dict(type='MetaBalance', relax=0.25) = FULLER's default (each
#          task gradient's norm moved a quarter of the way to the largest;
#          the best trade-off measured, docs/results.md); dict(type='IMTLG') =
#          the paper's (equal projections on every task gradient); also
#          'MGDA', 'PCGrad', 'CAGrad', 'AlignedMTL' and the magnitude-keeping
#          'NormKeepingIMTLG', 'NormKeepingMGDA', 'DBMTL'
#          (configs/fuller/fuller_cpu_fuller_*.py, docs/calibration.md);
#          None = the junction is not armed at all (no statistics).
#   intra  modality-level calibration where the camera and LiDAR branches
#          meet the fuser (the modality junction): dict(type='Identity') =
#          untouched (statistics logged); dict(type='EqualNorm') = FULLER
#          (both branch gradients rescaled to their mean norm, against
#          modality bias); None = not armed.
#   warmup_iters  iterations of plain summing before calibration starts.
#   per_sample    calibrate each sample of the batch separately.
#   sync          under DDP, all-reduce the calibration statistics so all
#                 ranks use identical weights.
# fused=True: one AdamW kernel over all parameters (torch >= 2.4 on CPU).
# torch's CPU default loops over the ~180 parameters in Python (with a
# .item() per step counter), which cost ~4x the fused step; the update is
# the same up to float rounding.
optim_wrapper = dict(
    type='FullerOptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.01, fused=True),
    clip_grad=dict(max_norm=35, norm_type=2),
    calibration=dict(
        inter=dict(type='Sum'),
        intra=dict(type='Identity'),
        warmup_iters=0,
        per_sample=False,
        sync=False))

max_epochs = 4
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=20),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         T_max=max_epochs, eta_min=2e-5)
]
# Resumable: --resume from a preemption checkpoint (tools/train.py on SIGTERM)
# continues inside the interrupted epoch instead of restarting it.
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs,
    val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
