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

    def __init__(self, rtol: float = 1e-10) -> None:
        self.rtol = rtol

    def aligning_matrix(self, gram: Tensor) -> Tensor:
        """``B`` (T, T) such that the rows of ``B G`` are the aligned
        gradients."""
        lam, vec = torch.linalg.eigh(gram)
        keep = lam > self.rtol * float(lam.max())
        lam, vec = lam[keep], vec[:, keep]
        sigma_min = torch.sqrt(lam.min())
        return sigma_min * (vec / torch.sqrt(lam)[None, :]) @ vec.t()

    def _weights(self, gram: Tensor) -> Tensor:
        return self.aligning_matrix(gram).sum(0)

    def __repr__(self) -> str:
        return f'AlignedMTL(rtol={self.rtol})'
