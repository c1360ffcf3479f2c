"""Small helpers shared by the model parts."""
from typing import Dict, Sequence

import torch
from torch import Tensor


def bins_from_bound(bound: Sequence[float]) -> int:
    """Number of cells of a ``[min, max, step]`` bound (rounded).

    Raises a clear error when the bound is malformed.
    """
    if len(bound) != 3 or bound[2] <= 0 or bound[1] <= bound[0]:
        raise ValueError(f'a grid bound must be [min, max, step] with max > '
                         f'min and step > 0, got {list(bound)}.')
    return int(round((bound[1] - bound[0]) / bound[2]))


def to_device_async(tensor: Tensor, device: torch.device) -> Tensor:
    """``tensor.to(device)`` that does not block the host on a GPU.

    A copy from ordinary (pageable) host memory synchronises the CUDA
    stream; from pinned memory it is queued like a kernel. For the small
    host-made tensors of a training step (camera matrices, heatmap
    targets) pinning costs less than the wait.
    """
    device = torch.device(device)
    if device.type == 'cuda' and tensor.device.type == 'cpu':
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class ConstantCache:
    """Small constant tensors made once per (values, device, dtype).

    ``ref.new_tensor(values)`` on a GPU copies from pageable host memory,
    which synchronises the stream every call; a step that makes a few such
    constants per sample waits for the device that many times. The cache
    makes each one once (with :func:`to_device_async`) and hands the same
    tensor back afterwards.
    """

    def __init__(self) -> None:
        self._tensors: Dict[tuple, Tensor] = {}

    def __call__(self, values: Sequence[float], ref: Tensor) -> Tensor:
        """``ref.new_tensor(values)`` (do not modify it in place)."""
        key = (tuple(values), ref.device, ref.dtype)
        if key not in self._tensors:
            self._tensors[key] = to_device_async(
                torch.tensor(values, dtype=ref.dtype), ref.device)
        return self._tensors[key]
