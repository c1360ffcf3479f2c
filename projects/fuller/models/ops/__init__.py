from .bev_pool import bev_pool, bev_pool_reference, lift_pool
from .voxelize import TorchHardVoxelization, hard_voxelize

__all__ = [
    'bev_pool', 'bev_pool_reference', 'lift_pool', 'TorchHardVoxelization',
    'hard_voxelize'
]
