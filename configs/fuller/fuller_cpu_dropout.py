# CPU setting, train-time modality dropout (robust fusion training), the
# simple baseline against modality bias: each training sample loses its
# camera feature with probability 0.25, else its LiDAR feature with
# probability 0.25 (zeros at the fuser, as tools/test.py --drop-modality does
# at test time). Task gradients summed, no modality calibration.
_base_ = ['./fuller_cpu_naive.py']
model = dict(modality_dropout=dict(camera=0.25, lidar=0.25))
