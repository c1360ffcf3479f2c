"""Autograd junctions: identity in the forward pass, calibration in backward.

A junction is a point of the network where several gradients meet:

* :class:`TaskJunction` fans the shared BEV feature ``z`` out to one copy per
  task head. In backward it receives every task gradient ``g_t = dL_t/dz``
  together and returns the calibrated combination ``sum_t a_t g_t`` (the
  weights come from a task calibrator and the Gram matrix of the ``g_t``).
* :class:`ModalityJunction` passes the per-modality features on to the fuser.
  In backward it receives ``(g_cam, g_lid, ...)`` and returns them rescaled by
  a modality calibrator.

Both only rearrange gradients that autograd computes anyway, so calibration
costs no extra backward pass. Unarmed (the default, and always in eval mode or
under ``torch.no_grad``) they are plain identities with no autograd node.
``FullerOptimWrapper`` arms them; a user can also call :meth:`arm` directly.

The copies handed out in forward are views of the input: heads must not modify
them in place (e.g. a leading ``ReLU(inplace=True)``).
"""
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

from .base import check_names, combine, pairwise_dots

#: ``reduce(t)`` all-reduces (sums) a small float64 CPU tensor in place.
Reducer = Callable[[Tensor], None]
#: ``recorder(record)`` receives the statistics of one backward pass.
Recorder = Callable[[dict], None]


class JunctionState(NamedTuple):
    """What a junction does in one backward pass (snapshot taken in forward).

    Attributes:
        names: branch names (tasks or modalities).
        calibrator: task or modality calibrator, or None (pass through).
        per_sample: calibrate each sample of the batch on its own.
        reduce: all-reduce of the small statistics (``sync=True`` under DDP),
            or None.
        recorder: receives the statistics, or None.
    """
    names: tuple
    calibrator: Optional[Callable]
    per_sample: bool
    reduce: Optional[Reducer]
    recorder: Optional[Recorder]


def _present(grads: Sequence[Optional[Tensor]], names: tuple):
    idx = [i for i, g in enumerate(grads) if g is not None]
    return idx, [grads[i] for i in idx], tuple(names[i] for i in idx)


def calibrate_tasks(state: JunctionState,
                    grads: Sequence[Optional[Tensor]]) -> Optional[Tensor]:
    """Backward of the task junction: combined gradient of the task copies.

    Args:
        state: the junction's arming.
        grads: T gradients (B, C, H, W), None for a head that got no loss.

    Returns:
        Tensor or None: (B, C, H, W) calibrated gradient for ``z``.
    """
    _, present, names = _present(grads, state.names)
    if not present:
        return None
    gram = pairwise_dots(present, state.per_sample).to('cpu', torch.float64)
    if state.reduce is not None:
        state.reduce(gram)
    finite = bool(torch.isfinite(gram).all())
    if state.calibrator is not None and finite:
        weights = state.calibrator.weights(
            gram if state.per_sample else gram[0])
    else:
        weights = torch.ones(len(present), dtype=torch.float64)
    # one task: its weight is always 1 (see BaseTaskCalibrator.weights)
    out = present[0] if len(present) == 1 else combine(present, weights)
    if state.recorder is not None:
        state.recorder(
            dict(
                kind='task',
                names=names,
                gram=gram.sum(0),
                weights=weights.reshape(-1, len(present)).mean(0),
                finite=finite))
    return out


def calibrate_modalities(
        state: JunctionState,
        grads: Sequence[Optional[Tensor]]) -> List[Optional[Tensor]]:
    """Backward of the modality junction: rescaled branch gradients.

    Args:
        state: the junction's arming.
        grads: K gradients (B, C_k, H, W), None for an unused branch.

    Returns:
        list: the K gradients, rescaled (None stays None).
    """
    idx, present, names = _present(grads, state.names)
    out = list(grads)
    if not present or (state.calibrator is None and state.recorder is None):
        return out
    # norms over all but the batch dim (per sample) or all dims; no reshape,
    # which would copy the (often non-contiguous) slices of the fuser's grad
    sq = torch.stack([
        torch.linalg.vector_norm(
            g,
            dim=tuple(range(1, g.dim())) if state.per_sample else None,
            dtype=torch.float32).reshape(-1)**2 for g in present
    ]).to('cpu', torch.float64)  # (K, B) or (K, 1)
    if state.reduce is not None:
        state.reduce(sq)
    finite = bool(torch.isfinite(sq).all())
    norms = torch.sqrt(sq)
    if state.calibrator is not None and finite:
        scales = state.calibrator.scales(norms)
    else:
        scales = torch.ones_like(norms)
    for k, (i, g) in enumerate(zip(idx, present)):
        s = scales[k]
        if bool((s == 1).all()):
            continue
        if state.per_sample:
            out[i] = g * s.to(g.device, g.dtype).reshape((-1, ) + (1, ) *
                                                         (g.dim() - 1))
        else:
            out[i] = g * float(s)
    if state.recorder is not None:
        state.recorder(
            dict(
                kind='modality',
                names=names,
                norms_before=torch.sqrt(sq.sum(1)),
                norms_after=torch.sqrt((sq * scales**2).sum(1)),
                finite=finite))
    return out


