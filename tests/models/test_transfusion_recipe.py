"""The TransFusion head follows upstream BEVFusion's matching cost and query
initialisation (issue 13, items 1 and 2)."""
import pytest
import torch
from mmdet3d.registry import TASK_UTILS
from mmdet3d.structures import LiDARInstance3DBoxes
from mmengine.structures import InstanceData
from torch import nn

from fuller.datasets.metainfo import CLASS_NAMES
from fuller.models.heads import TransFusionHead
from model_test_utils import load_cfg

NUS_RANGE = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]


def _boxes(xy):
    t = torch.zeros((len(xy), 9))
    t[:, :2] = torch.tensor(xy, dtype=torch.float32)
    t[:, 3:6] = torch.tensor([4.0, 2.0, 1.5])
    return LiDARInstance3DBoxes(t, box_dim=9)


def test_centre_cost_is_normalised_by_the_range():
    cost = TASK_UTILS.build(dict(type='BEVCenterL1Cost', weight=0.25,
                                 point_cloud_range=NUS_RANGE))
    pred = InstanceData(bboxes_3d=_boxes([[0.0, 0.0], [-54.0, -54.0]]))
    gt = InstanceData(bboxes_3d=_boxes([[10.8, -5.4], [54.0, 54.0]]))
    c = cost(pred, gt)
    # By hand, range 108 m on x and y, weight 0.25:
    #  pred (0, 0)     vs gt (10.8, -5.4): (10.8/108 + 5.4/108) * 0.25
    #                                      = (0.1 + 0.05) * 0.25 = 0.0375
    #  pred (0, 0)     vs gt (54, 54):     (0.5 + 0.5) * 0.25 = 0.25
    #  pred (-54, -54) vs gt (10.8, -5.4): (64.8/108 + 48.6/108) * 0.25
    #                                      = (0.6 + 0.45) * 0.25 = 0.2625
    #  pred (-54, -54) vs gt (54, 54):     (1 + 1) * 0.25 = 0.5
    expected = torch.tensor([[0.0375, 0.25], [0.2625, 0.5]])
    assert torch.allclose(c, expected, atol=1e-6)
    # the same range through img_meta (how the head hands it over)
    plain = TASK_UTILS.build(dict(type='BEVCenterL1Cost', weight=0.25))
    assert torch.allclose(
        plain(pred, gt, img_meta=dict(point_cloud_range=NUS_RANGE)), c)
    with pytest.raises(ValueError, match='point_cloud_range'):
        plain(pred, gt)


def _head(**kw):
    return TransFusionHead(
        in_channels=8, num_classes=len(CLASS_NAMES), num_proposals=4,
        hidden_channels=8, num_heads=2, ffn_channels=8, head_channels=8,
        bbox_coder=dict(type='TransFusionBBoxCoder', pc_range=NUS_RANGE,
                        voxel_size=[0.075, 0.075], out_size_factor=8), **kw)


