"""Optimizer wrappers that run FULLER's multi-level gradient calibration.

Registered in both mmdet3d's and mmengine's ``OPTIM_WRAPPERS``, so configs
find them with or without ``default_scope='mmdet3d'``.

``FullerOptimWrapper`` owns the calibration config, arms the model's
junctions (:mod:`fuller.calibration.junctions`) at every training step and
publishes the per-step statistics to mmengine's ``MessageHub``.
``FullerAmpOptimWrapper`` adds mixed precision on the device the model is on:
CUDA float16/bfloat16 with a grad scaler, and CPU bfloat16 autocast
(mmengine's ``AmpOptimWrapper`` refuses to run without a GPU).

Config::

    optim_wrapper = dict(
        type='FullerOptimWrapper',
        optimizer=dict(type='AdamW', lr=2e-4),
        clip_grad=dict(max_norm=35, norm_type=2),
        calibration=dict(
            inter=dict(type='MetaBalance', relax=0.25),  # task level, None = off
            intra=dict(type='EqualNorm'),  # modality level, None = off
            warmup_iters=0,                # plain sum before this iteration
            per_sample=False,              # one calibration per sample
            sync=False))                   # DDP: identical weights on ranks
"""
import math
from contextlib import contextmanager
from typing import Dict, List, Optional, Union

import torch
import torch.distributed as torch_dist
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from torch import Tensor, nn

from ..calibration import (ModalityJunction, TaskJunction, build_optional,
                           normalize_calibrator_cfg)
from ..registry import OPTIM_WRAPPERS

#: Levels of calibration and the junction class each one needs.
LEVELS = {'inter': TaskJunction, 'intra': ModalityJunction}
#: FULLER's default: MetaBalance on the task gradients, the best detection /
#: map trade-off of the 3-seed ablation (docs/results.md; the paper's IMTL-G
#: cost 16.7 mAP there), with relax 0.25 (3.9 mAP lost instead of 9.3 for the
#: same map gain on 3 CPU seeds), and EqualNorm on the modality branches.
DEFAULT_CALIBRATION = dict(
    inter=dict(type='MetaBalance', relax=0.25),
    intra=dict(type='EqualNorm'),
    warmup_iters=0,
    per_sample=False,
    sync=False)
#: Prefix of every statistic in the message hub.
STATS_PREFIX = 'fuller/'


def _short(name: str) -> str:
    return name[:3]


class _GroupReducer:
    """Sums small CPU tensors over all ranks on a dedicated gloo group (so the
    calls made inside backward never interleave with DDP's own
    collectives)."""

    def __init__(self) -> None:
        self.group = torch_dist.new_group(backend='gloo')

    def __call__(self, tensor: Tensor) -> None:
        torch_dist.all_reduce(tensor, group=self.group)


