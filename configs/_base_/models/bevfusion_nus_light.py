# nuScenes paper setting with the lightweight heads (>= 40% fewer head
# parameters than bevfusion_nus.py; see tools/count_params.py).
_base_ = ['./bevfusion_nus.py']
model = dict(
    bbox_head=dict(hidden_channels=64, ffn_channels=128, head_channels=32),
    seg_head=dict(mid_channels=256))