class _FixedLogits(nn.Module):
    """Stands in for the heatmap branch: returns preset (1, K, X, Y)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1, -1, -1)


def test_adjacent_pedestrians_are_both_proposed_adjacent_cars_not():
    head = _head(nms_kernel_size=3, class_names=CLASS_NAMES,
                 class_nms_kernel_sizes=dict(pedestrian=1, traffic_cone=1))
    head.eval()
    car, ped = CLASS_NAMES.index('car'), CLASS_NAMES.index('pedestrian')
    logits = torch.full((1, len(CLASS_NAMES), 12, 12), -10.0)
    # two neighbours (one cell apart) of each class, scores 0.9 and 0.8
    for cls in (car, ped):
        logits[0, cls, 5, 5] = torch.logit(torch.tensor(0.9))
        logits[0, cls, 5, 6] = torch.logit(torch.tensor(0.8))
    head.shared_conv = nn.Identity()
    head.heatmap_head = _FixedLogits(logits)
    with torch.no_grad():
        out = head(torch.randn(1, 8, 12, 12))
    score = out['query_score'][0]  # (K, P): dense score of each proposal
    proposed = {(int(c), round(float(score[c, p]), 3))
                for c, p in zip(*torch.nonzero(score > 0.5, as_tuple=True))}
    assert proposed == {(ped, 0.9), (ped, 0.8), (car, 0.9)}

    # with one 3x3 window for every class the second pedestrian is lost
    plain = _head(nms_kernel_size=3)
    kept = plain.local_maxima(torch.sigmoid(logits))
    assert kept[0, ped, 5, 6] == 0 and kept[0, ped, 5, 5] > 0.5


def test_per_class_windows_need_known_class_names():
    with pytest.raises(ValueError, match='class_names'):
        _head(class_nms_kernel_sizes=dict(pedestrian=1))
    with pytest.raises(ValueError, match='pedestrain'):
        _head(class_names=CLASS_NAMES,
              class_nms_kernel_sizes=dict(pedestrain=1))


def test_decoder_attention_runs_fused_and_equals_the_explicit_weights():
    """By default the decoder layer's attentions go through the fused kernel
    (no (B*heads, P, L) weight tensor) and compute what the explicit
    softmax(QK^T / sqrt(d)) V path of the same weights computes."""
    from torch.profiler import ProfilerActivity, profile

    from fuller.models.heads import TransFusionDecoderLayer
    torch.manual_seed(0)
    fused = TransFusionDecoderLayer(32, 4, 64, dropout=0.0).eval()
    explicit = TransFusionDecoderLayer(32, 4, 64, dropout=0.0,
                                       fused_attention=False).eval()
    explicit.load_state_dict(fused.state_dict())
    inputs = (torch.randn(2, 16, 32), torch.randn(2, 300, 32),
              torch.rand(2, 16, 2), torch.rand(2, 300, 2))
    outs = {}
    for name, layer in (('fused', fused), ('explicit', explicit)):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            outs[name] = layer(*inputs)
        used = any('scaled_dot_product' in e.name for e in prof.events())
        assert used == (name == 'fused'), name
    assert torch.allclose(outs['fused'], outs['explicit'], atol=1e-5)


def test_the_head_passes_its_attention_choice_to_every_decoder_layer():
    """``model.bbox_head.fused_attention`` is the config switch (None: the
    path chosen per call, ``use_fused_attention``)."""
    cfg = load_cfg('configs/fuller/fuller_cpu_fuller.py').model.bbox_head
    for fused in (True, False, None):
        head_cfg = cfg.copy()
        head_cfg.pop('type')
        head_cfg.update(num_decoder_layers=2, fused_attention=fused)
        head = TransFusionHead(**head_cfg)
        assert [layer.fused_attention for layer in head.decoder] == [fused] * 2


def test_automatic_attention_path_is_explicit_only_for_cuda_float32_dropout():
    """``fused_attention=None`` takes the explicit path exactly where it was
    measured faster (CUDA, float32, dropout on: docs/models.md); a set
    value always wins."""
    from fuller.models.heads.transfusion_head import use_fused_attention
    assert not use_fused_attention(None, True, 'cuda')
    assert use_fused_attention(None, False, 'cuda')  # evaluation
    assert use_fused_attention(None, True, 'cpu')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert use_fused_attention(None, True, 'cpu')
    for setting in (True, False):
        for dropout_active in (True, False):
            for device_type in ('cuda', 'cpu'):
                assert use_fused_attention(setting, dropout_active,
                                           device_type) is setting


def test_automatic_attention_trains_fused_on_a_cpu():
    """The default layer (``fused_attention=None``) runs the fused kernel
    when it trains with dropout on a CPU."""
    from torch.profiler import ProfilerActivity, profile

    from fuller.models.heads import TransFusionDecoderLayer
    layer = TransFusionDecoderLayer(32, 4, 64, dropout=0.1).train()
    assert layer.fused_attention is None
    inputs = (torch.randn(2, 16, 32), torch.randn(2, 300, 32),
              torch.rand(2, 16, 2), torch.rand(2, 300, 2))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        layer(*inputs).sum().backward()
    assert any('scaled_dot_product' in e.name for e in prof.events())


def test_constants_are_made_once_per_device_and_dtype():
    """The head's and its costs' constants (range, code weights) are made
    once: on a GPU every new_tensor from a list synchronises the stream."""
    from fuller.models.utils import ConstantCache
    cache = ConstantCache()
    ref = torch.zeros(3, dtype=torch.float64)
    first = cache([1.0, 2.0], ref)
    assert first.dtype == torch.float64 and first.tolist() == [1.0, 2.0]
    assert cache([1.0, 2.0], ref) is first
    assert cache([1.0, 2.0], ref.float()) is not first  # another dtype
    assert cache([1.0, 3.0], ref) is not first
