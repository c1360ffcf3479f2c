from .center_head import BEVCenterHead
from .seg_head import BEVSegHead
from .transfusion_head import TransFusionDecoderLayer, TransFusionHead
from .transfusion_utils import BEVCenterL1Cost, IoU3DCost, TransFusionBBoxCoder

__all__ = [
    'BEVCenterHead', 'BEVSegHead', 'TransFusionHead',
    'TransFusionDecoderLayer', 'TransFusionBBoxCoder', 'BEVCenterL1Cost',
    'IoU3DCost'
]
