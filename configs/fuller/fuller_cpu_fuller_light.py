# CPU setting, FULLER calibration, with the lightweight detection and
# segmentation heads (>= 40% fewer head parameters than fuller_cpu_fuller.py;
# `python tools/count_params.py` on both configs prints the counts).
_base_ = ['./fuller_cpu_fuller.py']
model = dict(
    bbox_head=dict(
        hidden_channels=16, num_heads=2, ffn_channels=32, head_channels=8),
    seg_head=dict(mid_channels=32))
