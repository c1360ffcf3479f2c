"""Task-level (inter-gradient) calibrators: ``G (T, N) -> g (N,)``.

Each one only computes combination weights from the Gram matrix
``M = G G^T`` (T, T); see :class:`~fuller.calibration.base.BaseTaskCalibrator`.
Notation: ``g_t`` task gradients, ``n_t = |g_t| = sqrt(M_tt)``,
``u_t = g_t / n_t``.
"""
import itertools
import torch
from torch import Tensor

from ..registry import CALIBRATORS
from .base import BaseTaskCalibrator, project_simplex

_F64 = torch.float64


def _min_norm_weights(gram: Tensor) -> Tensor:
    """Exact minimiser of ``w^T M w`` over the probability simplex.

    Enumerates the faces of the simplex: on each face the minimiser over the
    face's affine hull solves the KKT system ``[[2 M_SS, 1], [1^T, 0]]``;
    the best feasible candidate over all faces is the global minimum (a
    minimiser that leaves the face through a negative weight has an equally
    good one on a smaller face). 2^T - 1 tiny solves: fine for T <= 12.
    """
    num = gram.shape[0]
    if num > 12:
        raise ValueError(f'MGDA enumerates 2^T faces; T={num} tasks is too '
                         'many (at most 12)')
    if num == 2:  # closed form on the segment
        denom = gram[0, 0] + gram[1, 1] - 2 * gram[0, 1]
        lam = 0.5 if float(denom) <= 0 else float(
            torch.clamp((gram[1, 1] - gram[0, 1]) / denom, 0.0, 1.0))
        return torch.tensor([lam, 1.0 - lam], dtype=_F64)
    best, best_val = None, 0.0
    for size in range(1, num + 1):
        for face in itertools.combinations(range(num), size):
            idx = torch.tensor(face)
            kkt = torch.zeros(size + 1, size + 1, dtype=_F64)
            kkt[:size, :size] = 2 * gram[idx][:, idx]
            kkt[:size, size] = 1.0
            kkt[size, :size] = 1.0
            rhs = torch.zeros(size + 1, dtype=_F64)
            rhs[size] = 1.0
            sol = torch.linalg.pinv(kkt) @ rhs
            w_face = sol[:size]
            feasible = (float(w_face.min()) >= -1e-10
                        and abs(float(w_face.sum()) - 1) <= 1e-8)
            if not feasible:
                continue
            w = torch.zeros(num, dtype=_F64)
            w[idx] = torch.clamp(w_face, min=0)
            w = w / w.sum()
            val = float(w @ gram @ w)
            if best is None or val < best_val:
                best, best_val = w, val
    return best


@CALIBRATORS.register_module()
class Sum(BaseTaskCalibrator):
    """Plain multi-task learning: ``g = sum_t g_t`` (the naive baseline)."""

    def weights(self, gram: Tensor) -> Tensor:
        shape = gram.shape[:-1]
        return torch.ones(shape, dtype=_F64)


@CALIBRATORS.register_module()
class IMTLG(BaseTaskCalibrator):
    """IMTL-G, the gradient part of Impartial Multi-Task Learning.

    Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021.
    ``g = sum_t a_t g_t`` with ``sum_t a_t = 1`` and equal projections
    ``g . u_t`` on every unit task gradient. With ``D`` rows ``g_1 - g_t``
    and ``U`` rows ``u_1 - u_t`` (t >= 2):
    ``a_{2..T} = g_1 U^T (D U^T)^-1``, ``a_1 = 1 - sum a_{2..T}``.
    Every product is read off the Gram matrix:
    ``g_s . u_t = M_st / n_t``. A singular ``D U^T`` (identical or
    collinear gradients) is solved with the pseudo-inverse.
    """

    def _weights(self, gram: Tensor) -> Tensor:
        norms = torch.sqrt(torch.diagonal(gram))
        gu = gram / norms[None, :]  # gu[s, t] = g_s . u_t
        first = gu[0, 0] - gu[0, 1:]  # g_1 . (u_1 - u_t)
        # (g_1 - g_s) . (u_1 - u_t)
        du = (gu[0, 0] - gu[0, 1:])[None, :] - (gu[1:, 0:1] - gu[1:, 1:])
        rest = first @ torch.linalg.pinv(du, rtol=1e-10)
        return torch.cat([(1 - rest.sum()).reshape(1), rest])


