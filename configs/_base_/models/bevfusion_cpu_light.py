# CPU setting with the lightweight heads (>= 40% fewer head parameters than
# bevfusion_cpu.py; `python tools/count_params.py CONFIG` prints the counts).
_base_ = ['./bevfusion_cpu.py']
model = dict(
    bbox_head=dict(
        hidden_channels=16, num_heads=2, ffn_channels=32, head_channels=8),
    seg_head=dict(mid_channels=32))
