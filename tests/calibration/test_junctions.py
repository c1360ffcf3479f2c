"""Junction gradients against hand-computed calibrated gradients, and the
no-extra-backward guarantee."""
import pytest
import torch
from torch import nn

from fuller.calibration import (IMTLG, EqualNorm, ModalityJunction, PCGrad,
                                TaskJunction)


class TwoByTwo(nn.Module):
    """camera/lidar branches -> modality junction -> fuser -> shared layer
    (z) -> task junction -> det/seg heads."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.cam = nn.Conv2d(3, 4, 3, padding=1)
        self.lid = nn.Conv2d(2, 4, 1)
        self.fuse = nn.Conv2d(8, 6, 3, padding=1)
        self.det = nn.Conv2d(6, 1, 1)
        self.seg = nn.Conv2d(6, 2, 3, padding=1)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=gen) * 0.5
        self.modality_junction = ModalityJunction(('camera', 'lidar'))
        self.task_junction = TaskJunction(('det', 'seg'))
        self.fuse_backward_calls = 0
        # counts every gradient computation through the fuser's output
        self.fuse.register_forward_hook(self._hook_output)

    def _hook_output(self, module, args, out):
        if out.requires_grad:
            out.register_hook(self._count)

    def _count(self, grad):
        self.fuse_backward_calls += 1

    def branches(self, cam, lid):
        return torch.tanh(self.cam(cam)), torch.tanh(self.lid(lid))

    def trunk(self, f_cam, f_lid):
        return torch.tanh(self.fuse(torch.cat([f_cam, f_lid], 1)))

    def losses(self, z_det, z_seg, tgt):
        return ((self.det(z_det) - tgt[0])**2).mean(), (
            (self.seg(z_seg) - tgt[1])**2).mean() * 3

    def forward(self, cam, lid, tgt):
        f_cam, f_lid = self.modality_junction(self.branches(cam, lid))
        feats = self.task_junction(self.trunk(f_cam, f_lid))
        return self.losses(feats['det'], feats['seg'], tgt)


def _inputs(batch=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, 5, 5, generator=gen),
            torch.randn(batch, 2, 5, 5, generator=gen),
            (torch.randn(batch, 1, 5, 5, generator=gen),
             torch.randn(batch, 2, 5, 5, generator=gen)))


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def _hand_gradients(model, cam, lid, tgt, task_cal, mod_cal):
    """The calibrated gradients, chained by hand with autograd.grad."""
    f_cam, f_lid = model.branches(cam, lid)
    f_cam_d, f_lid_d = f_cam.detach().requires_grad_(), f_lid.detach(
    ).requires_grad_()
    z = model.trunk(f_cam_d, f_lid_d)
    z_d = z.detach().requires_grad_()
    l_det, l_seg = model.losses(z_d, z_d, tgt)
    heads = [p for n, p in model.named_parameters() if n[:3] in ('det', 'seg')]
    g_det = torch.autograd.grad(l_det, z_d, retain_graph=True)[0]
    g_seg = torch.autograd.grad(l_seg, z_d, retain_graph=True)[0]
    head_grads = torch.autograd.grad(l_det + l_seg, heads, allow_unused=True)
    g_z = g_det + g_seg
    if task_cal is not None:
        flat = torch.stack([g_det.flatten(), g_seg.flatten()])
        g_z = task_cal(flat).reshape(z.shape)
    trunk = list(model.fuse.parameters())
    out = torch.autograd.grad(z, trunk + [f_cam_d, f_lid_d], g_z)
    trunk_grads, g_cam, g_lid = out[:2], out[2], out[3]
    if mod_cal is not None:
        g_cam, g_lid = mod_cal([g_cam, g_lid])
    branch = list(model.cam.parameters()) + list(model.lid.parameters())
    branch_grads = torch.autograd.grad([f_cam, f_lid], branch,
                                       [g_cam, g_lid])
    names = ([n for n, _ in model.named_parameters() if n[:3] in ('det',
                                                                  'seg')] +
             ['fuse.weight', 'fuse.bias', 'cam.weight', 'cam.bias',
              'lid.weight', 'lid.bias'])
    return dict(zip(names, list(head_grads) + list(trunk_grads) +
                    list(branch_grads)))


@pytest.mark.parametrize('task_cal,mod_cal', [
    (None, None), (IMTLG(), None), (None, EqualNorm()),
    (IMTLG(), EqualNorm()), (PCGrad(seed=3), EqualNorm(target='max'))])
def test_junction_gradients_equal_hand_computed(task_cal, mod_cal):
    model = TwoByTwo()
    cam, lid, tgt = _inputs()
    records = []
    model.task_junction.arm(task_cal, recorder=records.append)
    model.modality_junction.arm(mod_cal, recorder=records.append)
    l_det, l_seg = model(cam, lid, tgt)
    (l_det + l_seg).backward()
    got = _grads(model)
    ref_task = PCGrad(seed=3) if isinstance(task_cal, PCGrad) else task_cal
    expect = _hand_gradients(TwoByTwo(), cam, lid, tgt, ref_task, mod_cal)
    assert set(expect) == set(got)
    for name, value in expect.items():
        assert torch.allclose(got[name], value, rtol=1e-5, atol=1e-7), name
    assert [r['kind'] for r in records] == ['task', 'modality']
    assert model.fuse_backward_calls == 1  # one backward through the trunk
    if mod_cal is not None:
        after = records[1]['norms_after']
        assert not torch.allclose(records[1]['norms_before'][0],
                                  records[1]['norms_before'][1])
        assert float(after[0] / after[1]) == pytest.approx(1.0, rel=1e-5)


def test_unarmed_junctions_are_plain_identities():
    model = TwoByTwo()
    cam, lid, tgt = _inputs()
    z = torch.randn(2, 6, 5, 5, requires_grad=True)
    feats = model.task_junction(z)
    assert all(f is z for f in feats.values())  # no autograd node at all
    model.task_junction.arm(IMTLG())
    model.eval()
    assert all(f is z for f in model.task_junction(z).values())
    model.train()
    with torch.no_grad():
        assert all(f is z for f in model.task_junction(z).values())
    model.task_junction.disarm()
    sum(model(cam, lid, tgt)).backward()
    plain = _grads(model)
    ref = _hand_gradients(TwoByTwo(), cam, lid, tgt, None, None)
    for name, value in ref.items():
        assert torch.allclose(plain[name], value, rtol=1e-5, atol=1e-7)


def test_calibration_costs_no_extra_backward():
    """The junction calibrates inside the single backward pass; the classic
    way (per-task backward passes over the shared layers) needs T."""
    model = TwoByTwo()
    cam, lid, tgt = _inputs()
    model.task_junction.arm(PCGrad())
    model.modality_junction.arm(EqualNorm())
    sum(model(cam, lid, tgt)).backward()
    assert model.fuse_backward_calls == 1
    model.task_junction.disarm()
    model.modality_junction.disarm()
    model.fuse_backward_calls = 0
    l_det, l_seg = model(cam, lid, tgt)
    shared = list(model.fuse.parameters())
    torch.autograd.grad(l_det, shared, retain_graph=True)
    torch.autograd.grad(l_seg, shared)
    assert model.fuse_backward_calls == 2


def test_per_sample_equals_each_sample_alone():
    cam, lid, tgt = _inputs(batch=3)
    model = TwoByTwo()
    model.task_junction.arm(IMTLG(), per_sample=True)
    model.modality_junction.arm(EqualNorm(), per_sample=True)
    z_grads = []
    model.fuse.register_full_backward_hook(
        lambda m, gi, go: z_grads.append(go[0]))
    sum(model(cam, lid, tgt)).backward()
    per_sample = z_grads[0]
    for b in range(3):
        single = TwoByTwo()
        single.task_junction.arm(IMTLG())
        singles = []
        single.fuse.register_full_backward_hook(
            lambda m, gi, go: singles.append(go[0]))
        # Losses are means over the batch: scale to match the full batch.
        l_det, l_seg = single(cam[b:b + 1], lid[b:b + 1],
                              (tgt[0][b:b + 1], tgt[1][b:b + 1]))
        ((l_det + l_seg) / 3).backward()
        # d tanh is applied after the junction: compare the junction output
        # through the same non-linearity, i.e. the grads at fuse's output.
        assert torch.allclose(per_sample[b:b + 1], singles[0], rtol=1e-4,
                              atol=1e-8)


def test_missing_head_and_nonfinite_gradients_pass_through():
    junction = TaskJunction(('det', 'seg'))
    junction.arm(IMTLG())
    z = torch.randn(2, 3, requires_grad=True)
    feats = junction(z)
    (feats['det'] * 2).sum().backward()  # seg head got no loss
    assert torch.equal(z.grad, torch.full_like(z, 2.0))
    z.grad = None
    feats = junction(z)
    bad = torch.ones_like(z)
    bad[0, 0] = float('inf')
    torch.autograd.backward([feats['det'], feats['seg']],
                            [torch.ones_like(z), bad])
    assert torch.equal(z.grad, torch.ones_like(z) + bad)  # untouched sum

    mod = ModalityJunction(('camera', 'lidar'))
    mod.arm(EqualNorm())
    a = torch.randn(4, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    out = mod([a, b])
    grad_b = torch.full((4, ), float('nan'))
    torch.autograd.backward(out, [torch.ones(4), grad_b])
    assert torch.equal(a.grad, torch.ones(4)) and b.grad.isnan().all()
    with pytest.raises(ValueError, match='one per modality'):
        mod([a])


def test_reduce_sees_small_statistics_only():
    seen = []

    def reduce(t):
        seen.append(tuple(t.shape))
        t.mul_(2)  # pretend 2 identical ranks: sums double

    model = TwoByTwo()
    cam, lid, tgt = _inputs()
    records = []
    model.task_junction.arm(IMTLG(), reduce=reduce, recorder=records.append)
    model.modality_junction.arm(EqualNorm(), reduce=reduce,
                                recorder=records.append)
    sum(model(cam, lid, tgt)).backward()
    assert seen == [(1, 2, 2), (2, 1)]
    synced = _grads(model)
    expect = _hand_gradients(TwoByTwo(), cam, lid, tgt, IMTLG(), EqualNorm())
    for name, value in expect.items():  # weights are scale invariant
        assert torch.allclose(synced[name], value, rtol=1e-5, atol=1e-7)


def test_junction_names_are_checked():
    with pytest.raises(ValueError, match='non-empty'):
        TaskJunction('det')
    with pytest.raises(ValueError, match='unique'):
        ModalityJunction(('camera', 'camera'))
