from .bev_pool import bev_pool, bev_pool_reference
from .voxelize import TorchHardVoxelization, hard_voxelize

__all__ = [
    'bev_pool', 'bev_pool_reference', 'TorchHardVoxelization', 'hard_voxelize'
]