@MMENGINE_OPTIM_WRAPPERS.register_module()
@OPTIM_WRAPPERS.register_module()
class FullerOptimWrapper(OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` with FULLER gradient calibration.

    Args:
        optimizer: the wrapped optimizer (built by the constructor).
        calibration: ``inter`` / ``intra`` calibrator configs (None switches
            a level off), ``warmup_iters``, ``per_sample``, ``sync``; missing
            keys take the defaults (MetaBalance + EqualNorm).
        **kwargs: ``accumulative_counts``, ``clip_grad`` of ``OptimWrapper``.

    Statistics published to the message hub after each backward pass
    (``fuller/`` keys; with several junctions of a kind, the junction's
    module name is inserted after ``fuller/``):

    - ``task_cos`` (mean pairwise cosine of the task gradients; with T > 2
      also ``task_cos/a-b``), ``grad_norm/<task>``, ``weight/<task>``,
      ``grad_norm_after/<task>`` (``|a_t| |g_t|``, the task's share of the
      calibrated gradient), ``shared_norm_before`` / ``_after`` (norm of the
      plain sum / of the calibrated gradient into the shared backbone);
    - ``grad_norm/<modality>``, ``grad_norm_after/<modality>``,
      ``cam_lid_ratio_before`` / ``_after`` (norm ratio of the first two
      modalities, named by their first three letters).
    """

    def __init__(self,
                 optimizer: torch.optim.Optimizer,
                 calibration: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(optimizer=optimizer, **kwargs)
        cfg = dict(DEFAULT_CALIBRATION)
        unknown = set(calibration or {}) - set(cfg)
        if unknown:
            raise KeyError(f'unknown calibration keys {sorted(unknown)}; '
                           f'valid ones are {sorted(cfg)}')
        cfg.update(calibration or {})
        if cfg['per_sample'] and cfg['sync']:
            raise ValueError('calibration per_sample=True and sync=True '
                             'exclude each other: ranks hold different '
                             'samples; choose one')
        if cfg['warmup_iters'] < 0:
            raise ValueError('calibration warmup_iters must be >= 0, got '
                             f"{cfg['warmup_iters']}")
        self.calibration_cfg = cfg
        self.calibrators: Dict[str, Optional[object]] = {}
        for level in LEVELS:
            self.set_calibrator(level, cfg[level])
        self._reducer = None
        self._records: List[tuple] = []
        self._armed = False  # junctions armed since the last backward

    # ---------------------------------------------------------------- config
    def set_calibrator(self, level: str, cfg: Union[None, str, dict]) -> None:
        """Switch a level (``'inter'`` or ``'intra'``) to a calibrator config
        (a bare name is short for ``dict(type=NAME)``), or off with ``None``;
        takes effect at the next step."""
        if level not in LEVELS:
            raise KeyError(f'calibration level must be one of {list(LEVELS)}'
                           f', got {level!r}')
        cfg = normalize_calibrator_cfg(cfg, level)
        self.calibration_cfg[level] = cfg
        self.calibrators[level] = build_optional(cfg, level)

    @property
    def calibrating(self) -> bool:
        """Whether the warm-up is over (the junctions calibrate)."""
        return self._inner_count >= self.calibration_cfg['warmup_iters']

    # ------------------------------------------------------------------ arm
    def _sync_reducer(self) -> Optional[_GroupReducer]:
        if not self.calibration_cfg['sync']:
            return None
        if not (torch_dist.is_available() and torch_dist.is_initialized()
                and torch_dist.get_world_size() > 1):
            return None
        if self._reducer is None:
            self._reducer = _GroupReducer()
        return self._reducer

    def arm_junctions(self, model: nn.Module) -> None:
        """Arm every junction of ``model`` for the next backward pass.

        Raises:
            RuntimeError: a level is switched on but the model has no
                junction of the kind it needs.
        """
        reduce = self._sync_reducer()
        self._armed = True
        for level, junction_type in LEVELS.items():
            found = [(n, m) for n, m in model.named_modules()
                     if isinstance(m, junction_type)]
            calibrator = self.calibrators[level]
            if calibrator is not None and not found:
                raise RuntimeError(
                    f'calibration {level}={self.calibration_cfg[level]} is '
                    f'on, but {type(model).__name__} has no '
                    f'{junction_type.__name__}; place one in the model '
                    '(docs/architecture.md, "Junctions") or set '
                    f'calibration=dict({level}=None)')
            for name, junction in found:
                tag = name.replace('module.', '', 1) if len(found) > 1 else ''
                junction.arm(
                    calibrator if self.calibrating else None,
                    per_sample=self.calibration_cfg['per_sample'],
                    reduce=reduce,
                    recorder=self._recorder(tag))

    def _recorder(self, tag: str):

        def record(stats: dict) -> None:
            self._records.append((tag, stats))

        return record

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Arms the junctions, then mmengine's context (gradient
        accumulation's ``no_sync``)."""
        self.arm_junctions(model)
        with super().optim_context(model):
            yield

    # ------------------------------------------------------------- backward
    def backward(self, loss: Tensor, **kwargs) -> None:
        """Backward pass (calibrated inside by the junctions), then publish
        the statistics it recorded."""
        if not self._armed and any(c is not None
                                   for c in self.calibrators.values()):
            raise RuntimeError(
                'FullerOptimWrapper: backward without armed junctions. Run '
                'the forward pass inside `with optim_wrapper.optim_context('
                'model):` (mmengine BaseModel.train_step does so) or call '
                'optim_wrapper.arm_junctions(model) before it')
        self._armed = False
        self._records = []
        super().backward(loss, **kwargs)
        self.publish_stats()

    def _grad_scale(self) -> float:
        """Factor the gradients carry (AMP loss scale)."""
        return 1.0

    def statistics(self) -> Dict[str, float]:
        """Statistics of the last backward pass, as ``{key: value}``."""
        scale = self._grad_scale()
        out: Dict[str, float] = {}
        for tag, rec in self._records:
            if not rec['finite']:
                continue
            prefix = STATS_PREFIX + (f'{tag}/' if tag else '')
            names = rec['names']
            if rec['kind'] == 'task':
                gram = rec['gram'] / scale**2
                norms = torch.sqrt(torch.clamp(torch.diagonal(gram), min=0))
                weights = rec['weights'].to(gram.dtype)
                # what reaches the shared backbone: each task's share a_t g_t
                # and the whole g, against the plain sum (from M = G G^T)
                for key, w in (('shared_norm_before', torch.ones_like(weights)),
                               ('shared_norm_after', weights)):
                    out[prefix + key] = float(
                        torch.sqrt(torch.clamp(w @ gram @ w, min=0)))
                cos = []
                for i in range(len(names)):
                    out[f'{prefix}grad_norm/{names[i]}'] = float(norms[i])
                    out[f'{prefix}grad_norm_after/{names[i]}'] = float(
                        abs(weights[i]) * norms[i])
                    out[f'{prefix}weight/{names[i]}'] = float(
                        rec['weights'][i])
                    for j in range(i + 1, len(names)):
                        denom = float(norms[i] * norms[j])
                        c = float(gram[i, j]) / denom if denom > 0 else 0.0
                        cos.append(c)
                        if len(names) > 2:
                            out[f'{prefix}task_cos/{names[i]}-{names[j]}'] = c
                if cos:
                    out[f'{prefix}task_cos'] = sum(cos) / len(cos)
            else:
                before = rec['norms_before'] / scale
                after = rec['norms_after'] / scale
                for i, name in enumerate(names):
                    out[f'{prefix}grad_norm/{name}'] = float(before[i])
                    out[f'{prefix}grad_norm_after/{name}'] = float(after[i])
                if len(names) >= 2:
                    key = f'{prefix}{_short(names[0])}_{_short(names[1])}'
                    for when, n in (('before', before), ('after', after)):
                        if float(n[1]) > 0:
                            out[f'{key}_ratio_{when}'] = float(n[0] / n[1])
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def publish_stats(self) -> None:
        """Write :meth:`statistics` to the current message hub."""
        stats = self.statistics()
        if stats:
            hub = MessageHub.get_current_instance()
            for key, value in stats.items():
                hub.update_scalar(key, value)


def model_device_type(model: nn.Module) -> str:
    """Device type (``'cuda'``, ``'cpu'``, ...) of a model's first parameter
    (or buffer); ``'cpu'`` for a model without either."""
    for tensor in model.parameters():
        return tensor.device.type
    for tensor in model.buffers():
        return tensor.device.type
    return 'cpu'


@MMENGINE_OPTIM_WRAPPERS.register_module()
@OPTIM_WRAPPERS.register_module()
class FullerAmpOptimWrapper(FullerOptimWrapper):
    """:class:`FullerOptimWrapper` with automatic mixed precision.

    Runs the forward pass under ``torch.autocast`` on the device the model is
    on. With float16 a ``torch.amp.GradScaler`` scales the loss (the
    calibration is scale invariant and a non-finite gradient passes the
    junctions untouched, so the scaler still sees overflows); bfloat16 needs
    no scaler.

    The device is taken from the model at the first
    :meth:`optim_context` (the Runner moves the model before training), not
    from ``torch.cuda.is_available()``: a model kept on the CPU of a GPU
    machine runs CPU autocast.

    Args:
        dtype: ``'float16'`` or ``'bfloat16'`` (default: float16 on CUDA,
            bfloat16 on CPU).
        device_type: ``'cuda'`` or ``'cpu'``; default: the model's device.
            An explicit value must match the model's device.
        loss_scale: ``'dynamic'``, a float initial scale or a dict of
            ``GradScaler`` arguments (float16 only).
        **kwargs: arguments of :class:`FullerOptimWrapper`.
    """

    VALID_DTYPES = ('float16', 'bfloat16')
    VALID_DEVICES = ('cuda', 'cpu')

    def __init__(self,
                 dtype: Optional[Union[str, torch.dtype]] = None,
                 device_type: Optional[str] = None,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if device_type is not None:
            self._check_device(device_type)
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).replace('torch.', '')
        if dtype is not None and dtype not in self.VALID_DTYPES:
            raise ValueError(f'FullerAmpOptimWrapper dtype must be one of '
                             f'{self.VALID_DTYPES}, got {dtype!r}')
        if not (loss_scale == 'dynamic'
                or isinstance(loss_scale, (int, float, dict))):
            raise TypeError("loss_scale must be 'dynamic', a float or a "
                            f'dict, got {loss_scale!r}')
        self._dtype_cfg = dtype
        self._loss_scale_cfg = loss_scale
        #: Autocast device and dtype; None until known (see ``_setup``).
        self.device_type: Optional[str] = None
        self.cast_dtype: Optional[torch.dtype] = None
        self.loss_scaler: Optional[torch.amp.GradScaler] = None
        self._pending_scaler_state: Optional[dict] = None
        if device_type is not None:
            self._setup(device_type)

    def _check_device(self, device_type: str) -> None:
        if device_type not in self.VALID_DEVICES:
            raise ValueError('FullerAmpOptimWrapper device_type must be one '
                             f'of {self.VALID_DEVICES}, got {device_type!r}')
        if device_type == 'cuda' and not torch.cuda.is_available():
            raise RuntimeError("device_type='cuda' but no CUDA device is "
                               "available; use device_type='cpu' (bfloat16)")

    def _setup(self, device_type: str) -> None:
        """Fix the autocast device, the dtype and (float16) the scaler."""
        if self.device_type is not None:
            if device_type != self.device_type:
                raise RuntimeError(
                    f'FullerAmpOptimWrapper: device_type={self.device_type!r}'
                    f' but the model is on {device_type!r}; leave device_type '
                    'unset (it follows the model) or move the model')
            return
        self._check_device(device_type)
        dtype = self._dtype_cfg or ('float16' if device_type == 'cuda'
                                    else 'bfloat16')
        self.device_type = device_type
        self.cast_dtype = getattr(torch, dtype)
        if self.cast_dtype != torch.float16:
            return
        loss_scale = self._loss_scale_cfg
        if loss_scale == 'dynamic':
            scaler_args = {}
        elif isinstance(loss_scale, dict):
            scaler_args = dict(loss_scale)
        else:
            scaler_args = dict(init_scale=float(loss_scale))
        self.loss_scaler = torch.amp.GradScaler(device_type, **scaler_args)
        if self._pending_scaler_state is not None:
            self.loss_scaler.load_state_dict(self._pending_scaler_state)
            self._pending_scaler_state = None

    def _grad_scale(self) -> float:
        return 1.0 if self.loss_scaler is None else float(
            self.loss_scaler.get_scale())

    def backward(self, loss: Tensor, **kwargs) -> None:
        # Normally set up by optim_context; a bare backward follows the loss.
        self._setup(self.device_type or loss.device.type)
        if self.loss_scaler is not None:
            loss = self.loss_scaler.scale(loss)
        super().backward(loss, **kwargs)

    def step(self, **kwargs) -> None:
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.loss_scaler is not None:
            state['loss_scaler'] = self.loss_scaler.state_dict()
        elif self._pending_scaler_state is not None:
            state['loss_scaler'] = self._pending_scaler_state
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop('loss_scaler', None)
        if scaler_state is not None:
            if self.loss_scaler is not None:
                self.loss_scaler.load_state_dict(scaler_state)
            elif self.device_type is None:
                # Resume happens before the first step: keep the state until
                # the model's device (and so the scaler) is known.
                self._pending_scaler_state = scaler_state
        super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Junction arming and accumulation context, then autocast on the
        model's device."""
        self._setup(model_device_type(model))
        with super().optim_context(model), torch.autocast(
                device_type=self.device_type, dtype=self.cast_dtype):
            yield
