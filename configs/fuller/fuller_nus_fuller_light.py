# nuScenes paper setting, FULLER calibration, with the lightweight detection
# and segmentation heads (>= 40% fewer head parameters than
# fuller_nus_fuller.py; see tools/count_params.py).
_base_ = ['./fuller_nus_fuller.py']
model = dict(
    bbox_head=dict(hidden_channels=64, ffn_channels=128, head_channels=32),
    seg_head=dict(mid_channels=256))
