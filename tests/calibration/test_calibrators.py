"""Defining properties of every calibrator, on random and adversarial G."""
import itertools

import pytest
import torch
from scipy.optimize import minimize

from fuller.calibration import (DBMTL, AlignedMTL, CAGrad, EqualNorm,
                                MetaBalance, NormKeepingIMTLG,
                                NormKeepingMGDA, PCGrad)
from fuller.registry import CALIBRATORS

TASK_CALIBRATORS = ['Sum', 'IMTLG', 'MGDA', 'PCGrad', 'CAGrad', 'AlignedMTL',
                    'NormKeepingIMTLG', 'NormKeepingMGDA', 'DBMTL',
                    'MetaBalance']


def _random_g(num_tasks, dim=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num_tasks, dim, generator=gen, dtype=torch.float64)


def _adversarial():
    """(name, G) pairs that break naive formulas."""
    base = _random_g(3, 30, seed=1)
    cases = {
        'near_parallel': torch.stack([base[0], base[0] + 1e-6 * base[1]]),
        'scales_1e6': torch.stack([1e6 * base[0], 1e-3 * base[1]]),
        'conflicting': torch.stack([base[0], -0.5 * base[0] + 0.1 * base[1]]),
        'low_rank_T4': torch.stack([base[0], base[1], base[0] + base[1],
                                    base[2]]),
    }
    return list(cases.items())


def _gram(grads):
    return grads @ grads.t()


@pytest.mark.parametrize('num_tasks,seed', [(2, 0), (3, 1), (4, 2), (6, 3)])
def test_imtlg_equal_projections_and_unit_sum(num_tasks, seed):
    grads = _random_g(num_tasks, seed=seed)
    cal = CALIBRATORS.build(dict(type='IMTLG'))
    weights = cal.weights(_gram(grads))
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-12)
    g = cal(grads)
    assert torch.allclose(g, weights @ grads, atol=1e-10)
    proj = (grads / grads.norm(dim=1, keepdim=True)) @ g
    assert torch.allclose(proj, proj.mean().expand_as(proj), rtol=1e-8)


@pytest.mark.parametrize('name,grads', _adversarial())
def test_imtlg_adversarial(name, grads):
    cal = CALIBRATORS.build(dict(type='IMTLG'))
    weights = cal.weights(_gram(grads))
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-9)
    g = cal(grads)
    assert torch.isfinite(g).all()
    if name in ('scales_1e6', 'conflicting'):  # full rank: exact property
        proj = (grads / grads.norm(dim=1, keepdim=True)) @ g
        assert torch.allclose(proj, proj[0].expand_as(proj), rtol=1e-6)


def _brute_min_norm(gram):
    """Reference QP: SLSQP from many starts plus every vertex and edge."""
    num = gram.shape[0]
    m = gram.numpy()
    best = min(m[i, i] for i in range(num))
    for i, j in itertools.combinations(range(num), 2):
        for lam in torch.linspace(0, 1, 2001).tolist():
            w = torch.zeros(num, dtype=torch.float64)
            w[i], w[j] = lam, 1 - lam
            best = min(best, float(w @ gram @ w))
    for start in range(5):
        x0 = torch.rand(num, generator=torch.Generator().manual_seed(start))
        x0 = (x0 / x0.sum()).numpy()
        res = minimize(lambda w: w @ m @ w, x0, jac=lambda w: 2 * m @ w,
                       bounds=[(0, 1)] * num, method='SLSQP',
                       constraints=[dict(type='eq',
                                         fun=lambda w: w.sum() - 1)],
                       options=dict(ftol=1e-15, maxiter=500))
        best = min(best, float(res.fun))
    return best


@pytest.mark.parametrize(
    'grads', [_random_g(2), _random_g(3, 5, seed=4), _random_g(5, 8, seed=5)] +
    [g for _, g in _adversarial()])
def test_mgda_is_min_norm_over_simplex(grads):
    gram = _gram(grads)
    weights = CALIBRATORS.build(dict(type='MGDA')).weights(gram)
    assert (weights >= 0).all()
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-12)
    ours = float(weights @ gram @ weights)
    ref = _brute_min_norm(gram)
    assert ours <= ref + 1e-9 * float(gram.diagonal().max())