class _TaskJunctionFn(torch.autograd.Function):

    @staticmethod
    def forward(ctx, state: JunctionState, z: Tensor):
        ctx.state = state
        ctx.set_materialize_grads(False)
        return tuple(z.view_as(z) for _ in state.names)

    @staticmethod
    def backward(ctx, *grads):
        return None, calibrate_tasks(ctx.state, grads)


class _ModalityJunctionFn(torch.autograd.Function):

    @staticmethod
    def forward(ctx, state: JunctionState, *feats: Tensor):
        ctx.state = state
        ctx.set_materialize_grads(False)
        return tuple(f.view_as(f) for f in feats)

    @staticmethod
    def backward(ctx, *grads):
        return (None, *calibrate_modalities(ctx.state, grads))


class BaseJunction(nn.Module):
    """Common arming logic of the junctions.

    Attributes:
        calibrator: the armed calibrator, None when unarmed.
        per_sample, reduce, recorder: see :class:`JunctionState`.
    """

    def __init__(self, names: Sequence[str], what: str) -> None:
        super().__init__()
        self._names = check_names(names, what)
        self.disarm()

    def arm(self,
            calibrator: Optional[Callable] = None,
            per_sample: bool = False,
            reduce: Optional[Reducer] = None,
            recorder: Optional[Recorder] = None) -> None:
        """Set what the next backward passes do (None: pass through)."""
        self.calibrator = calibrator
        self.per_sample = per_sample
        self.reduce = reduce
        self.recorder = recorder

    def disarm(self) -> None:
        """Back to a plain identity."""
        self.arm(None)

    def _state(self) -> Optional[JunctionState]:
        """The snapshot for this forward, None when nothing is to be done."""
        if not (self.training and torch.is_grad_enabled()):
            return None
        if self.calibrator is None and self.recorder is None:
            return None
        return JunctionState(self._names, self.calibrator, self.per_sample,
                             self.reduce, self.recorder)

    def extra_repr(self) -> str:
        return f'{self._names}, calibrator={self.calibrator!r}'


class TaskJunction(BaseJunction):
    """Fans the shared BEV feature out to one identical copy per task head.

    Args:
        tasks: task names, e.g. ``('det', 'seg')``.

    Forward: ``z`` (B, C, H, W) -> ``{task: z}`` (each (B, C, H, W)).
    Backward (armed): ``dL/dz = sum_t a_t g_t`` from a task calibrator.
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks, 'TaskJunction tasks')

    @property
    def tasks(self) -> tuple:
        return self._names

    def forward(self, z: Tensor) -> Dict[str, Tensor]:
        state = self._state()
        if state is None or not z.requires_grad:
            return {t: z for t in self.tasks}
        return dict(zip(self.tasks, _TaskJunctionFn.apply(state, z)))


class ModalityJunction(BaseJunction):
    """Passes the per-modality BEV features on to the fuser unchanged.

    Args:
        modalities: modality names, e.g. ``('camera', 'lidar')``.

    Forward: list of (B, C_m, H, W) features -> the same list.
    Backward (armed): ``[s_m g_m]`` from a modality calibrator.
    """

    def __init__(self, modalities: Sequence[str]) -> None:
        super().__init__(modalities, 'ModalityJunction modalities')

    @property
    def modalities(self) -> tuple:
        return self._names

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        feats = list(feats)
        if len(feats) != len(self.modalities):
            raise ValueError(
                f'ModalityJunction{self.modalities} got {len(feats)} '
                'features; pass one per modality, in that order')
        state = self._state()
        if state is None or not any(f.requires_grad for f in feats):
            return feats
        return list(_ModalityJunctionFn.apply(state, *feats))
