# CPU setting, modality dropout (fuller_cpu_dropout.py) with FULLER's
# task-level calibration (fuller_cpu_inter.py): the dropout in place of the
# modality level.
_base_ = ['./fuller_cpu_inter.py']
model = dict(modality_dropout=dict(camera=0.25, lidar=0.25))
