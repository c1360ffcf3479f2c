"""Base classes of the gradient calibrators and the Gram-matrix helpers.

Every calibrator works on small statistics of the branch gradients, never on
stacked copies of them (design.md, "Cost"):

* a task calibrator turns the ``T x T`` Gram matrix ``M = G G^T`` of the task
  gradients into combination weights ``a`` (T,); the calibrated gradient is
  the single weighted sum ``g = sum_t a_t g_t``;
* a modality calibrator turns the branch gradient norms (K,) into one scale
  factor per branch.

The small problems are solved in float64 on the CPU, which is exact enough for
the ill-conditioned cases (nearly parallel gradients) and costs microseconds.
"""
from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor

from ..registry import CALIBRATORS

#: A task gradient counts as zero when its squared norm is below ZERO_TOL
#: times the largest one (a norm ratio of 1e-12).
ZERO_TOL = 1e-24


def pairwise_dots(grads: Sequence[Tensor], per_sample: bool = False) -> Tensor:
    """Gram matrix of gradients, in (at least) float32 dot products.

    Args:
        grads: T tensors of one shape (B, ...).
        per_sample: one Gram matrix per leading (batch) index instead of one
            for the whole tensor.

    Returns:
        Tensor: (B, T, T) if ``per_sample`` else (1, T, T), on the device of
        the gradients. Summing over the first dimension always gives
        the Gram matrix of the whole tensors.
    """
    num = len(grads)
    batch = grads[0].shape[0] if per_sample else 1
    rows = [g.reshape(batch, -1) for g in grads]
    # half-precision gradients are summed in float32 (their squares overflow)
    rows = [r.float() if r.element_size() < 4 else r for r in rows]
    entries = {}
    for i in range(num):
        for j in range(i, num):
            dot = torch.bmm(rows[i].unsqueeze(1), rows[j].unsqueeze(2))
            entries[i, j] = dot.reshape(batch)
    flat = torch.stack([
        entries[min(i, j), max(i, j)] for i in range(num) for j in range(num)
    ], dim=1)
    return flat.reshape(batch, num, num)


