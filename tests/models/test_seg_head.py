"""The BEV map head's losses: the focal loss it always has and the optional
soft Dice term, both built from config dicts (``loss_focal``,
``loss_dice``)."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import BaseDataElement

from fuller.engine.config_check import check_options
from fuller.models.heads.seg_head import (BEVSegHead, sigmoid_focal_loss,
                                          soft_dice_loss)
from fuller.models.losses import BEVSegDiceLoss, BEVSegFocalLoss
from fuller.registry import MODELS
from fuller.testing.tools import REPO

BOUNDS = [[-4.0, 4.0, 1.0], [-4.0, 4.0, 1.0]]  # 8 x 8 cells in and out


def _targets() -> torch.Tensor:
    """(2, 3, 8, 8): a large class, a one-cell-wide line, an absent class."""
    t = torch.zeros(2, 3, 8, 8)
    t[:, 0, :5] = 1
    t[0, 1, :, 3] = 1
    t[1, 1, 6] = 1
    return t


def test_dice_is_zero_for_a_perfect_and_near_one_for_an_inverted_map():
    t = _targets()
    perfect = soft_dice_loss(torch.where(t > 0, 30.0, -30.0), t)
    inverted = soft_dice_loss(torch.where(t > 0, -30.0, 30.0), t)
    # present classes: exactly 0 and close to 1; the absent class is 0 when
    # nothing is predicted and close to 1 when everything is
    assert perfect.shape == (3, )
    assert torch.allclose(perfect, torch.zeros(3), atol=1e-6)
    assert (inverted > 0.98).all(), inverted


def test_dice_weighs_a_thin_class_like_a_large_one():
    """Missing the whole one-cell line costs as much Dice as missing the
    whole large class, while the per-cell focal loss barely sees the line."""
    t = _targets()
    logits = torch.where(t > 0, 30.0, -30.0)
    miss_line, miss_large = logits.clone(), logits.clone()
    miss_line[:, 1] = -30.0
    miss_large[:, 0] = -30.0
    line, large = soft_dice_loss(miss_line, t), soft_dice_loss(miss_large, t)
    assert float(line[1]) == pytest.approx(float(large[0]), abs=0.05)
    assert line[1] > 0.9  # 1 - 1 / 17: the smoothing of one cell

    def focal(logits):
        return sigmoid_focal_loss(logits, t).mean(dim=(0, 2, 3))

    # 16 line cells against 80 large-class cells: a fifth of the focal loss
    ratio = float(focal(miss_line)[1] / focal(miss_large)[0])
    assert ratio == pytest.approx(16 / 80, rel=0.01)


def test_dice_gradient_is_finite_and_pushes_an_absent_class_down():
    t = _targets()
    logits = torch.zeros_like(t, requires_grad=True)
    soft_dice_loss(logits, t).sum().backward()
    assert torch.isfinite(logits.grad).all()
    # absent class: every probability is pushed towards 0
    assert (logits.grad[:, 2] > 0).all()
    # present class: its cells pushed up, the others down
    assert (logits.grad[:, 0][t[:, 0] > 0] < 0).all()
    assert (logits.grad[:, 0][t[:, 0] == 0] > 0).all()


def _samples(t: torch.Tensor):
    return [BaseDataElement(gt_masks_bev=m.numpy()) for m in t]


@pytest.mark.parametrize('dice_weight', [0.0, 2.0])
def test_head_adds_a_weighted_dice_term_only_when_asked(dice_weight):
    torch.manual_seed(0)
    head = BEVSegHead(in_channels=4, classes=['a', 'b', 'c'],
                      input_bounds=BOUNDS, output_bounds=BOUNDS,
                      mid_channels=4,
                      loss_dice=dict(type='BEVSegDiceLoss',
                                     loss_weight=dice_weight))
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    t = _targets()
    losses = head.loss(x, _samples(t))
    if dice_weight == 0:
        assert set(losses) == {'loss_focal'}
        return
    assert set(losses) == {'loss_focal', 'loss_dice'}
    expected = soft_dice_loss(head(x), t).sum() * dice_weight
    assert torch.allclose(losses['loss_dice'], expected)
    sum(losses.values()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_negative_dice_weight_is_refused():
    with pytest.raises(ValueError,
                       match='loss_dice.loss_weight must be >= 0'):
        BEVSegHead(in_channels=4, classes=['a'], input_bounds=BOUNDS,
                   output_bounds=BOUNDS,
                   loss_dice=dict(type='BEVSegDiceLoss', loss_weight=-1.0))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_dice_term_is_float32_under_cpu_autocast(dtype):
    """The twin of a CUDA AMP run: the Dice sums (over every cell of the
    batch) are taken in float32, so they match the float32 loss."""
    torch.manual_seed(0)
    head = BEVSegHead(in_channels=4, classes=['a', 'b', 'c'],
                      input_bounds=BOUNDS, output_bounds=BOUNDS,
                      mid_channels=4,
                      loss_dice=dict(type='BEVSegDiceLoss', loss_weight=1.0))
    x = torch.randn(2, 4, 8, 8)
    samples = _samples(_targets())
    reference = head.loss(x, samples)['loss_dice']
    with torch.autocast('cpu', dtype=dtype):
        loss = head.loss(x, samples)['loss_dice']
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, reference, rtol=0.02)


def _head(**losses) -> BEVSegHead:
    """A small head; each starts from seed 0, so their weights match."""
    torch.manual_seed(0)
    return BEVSegHead(in_channels=4, classes=['a', 'b', 'c'],
                      input_bounds=BOUNDS, output_bounds=BOUNDS,
                      mid_channels=4, **losses)


def test_default_losses_are_the_per_class_focal_loss():
    head = _head()
    assert isinstance(head.loss_focal, BEVSegFocalLoss)
    assert head.loss_dice is None
    x, t = torch.randn(2, 4, 8, 8), _targets()
    losses = head.loss(x, _samples(t))
    assert set(losses) == {'loss_focal'}
    expected = sigmoid_focal_loss(head(x), t, 2.0, -1.0).mean(
        dim=(0, 2, 3)).sum()
    assert torch.equal(losses['loss_focal'], expected)


def test_config_loss_dicts_are_what_the_head_uses():
    """gamma 0 without alpha is the binary cross-entropy, times the weight;
    the Dice term takes its smoothing and weight from its dict."""
    cfg = dict(type='BEVSegHead', in_channels=4, classes=['a', 'b', 'c'],
               input_bounds=BOUNDS, output_bounds=BOUNDS, mid_channels=4,
               loss_focal=dict(type='BEVSegFocalLoss', gamma=0.0,
                               loss_weight=3.0),
               loss_dice=dict(type='BEVSegDiceLoss', smooth=2.0,
                              loss_weight=0.5))
    head = MODELS.build(cfg)
    assert head.loss_focal.gamma == 0.0 and head.loss_focal.loss_weight == 3.0
    assert isinstance(head.loss_dice, BEVSegDiceLoss)
    default = _head()
    default.load_state_dict(head.state_dict())
    x, t = torch.randn(2, 4, 8, 8), _targets()
    losses, base = head.loss(x, _samples(t)), default.loss(x, _samples(t))
    logits = head(x)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction='none')
    assert torch.allclose(losses['loss_focal'],
                          3.0 * bce.mean(dim=(0, 2, 3)).sum())
    # the focusing term only ever lowers the per-cell loss
    assert base['loss_focal'] < losses['loss_focal'] / 3.0
    assert torch.allclose(losses['loss_dice'],
                          0.5 * soft_dice_loss(logits, t, smooth=2.0).sum())

    alpha = _head(loss_focal=dict(type='BEVSegFocalLoss', alpha=0.75))
    alpha.load_state_dict(head.state_dict())
    assert torch.allclose(
        alpha.loss(x, _samples(t))['loss_focal'],
        sigmoid_focal_loss(logits, t, 2.0, 0.75).mean(dim=(0, 2, 3)).sum())


@pytest.mark.parametrize('losses, message', [
    (dict(loss_focal=dict(type='BEVSegFocalLos')),
     "loss_focal type 'BEVSegFocalLos' is not a registered loss "
     '(did you mean BEVSegFocalLoss'),
    (dict(loss_dice=dict(type='NoSuchThing', loss_weight=1.0)),
     "loss_dice type 'NoSuchThing' is not a registered loss"),
    (dict(loss_dice=dict(loss_weight=1.0)),
     "loss_dice must be a dict with a registered loss 'type'"),
])
def test_bad_loss_config_is_a_clear_error(losses, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(')):
        _head(**losses)
    # through the registry (as a config builds it) the message is kept
    with pytest.raises(ValueError, match=message.replace('(', r'\(')):
        MODELS.build(dict(type='BEVSegHead', in_channels=4, classes=['a'],
                          input_bounds=BOUNDS, output_bounds=BOUNDS,
                          **losses))


def test_losses_refuse_settings_without_meaning():
    with pytest.raises(ValueError, match='gamma must be >= 0'):
        BEVSegFocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match='smooth must be > 0'):
        BEVSegDiceLoss(smooth=0.0)


def test_base_config_losses_are_the_head_defaults():
    """The paper config spells the defaults out (the Dice term off), so
    ``--cfg-options model.seg_head.loss_dice.loss_weight=1`` turns it on and
    a misspelt loss option is caught like any other."""
    cfg = Config.fromfile(str(REPO / 'configs/_base_/models/bevfusion_nus.py'))
    seg = cfg.model.seg_head
    head = _head(loss_focal=seg.loss_focal, loss_dice=seg.loss_dice)
    default = _head()
    assert not head.with_dice
    x, t = torch.randn(2, 4, 8, 8), _targets()
    losses, base = head.loss(x, _samples(t)), default.loss(x, _samples(t))
    assert set(losses) == {'loss_focal'}
    assert torch.equal(losses['loss_focal'], base['loss_focal'])

    root = cfg._cfg_dict
    assert check_options(root, {'model.seg_head.loss_dice.loss_weight': 1.0,
                                'model.seg_head.loss_focal.alpha': 0.75}) == []
    problems = check_options(root, {'model.seg_head.loss_focal.gama': 0.0})
    assert len(problems) == 1
    assert 'did you mean model.seg_head.loss_focal.gamma?' in problems[0]
