"""LiDAR point loading that names a broken file instead of failing deep in
numpy.

mmdet3d's ``LoadPointsFromFile`` / ``LoadPointsFromMultiSweeps`` read a
``.pcd.bin`` as float32 and reshape it to ``(-1, load_dim)``: a truncated file
fails with a bare numpy reshape error that does not say which file, and an
empty file passes as a frame with no points. These subclasses check the size
first (``Checked*`` in the pipelines of configs/_base_/datasets).
"""
import os.path as osp
from typing import Optional

import numpy as np
from mmdet3d.datasets.transforms import (LoadPointsFromFile,
                                         LoadPointsFromMultiSweeps)

from ..registry import TRANSFORMS

#: bytes of one stored point coordinate / feature
FLOAT32_BYTES = 4


def check_point_file_size(path: str, size: int, load_dim: int) -> Optional[str]:
    """Why a point file of ``size`` bytes cannot hold ``load_dim``-float32
    points (empty, or not a whole number of points), or None if it can."""
    if path.endswith('.npy'):
        return None
    point_bytes = load_dim * FLOAT32_BYTES
    if size == 0:
        return (f'point file {path} is empty (0 bytes): re-copy or re-create '
                'it (a LiDAR frame holds at least one point)')
    if size % point_bytes:
        return (f'point file {path} has {size} bytes, not a multiple of '
                f'{point_bytes} (load_dim={load_dim} float32 values per '
                'point): it is truncated or stores another point layout; '
                're-copy it, or set load_dim to its layout')
    return None


class _SizeCheckedLoading:
    """Mixin: ``_load_points`` refuses empty and odd-sized files."""

    def _load_points(self, pts_filename: str) -> np.ndarray:
        local = osp.isfile(pts_filename)
        # checked before reading: numpy refuses a byte count that is not a
        # multiple of 4 without saying which file
        if local:
            self._check_size(pts_filename, osp.getsize(pts_filename))
        points = super()._load_points(pts_filename)
        if not local:  # another storage backend: check what came back
            self._check_size(pts_filename, points.size * points.itemsize)
        return points

    def _check_size(self, path: str, size: int) -> None:
        problem = check_point_file_size(path, size, self.load_dim)
        if problem:
            raise ValueError(problem)


@TRANSFORMS.register_module()
class CheckedLoadPointsFromFile(_SizeCheckedLoading, LoadPointsFromFile):
    """``LoadPointsFromFile`` (same arguments) that raises a ValueError
    naming the file, its size and the expected multiple of
    ``load_dim * 4`` bytes for an empty or truncated file."""


@TRANSFORMS.register_module()
class CheckedLoadPointsFromMultiSweeps(_SizeCheckedLoading,
                                       LoadPointsFromMultiSweeps):
    """``LoadPointsFromMultiSweeps`` (same arguments) with the file checks of
    :class:`CheckedLoadPointsFromFile` on every sweep."""