@CALIBRATORS.register_module()
class MGDA(BaseTaskCalibrator):
    """MGDA: the minimum-norm point of the convex hull of the task gradients.

    Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization",
    NeurIPS 2018 (applied on the shared feature, this is their MGDA-UB).
    ``a = argmin_{a in simplex} |sum_t a_t g_t|^2 = argmin a^T M a``,
    solved exactly (closed form for T = 2, face enumeration otherwise).
    """

    def _weights(self, gram: Tensor) -> Tensor:
        return _min_norm_weights(gram)


@CALIBRATORS.register_module()
class PCGrad(BaseTaskCalibrator):
    """PCGrad, projecting conflicting gradients.

    Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020.
    For every task i, in a random order over the other tasks j: if
    ``g_i' . g_j < 0`` then ``g_i' <- g_i' - (g_i' . g_j) / |g_j|^2 g_j``;
    ``g = sum_i g_i'``. Each ``g_i'`` is tracked as coefficients over the
    original gradients, so all dot products come from the Gram matrix.

    Args:
        seed: seed of the task-order generator (calls are deterministic for a
            given seed and call sequence).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._gen = torch.Generator().manual_seed(seed)

    def projection_coefficients(self, gram: Tensor) -> Tensor:
        """``C`` (T, T): the projected gradients are ``g_i' = C[i] @ G``.

        Draws one random task order per task from the generator.
        """
        num = gram.shape[0]
        coef = torch.eye(num, dtype=_F64)
        for i in range(num):
            for j in torch.randperm(num, generator=self._gen).tolist():
                if j == i:
                    continue
                dot = coef[i] @ gram[:, j]
                if float(dot) < 0:
                    coef[i, j] -= dot / gram[j, j]
        return coef

    def _weights(self, gram: Tensor) -> Tensor:
        return self.projection_coefficients(gram).sum(0)

    def __repr__(self) -> str:
        return f'PCGrad(seed={self.seed})'


@CALIBRATORS.register_module()
class CAGrad(BaseTaskCalibrator):
    """CAGrad, conflict-averse gradient descent.

    Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning",
    NeurIPS 2021. With ``g_0`` the mean gradient and ``phi = c^2 |g_0|^2``:
    ``w* = argmin_{w in simplex} g_w . g_0 + sqrt(phi) |g_w|`` and
    ``d = g_0 + sqrt(phi) / |g_w*| g_w*``, the direction within the ball
    ``|d - g_0| <= c |g_0|`` that maximises the worst task improvement
    ``min_t g_t . d``. ``rescale`` divides by ``1 + c^2`` as in the paper.

    Args:
        c: radius of the ball, relative to ``|g_0|`` (0 gives the mean).
        rescale: divide the result by ``1 + c^2``.
        iters: projected-gradient iterations of the small (T,) problem.
    """

    def __init__(self, c: float = 0.4, rescale: bool = True,
                 iters: int = 500) -> None:
        if c < 0:
            raise ValueError(f'CAGrad needs c >= 0, got {c}')
        self.c, self.rescale, self.iters = c, rescale, iters

    def _weights(self, gram: Tensor) -> Tensor:
        num = gram.shape[0]
        mean_w = torch.full((num, ), 1.0 / num, dtype=_F64)
        g0_norm = torch.sqrt(torch.clamp(mean_w @ gram @ mean_w, min=0))
        radius = self.c * g0_norm
        out = mean_w.clone()
        if float(radius) > 0:
            w = self._solve(gram, mean_w, radius)
            gw_norm = torch.sqrt(torch.clamp(w @ gram @ w, min=0))
            if float(gw_norm) > 0:
                out = out + radius / gw_norm * w
        if self.rescale:
            out = out / (1 + self.c**2)
        return out

    def _solve(self, gram: Tensor, mean_w: Tensor, radius: Tensor) -> Tensor:
        lin = gram @ mean_w  # gradient of g_w . g_0
        scale = float(torch.linalg.matrix_norm(gram, 2))
        w = mean_w.clone()
        eps = 1e-12 * max(scale, 1e-30)
        for _ in range(self.iters):
            gw = torch.sqrt(torch.clamp(w @ gram @ w, min=0)) + eps
            grad = lin + radius * (gram @ w) / gw
            step = float(gw) / (scale * float(radius) + float(gw) * scale)
            w = project_simplex(w - step * grad)
        return w

    def __repr__(self) -> str:
        return f'CAGrad(c={self.c}, rescale={self.rescale})'


@CALIBRATORS.register_module()
class AlignedMTL(BaseTaskCalibrator):
    """Aligned-MTL: align the task gradients into an orthogonal, equally
    scaled system before summing.

    Senushkin et al., "Independent Component Alignment for Multi-Task
    Learning", CVPR 2023. With ``M = V diag(lambda) V^T`` (non-zero part) and
    ``sigma_min = sqrt(min lambda)``, the aligned gradients are
    ``G' = B G`` with ``B = sigma_min V diag(lambda)^(-1/2) V^T``: their
    non-zero singular values all equal ``sigma_min``. ``g = sum_t g'_t``, so
    ``a = B^T 1``.

    Args:
        rtol: eigenvalues below ``rtol * max eigenvalue`` count as zero.
    """

    SCALE_MODES = ('min', 'median', 'rmse')

    def __init__(self, rtol: float = 1e-10, scale_mode: str = 'min') -> None:
        if scale_mode not in self.SCALE_MODES:
            raise ValueError(f'AlignedMTL scale_mode must be one of '
                             f'{self.SCALE_MODES}, got {scale_mode!r}')
        self.rtol, self.scale_mode = rtol, scale_mode

    def aligning_matrix(self, gram: Tensor) -> Tensor:
        """``B`` (T, T) such that the rows of ``B G`` are the aligned
        gradients."""
        lam, vec = torch.linalg.eigh(gram)
        keep = lam > self.rtol * float(lam.max())
        lam, vec = lam[keep], vec[:, keep]
        if self.scale_mode == 'min':
            sigma = torch.sqrt(lam.min())
        elif self.scale_mode == 'median':  # the lower median, as torch's
            sigma = torch.sqrt(torch.sort(lam).values[(len(lam) - 1) // 2])
        else:  # rmse: the aligned system keeps trace(M) = sum_t |g_t|^2
            sigma = torch.sqrt(lam.mean())
        return sigma * (vec / torch.sqrt(lam)[None, :]) @ vec.t()

    def _weights(self, gram: Tensor) -> Tensor:
        return self.aligning_matrix(gram).sum(0)

    def __repr__(self) -> str:
        return f'AlignedMTL(rtol={self.rtol}, scale_mode={self.scale_mode!r})'


#: Norm targets of the magnitude-keeping calibrators.
NORM_TARGETS = ('sum', 'max')


def target_norm(gram: Tensor, target: str) -> Tensor:
    """Norm a magnitude-keeping calibrator gives its combined gradient.

    ``'sum'``: ``|sum_t g_t| = sqrt(1^T M 1)``, the norm of the naive sum (so
    the step into the shared backbone is as large as plain multi-task
    learning's); ``'max'``: ``max_t |g_t| = sqrt(max_t M_tt)``, the largest
    task gradient's norm.
    """
    if target == 'sum':
        return torch.sqrt(torch.clamp(gram.sum(), min=0))
    return torch.sqrt(torch.diagonal(gram).max())


def rescale_weights(weights: Tensor, gram: Tensor, norm: Tensor) -> Tensor:
    """``weights`` times ``c > 0`` such that ``|sum_t c a_t g_t| = norm``
    (``|sum_t a_t g_t|^2 = a^T M a``). A zero combination stays zero: there
    is no direction to scale."""
    current = torch.sqrt(torch.clamp(weights @ gram @ weights, min=0))
    scale_ref = torch.sqrt(torch.diagonal(gram).max())
    if float(current) <= 1e-12 * float(scale_ref):
        return weights
    return weights * (norm / current)


class _NormKeeping(BaseTaskCalibrator):
    """The direction of another calibrator with the norm set to a target.

    Equal-projection and min-norm calibrators (IMTL-G, MGDA) return a convex
    combination of the task gradients, about as long as the smallest one:
    when one task's gradient on the shared feature is 10-20x the other's,
    they shrink the step of the larger task by about that factor. These
    variants keep their direction (so every property that is invariant to a
    positive factor, equal projections or no conflict, still holds) and set
    the norm of the result to :func:`target_norm`. Everything comes from the
    Gram matrix: ``|g|^2 = a^T M a``.

    Args:
        target: ``'sum'`` (the naive sum's norm) or ``'max'`` (the largest
            task gradient's norm).
    """
    direction_cls: type = BaseTaskCalibrator

    def __init__(self, target: str = 'sum') -> None:
        if target not in NORM_TARGETS:
            raise ValueError(f'{type(self).__name__} target must be one of '
                             f'{NORM_TARGETS}, got {target!r}')
        self.target = target
        self.direction = self.direction_cls()

    def _weights(self, gram: Tensor) -> Tensor:
        return rescale_weights(self.direction._weights(gram), gram,
                               target_norm(gram, self.target))

    def __repr__(self) -> str:
        return f'{type(self).__name__}(target={self.target!r})'


@CALIBRATORS.register_module()
class NormKeepingIMTLG(_NormKeeping):
    """IMTL-G's direction with the norm of the naive sum (or of the largest
    task gradient).

    ``g = c * sum_t a_t g_t`` with ``a`` the IMTL-G weights (Liu et al.,
    ICLR 2021; see :class:`IMTLG`) and ``c = |target| / sqrt(a^T M a)``:
    equal projections on every unit task gradient, as IMTL-G, without
    IMTL-G's shrinking of the step to about the smallest task gradient.
    ``target``: see :func:`target_norm`.
    """
    direction_cls = IMTLG


@CALIBRATORS.register_module()
class NormKeepingMGDA(_NormKeeping):
    """MGDA-UB's direction with the norm of the naive sum (or of the largest
    task gradient).

    ``g = c * d`` with ``d`` the min-norm point of the convex hull of the
    task gradients (Sener & Koltun, NeurIPS 2018; see :class:`MGDA`) and
    ``c = |target| / |d|``. ``d`` conflicts with no task
    (``g_t . d >= |d|^2``), and neither does ``c d``; the min-norm point is
    short (zero at a Pareto-stationary point, where it stays zero), which is
    what the rescaling undoes. ``target``: see :func:`target_norm`.
    """
    direction_cls = MGDA


@CALIBRATORS.register_module()
class DBMTL(BaseTaskCalibrator):
    """Gradient-magnitude balancing of DB-MTL (dual balancing).

    Lin et al., "Dual-Balancing for Multi-Task Learning", arXiv 2308.12029
    (2023). Every task gradient is scaled to the largest task-gradient norm,
    then they are summed: ``g = max_k |g_k| * sum_t g_t / |g_t|``, i.e.
    ``a_t = max_k sqrt(M_kk) / sqrt(M_tt)``. No task is shrunk: the largest
    keeps its step and the others are raised to it.

    Two parts of the paper are left out, on purpose: its loss-scale balancing
    (training on ``log L_t``) only changes the common factor of this rule
    when applied on the shared feature, and its exponential moving average of
    the task gradients would store a copy of every task gradient (the
    junction works on the Gram matrix only).
    """

    def _weights(self, gram: Tensor) -> Tensor:
        norms = torch.sqrt(torch.diagonal(gram))
        return norms.max() / norms


@CALIBRATORS.register_module()
class MetaBalance(BaseTaskCalibrator):
    """Gradient magnitudes moved part of the way to the largest one.

    He et al., "MetaBalance: Improving Multi-Task Recommendations via
    Adapting Gradient Magnitudes of Auxiliary Tasks", WWW 2022: an auxiliary
    gradient becomes ``g_t (r |g_tar| / |g_t| + 1 - r)`` with relax factor
    ``r``. Here the target is the largest task gradient (no task is singled
    out as the main one): ``a_t = 1 - r + r max_k |g_k| / |g_t|``, so
    ``|a_t g_t| = (1 - r) |g_t| + r max_k |g_k|``. ``r = 0`` is the plain sum,
    ``r = 1`` is :class:`DBMTL`'s equal magnitudes; in between the larger
    task keeps a larger share of the step. That share, not the overall
    length, is what an Adam-type optimizer sees (a common factor on every
    gradient into the shared layers is normalised away), so this is the knob
    between naive learning and equal shares. The paper's moving average of
    the norms is left out (per step, as the other calibrators).

    Args:
        relax: ``r`` in [0, 1].
    """

    def __init__(self, relax: float = 0.5) -> None:
        if not 0.0 <= relax <= 1.0:
            raise ValueError(f'MetaBalance relax must be in [0, 1], got {relax}')
        self.relax = relax

    def _weights(self, gram: Tensor) -> Tensor:
        norms = torch.sqrt(torch.diagonal(gram))
        return 1.0 - self.relax + self.relax * norms.max() / norms

    def __repr__(self) -> str:
        return f'MetaBalance(relax={self.relax})'
