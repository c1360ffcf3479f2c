# CPU setting with the lightweight heads (>= 40% fewer head parameters than
# bevfusion_cpu.py; `python tools/count_params.py CONFIG` prints the counts).
_base_ = ['./bevfusion_cpu.py']
model = dict(
    bbox_head=dict(hidden_channels=32, ffn_channels=64, head_channels=16),
    seg_head=dict(mid_channels=64))