def test_mgda_interior_solution_has_equal_inner_products():
    grads = _random_g(3, 10, seed=7)
    cal = CALIBRATORS.build(dict(type='MGDA'))
    g = cal(grads)
    weights = cal.weights(_gram(grads))
    if (weights > 1e-6).all():  # KKT: every g_t . g equals |g|^2
        assert torch.allclose(grads @ g, (g @ g).expand(3), rtol=1e-8)


@pytest.mark.parametrize('seed', range(5))
def test_pcgrad_leaves_no_conflict_for_two_tasks(seed):
    grads = _random_g(2, seed=seed)
    grads[1] = -0.7 * grads[0] + 0.3 * grads[1]  # make them conflict
    assert grads[0] @ grads[1] < 0
    cal = PCGrad(seed=seed)
    coef = cal.projection_coefficients(_gram(grads))
    projected = coef @ grads
    assert projected[0] @ grads[1] >= -1e-9
    assert projected[1] @ grads[0] >= -1e-9
    # The textbook formula, by hand.
    g1, g2 = grads
    h1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    h2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    assert torch.allclose(PCGrad(seed=seed)(grads), h1 + h2, atol=1e-10)


def test_pcgrad_is_seeded_and_deterministic():
    grads = _random_g(5, seed=3)
    grads[1:] -= 0.8 * grads[0]
    outs = [[PCGrad(seed=s)(grads) for _ in range(3)] for s in (0, 0, 1)]
    for a, b in zip(outs[0], outs[1]):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(outs[0], outs[2]))


def test_pcgrad_keeps_non_conflicting_gradients():
    grads = torch.eye(3, dtype=torch.float64)
    assert torch.equal(PCGrad()(grads), grads.sum(0))


@pytest.mark.parametrize('c', [0.0, 0.4, 1.0])
def test_cagrad_in_ball_and_better_worst_case(c):
    grads = _random_g(3, seed=11)
    grads[1] = -0.5 * grads[0] + 0.5 * grads[1]
    g0 = grads.mean(0)
    d = CAGrad(c=c, rescale=False)(grads)
    assert (d - g0).norm() <= c * g0.norm() * (1 + 1e-6) + 1e-12
    assert (grads @ d).min() >= (grads @ g0).min() - 1e-9
    if c == 0:
        assert torch.allclose(d, g0)
    rescaled = CAGrad(c=c)(grads)
    assert torch.allclose(rescaled, d / (1 + c**2))


def test_aligned_mtl_orthogonal_equal_singular_values():
    grads = _random_g(3, seed=2) * torch.tensor([[1.0], [10.0], [0.1]],
                                                dtype=torch.float64)
    cal = AlignedMTL()
    gram = _gram(grads)
    aligned = cal.aligning_matrix(gram) @ grads
    sigma_min = torch.linalg.svdvals(grads).min()
    assert torch.allclose(aligned @ aligned.t(),
                          sigma_min**2 * torch.eye(3, dtype=torch.float64),
                          atol=1e-8 * float(sigma_min**2))
    assert torch.allclose(cal(grads), aligned.sum(0), atol=1e-9)


@pytest.mark.parametrize('name', TASK_CALIBRATORS)
def test_task_degenerate_inputs(name):
    cal = CALIBRATORS.build(dict(type=name))
    g = _random_g(2, 12, seed=9)
    zero_row = torch.stack([g[0], torch.zeros_like(g[0])])
    identical = torch.stack([g[0], g[0]])
    opposite = torch.stack([g[0], -3 * g[0]])
    low_rank = torch.stack([g[0], g[1], g[0] - g[1]])
    for grads in (zero_row, identical, opposite, low_rank, g[:1],
                  torch.zeros(2, 12, dtype=torch.float64)):
        out = cal(grads)
        assert out.shape == (12, ) and torch.isfinite(out).all(), grads
    # A zero task gradient does not block the others.
    assert torch.allclose(cal(zero_row),
                          g[0] * cal.weights(_gram(zero_row))[0])
    assert torch.allclose(cal(g[:1]), g[0])  # one task: itself
    if name in ('IMTLG', 'MGDA'):  # identical: that gradient
        assert torch.allclose(cal(identical), g[0])
    # Non-finite entries: returned untouched (the plain sum).
    bad = g.clone()
    bad[0, 3] = float('inf')
    bad[1, 5] = float('nan')
    assert torch.equal(cal(bad).isnan(), bad.sum(0).isnan())
    finite = torch.isfinite(bad.sum(0))
    assert torch.equal(cal(bad)[finite], bad.sum(0)[finite])


