from .bev_pool import bev_pool, bev_pool_reference

__all__ = ['bev_pool', 'bev_pool_reference']
