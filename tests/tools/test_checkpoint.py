"""torch >= 2.6 safe loading of mmengine checkpoints (fuller.engine.checkpoint)."""
import pickle
from collections import OrderedDict

import pytest
import torch
from mmengine.logging import HistoryBuffer

import fuller  # noqa: F401 (registers the safe globals)


class _SneakyGetattr:
    """Pickles as ``getattr(OrderedDict, 'fromkeys')``: both names are
    loadable on their own, but the attribute is not a HistoryBuffer method."""

    def __reduce__(self):
        return getattr, (OrderedDict, 'fromkeys')


def test_message_hub_objects_round_trip(tmp_path):
    buf = HistoryBuffer()
    for v in (1.0, 2.0, 3.0):
        buf.update(v)
    path = tmp_path / 'meta.pth'
    torch.save(dict(buf=buf, arr=torch.zeros(2).numpy(), scalar=buf.mean()), path)
    loaded = torch.load(path)  # weights_only=True by default on torch >= 2.6
    assert loaded['buf'].mean() == 2.0 and loaded['buf'].max() == 3.0
    assert loaded['scalar'] == 2.0


def test_other_getattr_targets_stay_blocked(tmp_path):
    path = tmp_path / 'sneaky.pth'
    torch.save(dict(x=_SneakyGetattr()), path)
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer'):
        torch.load(path)