@pytest.mark.parametrize('name', TASK_CALIBRATORS)
def test_task_per_sample_weights_shape(name):
    grams = torch.stack([_gram(_random_g(2, seed=s)) for s in range(4)])
    weights = CALIBRATORS.build(dict(type=name)).weights(grams)
    assert weights.shape == (4, 2) and torch.isfinite(weights).all()


def _lopsided(num_tasks, seed):
    """Task gradients of very different sizes (as det vs seg on the shared
    BEV feature, 13-24x), nearly orthogonal plus one conflicting pair."""
    grads = _random_g(num_tasks, seed=seed)
    grads[0] *= 20.0
    if num_tasks > 2:
        grads[2] = -0.8 * grads[1] + 0.5 * grads[2]
    return grads


def _target(grads, target):
    return dict(sum=grads.sum(0).norm(), max=grads.norm(dim=1).max())[target]


@pytest.mark.parametrize('target', ['sum', 'max'])
@pytest.mark.parametrize('num_tasks,seed', [(2, 0), (3, 1)])
def test_norm_keeping_imtlg(num_tasks, seed, target):
    grads = _lopsided(num_tasks, seed)
    g = NormKeepingIMTLG(target=target)(grads)
    # IMTL-G's equal projections survive the rescaling ...
    proj = (grads / grads.norm(dim=1, keepdim=True)) @ g
    assert torch.allclose(proj, proj.mean().expand_as(proj), rtol=1e-8)
    assert (proj > 0).all()
    # ... in IMTL-G's direction, at the target norm, which is far above
    # plain IMTL-G's (shrunk to about the smallest task gradient).
    plain = CALIBRATORS.build(dict(type='IMTLG'))(grads)
    assert torch.allclose(g / g.norm(), plain / plain.norm(), atol=1e-10)
    assert g.norm().item() == pytest.approx(_target(grads, target).item(),
                                            rel=1e-10)
    assert g.norm() > 5 * plain.norm()


@pytest.mark.parametrize('target', ['sum', 'max'])
@pytest.mark.parametrize('num_tasks,seed', [(2, 0), (3, 1), (3, 5)])
def test_norm_keeping_mgda(num_tasks, seed, target):
    grads = _lopsided(num_tasks, seed)
    g = NormKeepingMGDA(target=target)(grads)
    plain = CALIBRATORS.build(dict(type='MGDA'))(grads)
    assert torch.allclose(g / g.norm(), plain / plain.norm(), atol=1e-10)
    assert g.norm().item() == pytest.approx(_target(grads, target).item(),
                                            rel=1e-10)
    # No conflict left: a step along -g decreases no task's loss less
    # than zero to first order.
    assert (grads @ g >= -1e-9 * g.norm() * grads.norm(dim=1)).all()


def test_norm_keeping_zero_direction_stays_zero():
    """At a Pareto-stationary point the min-norm point is 0: there is no
    direction to scale, so the result stays 0 (not NaN)."""
    g = _random_g(1, seed=4)[0]
    grads = torch.stack([g, -2 * g])
    out = NormKeepingMGDA(target='max')(grads)
    assert torch.isfinite(out).all() and out.norm() < 1e-9 * g.norm()


@pytest.mark.parametrize('num_tasks,seed', [(2, 0), (3, 1), (4, 2)])
def test_dbmtl_every_task_at_the_largest_norm(num_tasks, seed):
    grads = _lopsided(num_tasks, seed)
    cal = DBMTL()
    weights = cal.weights(_gram(grads))
    parts = weights[:, None] * grads  # each task's share of g
    top = grads.norm(dim=1).max()
    assert torch.allclose(parts.norm(dim=1), top.expand(num_tasks),
                          rtol=1e-10)
    assert torch.allclose(cal(grads), parts.sum(0), atol=1e-9)
    if num_tasks == 2:  # two unit vectors: their sum conflicts with neither
        assert (grads @ cal(grads) >= 0).all()


