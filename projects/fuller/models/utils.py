"""Small helpers shared by the model parts."""
from typing import Sequence


def bins_from_bound(bound: Sequence[float]) -> int:
    """Number of cells of a ``[min, max, step]`` bound (rounded).

    Raises a clear error when the bound is malformed.
    """
    if len(bound) != 3 or bound[2] <= 0 or bound[1] <= bound[0]:
        raise ValueError(f'a grid bound must be [min, max, step] with max > '
                         f'min and step > 0, got {list(bound)}.')
    return int(round((bound[1] - bound[0]) / bound[2]))
