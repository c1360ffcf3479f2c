"""Make mmengine checkpoints loadable under torch >= 2.6's safe unpickler.

torch 2.6 switched ``torch.load`` to ``weights_only=True``. mmengine 0.10.7
stores more than tensors in a checkpoint's ``meta`` (the message hub's
``HistoryBuffer`` objects, numpy scalars and arrays in its runtime info), so
``--resume`` and ``load_from`` fail with an ``UnpicklingError``.

Instead of turning the safe unpickler off (``weights_only=False`` would run
any pickled code), we allow exactly the extra types mmengine writes. The one
function involved, ``getattr`` (a ``HistoryBuffer`` pickles its statistics
methods as ``getattr(HistoryBuffer, 'mean')``), is replaced by a version that
resolves nothing but those methods. Checkpoints holding anything else still
fail loudly, as torch intends.
"""
import pickle
from typing import Any, List

import numpy as np
import torch


def _numpy_types() -> List[object]:
    """numpy objects that appear when numpy scalars/arrays are pickled."""
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    dtype_classes = [type(np.dtype(t)) for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
        np.uint16, np.uint32, np.uint64, np.float16, np.float32,
        np.float64, np.str_)]
    return [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype,
            *dtype_classes]


def _history_buffer_method(owner: Any, name: str) -> Any:
    """``getattr`` restricted to the public methods of ``HistoryBuffer``."""
    from mmengine.logging import HistoryBuffer
    if owner is HistoryBuffer and not name.startswith('_') and callable(
            getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({owner!r}, {name!r}); only '
        'HistoryBuffer statistics methods are allowed. Load it with '
        'torch.load(..., weights_only=False) only if you trust its source.')


def allow_mmengine_checkpoints() -> None:
    """Register mmengine's checkpoint meta types as safe torch.load globals.

    Idempotent; a no-op on torch versions without ``add_safe_globals``.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return
    from mmengine.logging import HistoryBuffer
    add_safe_globals([HistoryBuffer, *_numpy_types(),
                      (_history_buffer_method, 'builtins.getattr')])