@pytest.mark.parametrize('relax', [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize('num_tasks,seed', [(2, 0), (3, 1)])
def test_metabalance_moves_magnitudes_toward_the_largest(num_tasks, seed,
                                                         relax):
    grads = _lopsided(num_tasks, seed)
    norms = grads.norm(dim=1)
    weights = MetaBalance(relax=relax).weights(_gram(grads))
    parts = (weights[:, None] * grads).norm(dim=1)
    assert torch.allclose(parts, (1 - relax) * norms + relax * norms.max(),
                          rtol=1e-10)
    assert weights[norms.argmax()].item() == pytest.approx(1.0)
    if relax == 0:  # the plain sum
        assert torch.allclose(MetaBalance(relax)(grads), grads.sum(0))
    if relax == 1:  # DB-MTL's equal magnitudes
        assert torch.allclose(MetaBalance(relax)(grads), DBMTL()(grads))
    # the largest task's share of the step falls as relax grows
    share = parts.max() / parts.sum()
    assert share <= norms.max() / norms.sum() + 1e-12
    with pytest.raises(ValueError, match='relax'):
        MetaBalance(relax=1.5)


@pytest.mark.parametrize('mode', ['min', 'median', 'rmse'])
def test_aligned_mtl_scale_modes(mode):
    grads = _random_g(3, seed=2) * torch.tensor([[1.0], [10.0], [0.1]],
                                                dtype=torch.float64)
    gram = _gram(grads)
    aligned = AlignedMTL(scale_mode=mode).aligning_matrix(gram) @ grads
    lam = torch.linalg.eigvalsh(gram)  # ascending
    sigma2 = dict(min=lam[0], median=lam[1], rmse=lam.mean())[mode]
    # still orthogonal, every aligned gradient at the mode's scale
    assert torch.allclose(aligned @ aligned.t(),
                          sigma2 * torch.eye(3, dtype=torch.float64),
                          atol=1e-8 * float(sigma2))
    if mode == 'rmse':  # the total squared magnitude is kept
        assert (aligned**2).sum().item() == pytest.approx(
            (grads**2).sum().item(), rel=1e-9)
    with pytest.raises(ValueError, match='scale_mode'):
        AlignedMTL(scale_mode='mean')


def test_norm_target_is_checked():
    with pytest.raises(ValueError, match='target'):
        NormKeepingIMTLG(target='mean')


def test_task_calibrator_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r'\(T, N\)'):
        CALIBRATORS.build(dict(type='IMTLG'))(torch.zeros(2, 3, 4))


@pytest.mark.parametrize('target', ['mean', 'max', 'min'])
def test_equal_norm(target):
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(2, 4, 5, 5, generator=gen) * s for s in (0.1, 5.0)]
    norms = torch.stack([g.norm() for g in grads])
    out = CALIBRATORS.build(dict(type='EqualNorm', target=target))(grads)
    new = torch.stack([g.norm() for g in out])
    assert torch.allclose(new, new[0].expand(2), rtol=1e-5)
    expect = dict(mean=norms.mean(), max=norms.max(), min=norms.min())[target]
    assert new[0].item() == pytest.approx(expect.item(), rel=1e-5)
    if target == 'mean':  # total magnitude kept
        assert new.sum().item() == pytest.approx(norms.sum().item(), rel=1e-5)
    for g, o in zip(grads, out):  # only rescaled, direction kept
        assert torch.allclose(o / o.norm(), g / g.norm(), atol=1e-6)


def test_equal_norm_degenerate():
    cal = EqualNorm()
    a = torch.ones(3)
    out = cal([a, 3 * a, torch.zeros(3)])  # zero branch: untouched, ignored
    assert torch.allclose(out[0], 2 * a) and torch.allclose(out[1], 2 * a)
    assert torch.equal(out[2], torch.zeros(3))
    bad = [a.clone(), a * float('inf')]
    out = cal(bad)
    assert out[0] is bad[0] and out[1] is bad[1]
    assert torch.equal(cal([a])[0], a)  # one branch: nothing to balance
    per_sample = cal.scales(torch.tensor([[1.0, 4.0], [3.0, 4.0]]))
    assert torch.allclose(per_sample, torch.tensor([[2.0, 1.0],
                                                    [2 / 3, 1.0]],
                                                   dtype=torch.float64))
    with pytest.raises(ValueError, match='target'):
        EqualNorm(target='median')


def test_identity_modality():
    grads = [torch.ones(2), 5 * torch.ones(2)]
    out = CALIBRATORS.build(dict(type='Identity'))(grads)
    assert all(torch.equal(a, b) for a, b in zip(grads, out))
