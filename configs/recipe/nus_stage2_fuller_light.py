# BEVFusion recipe, stage 2 on nuScenes, FULLER with the lightweight heads
# (the detection head's stage-1 weights do not fit them and stay at init).
_base_ = ['./nus_stage2_fuller.py']
model = dict(
    bbox_head=dict(hidden_channels=64, ffn_channels=128, head_channels=32),
    seg_head=dict(mid_channels=256))
