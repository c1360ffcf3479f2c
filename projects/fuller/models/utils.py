"""Small helpers shared by the model parts."""
from typing import Sequence

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