def combine(grads: Sequence[Tensor], weights: Tensor) -> Tensor:
    """Weighted sum of gradients, allocating only the output.

    Args:
        grads: T tensors of one shape (B, ...).
        weights: (T,) one weight per gradient, or (B, T) one per sample.

    Returns:
        Tensor: ``sum_t weights[..., t] * grads[t]``, shape (B, ...), in the
        dtype of the gradients.
    """
    ref = grads[0]
    w = weights.to(device=ref.device, dtype=ref.dtype)
    if w.dim() == 2:  # per sample: broadcast (B, T) over (B, ...)
        w = w.reshape(w.shape + (1, ) * (ref.dim() - 1))
        cols = [w[:, t] for t in range(len(grads))]
    else:
        cols = [w[t] for t in range(len(grads))]
    out = torch.mul(ref, cols[0])
    for g, c in zip(grads[1:], cols[1:]):
        out.addcmul_(g, c)
    return out


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of ``v`` (T,) onto the probability simplex."""
    u, _ = torch.sort(v, descending=True)
    css = torch.cumsum(u, 0) - 1
    idx = torch.arange(1, v.numel() + 1, dtype=v.dtype)
    rho = int(torch.nonzero(u - css / idx > 0).max())
    theta = css[rho] / (rho + 1)
    return torch.clamp(v - theta, min=0)


class BaseTaskCalibrator:
    """Combines T task gradients into one: ``G (T, N) -> g (N,)``.

    Subclasses implement :meth:`_weights` for a well-posed Gram matrix (finite,
    T >= 2, no zero gradient); this base class handles the degenerate cases:

    * non-finite statistics: plain sum (the gradients pass through untouched,
      so an AMP grad scaler still sees the overflow);
    * one task: its gradient;
    * zero task gradients: weight 0, the others are calibrated among
      themselves.
    """

    def weights(self, gram: Tensor) -> Tensor:
        """Combination weights from Gram matrices.

        Args:
            gram: (T, T) or (B, T, T) Gram matrix of the task gradients.

        Returns:
            Tensor: (T,) or (B, T) float64 weights on the CPU.
        """
        gram = gram.detach().to('cpu', torch.float64)
        if gram.dim() == 3:
            return torch.stack([self.weights(m) for m in gram])
        num = gram.shape[0]
        if not bool(torch.isfinite(gram).all()):
            return torch.ones(num, dtype=torch.float64)
        diag = torch.diagonal(gram)
        active = diag > ZERO_TOL * max(float(diag.max()), 0.0)
        weights = torch.zeros(num, dtype=torch.float64)
        if int(active.sum()) == 0:
            return torch.ones(num, dtype=torch.float64)
        if int(active.sum()) == 1:
            weights[active] = 1.0
            return weights
        sub = gram[active][:, active]
        weights[active] = self._weights(sub)
        return weights

    def _weights(self, gram: Tensor) -> Tensor:
        """Weights (T,) for a finite (T, T) float64 Gram matrix, T >= 2, with
        a positive diagonal."""
        raise NotImplementedError

    def __call__(self, grads: Tensor) -> Tensor:
        """Calibrated gradient of the rows of ``grads``.

        Args:
            grads: (T, N) task gradients, one per row.

        Returns:
            Tensor: (N,) the combined gradient.
        """
        if grads.dim() != 2:
            raise ValueError('a task calibrator takes G of shape (T, N), got '
                             f'{tuple(grads.shape)}; flatten each task '
                             'gradient into one row')
        rows = list(grads)
        if not bool(torch.isfinite(grads).all()):
            return grads.sum(0)
        gram = pairwise_dots([r.unsqueeze(0) for r in rows])[0]
        return combine(rows, self.weights(gram))

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


class BaseModalityCalibrator:
    """Rescales K branch gradients: ``[g_1, ..., g_K] -> [s_1 g_1, ...]``.

    Subclasses implement :meth:`_scales` for finite positive norms; zero or
    non-finite norms get scale 1 (untouched).
    """

    def scales(self, norms: Tensor) -> Tensor:
        """Scale factor per branch (and per sample).

        Args:
            norms: (K,) or (K, B) gradient norms.

        Returns:
            Tensor: float64 CPU tensor of the shape of ``norms``.
        """
        norms = norms.detach().to('cpu', torch.float64)
        if not bool(torch.isfinite(norms).all()):
            return torch.ones_like(norms)
        if norms.dim() == 2:
            return torch.stack([self.scales(n) for n in norms.t()], dim=1)
        out = torch.ones_like(norms)
        valid = norms > 0
        if int(valid.sum()) >= 1:
            out[valid] = self._scales(norms[valid])
        return out

    def _scales(self, norms: Tensor) -> Tensor:
        """Scales (K,) for positive finite float64 norms (K,)."""
        raise NotImplementedError

    def __call__(self, grads: Sequence[Tensor]) -> List[Tensor]:
        """Rescaled branch gradients (a new list; inputs are not modified)."""
        if not bool(all(torch.isfinite(g).all() for g in grads)):
            return list(grads)
        norms = torch.stack([g.detach().float().norm() for g in grads])
        return [
            g * float(s) if float(s) != 1.0 else g
            for g, s in zip(grads, self.scales(norms))
        ]

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


def check_names(names: Optional[Sequence[str]], what: str) -> tuple:
    """Validated tuple of branch names (non-empty, unique strings)."""
    if names is None or isinstance(names, str) or len(names) == 0:
        raise ValueError(f'{what} must be a non-empty sequence of names, e.g. '
                         "('det', 'seg'), got {names!r}")
    names = tuple(names)
    if len(set(names)) != len(names) or not all(
            isinstance(n, str) for n in names):
        raise ValueError(f'{what} must be unique strings, got {names!r}')
    return names


#: The calibrator base class each calibration level needs.
LEVEL_BASES = {'inter': BaseTaskCalibrator, 'intra': BaseModalityCalibrator}


def registered_calibrators(level: str) -> List[str]:
    """Sorted names of the registered calibrators usable at ``level``
    (``'inter'``: task calibrators, ``'intra'``: modality calibrators)."""
    base = LEVEL_BASES[level]
    return sorted(name for name, cls in CALIBRATORS.module_dict.items()
                  if issubclass(cls, base))


def normalize_calibrator_cfg(cfg: Union[None, str, dict],
                             level: Optional[str] = None) -> Optional[dict]:
    """A calibrator config as a dict: a bare name is shorthand for
    ``dict(type=NAME)`` (``inter='IMTLG'``); None (or 'None') stays None.

    Raises:
        ValueError: an unknown name (the message lists the registered
            calibrators of ``level``, or of both levels).
    """
    if cfg is None or (isinstance(cfg, str) and cfg.lower() == 'none'):
        return None
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'calibration {level or "calibrator"} must be a '
                         f"calibrator name, dict(type=NAME, ...) or None, "
                         f'got {cfg!r}')
    name = cfg['type']
    if isinstance(name, str):
        cls = CALIBRATORS.get(name)
        base = LEVEL_BASES.get(level, (BaseTaskCalibrator,
                                       BaseModalityCalibrator))
        if cls is None or not issubclass(cls, base):
            levels = [level] if level in LEVEL_BASES else list(LEVEL_BASES)
            names = ', '.join(n for lv in levels
                              for n in registered_calibrators(lv))
            raise ValueError(f'unknown {level or ""} calibrator {name!r}; '
                             f'registered: {names} (or None for off)')
    return dict(cfg)


def build_optional(
    cfg: Union[None, str, dict],
    level: Optional[str] = None,
) -> Optional[Union[BaseTaskCalibrator, BaseModalityCalibrator]]:
    """``CALIBRATORS.build(cfg)``, or None (level off) for ``cfg=None``;
    ``cfg`` may be a bare calibrator name."""
    cfg = normalize_calibrator_cfg(cfg, level)
    if cfg is None:
        return None
    args = dict(cfg)
    kind = args.pop('type')
    # a class from the registry, not CALIBRATORS.build: under a config's
    # default_scope (mmdet3d) the build warns that this registry (scope
    # fuller) is outside that scope's tree
    cls = CALIBRATORS.get(kind) if isinstance(kind, str) else kind
    return cls(**args)
