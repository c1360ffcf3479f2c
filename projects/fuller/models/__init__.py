"""The multi-task BEVFusion network (see docs/models.md)."""
from .data_preprocessor import FullerDataPreprocessor
from .depth_lss import DepthLSSTransform, GeneralizedLSSFPN
from .fuller_bevfusion import FullerBEVFusion
from .fusion import ConvFuser
from .heads import (BEVCenterHead, BEVCenterL1Cost, BEVSegHead, IoU3DCost,
                    TransFusionBBoxCoder, TransFusionHead)
from .lidar_encoders import BEVPointPillarsScatter, BEVSparseEncoder
from .losses import BEVSegDiceLoss, BEVSegFocalLoss
from .necks import TopDownFPN
from .ops import bev_pool, bev_pool_reference
from .view_transforms import LSSTransform

__all__ = [
    'FullerBEVFusion', 'FullerDataPreprocessor', 'ConvFuser', 'LSSTransform',
    'DepthLSSTransform', 'GeneralizedLSSFPN',
    'BEVPointPillarsScatter', 'BEVSparseEncoder', 'TransFusionHead',
    'TransFusionBBoxCoder', 'BEVCenterL1Cost', 'IoU3DCost', 'BEVCenterHead',
    'BEVSegHead', 'BEVSegFocalLoss', 'BEVSegDiceLoss', 'TopDownFPN',
    'bev_pool', 'bev_pool_reference'
]
