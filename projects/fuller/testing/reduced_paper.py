"""The paper model at a reduced input size, runnable on a CPU.

The paper setting (configs/_base_/models/bevfusion_nus.py) needs CUDA for its
sparse-conv LiDAR encoder and is slow on a CPU at 256x704. Tests and
``tools/benchmark_train_step.py --reduced`` use it at a 64x176 camera input
with the LiDAR branch on 0.6 m pillars that fill the same 180x180 decoder
grid; every other part (Swin-T, FPN, LSS with 118 depth bins, SECOND,
SECONDFPN, both heads) is the paper's.
"""
import copy
from typing import List

#: camera input (H, W) of the reduced model and its ratio to the paper's
REDUCED_IMAGE_SIZE = (64, 176)
PAPER_IMAGE_SIZE = (256, 704)
PILLAR_SIZE = [0.6, 0.6, 8.0]


def paper_model_reduced(model_cfg):
    """A copy of the paper model config at 64x176 with pillars (0.6 m, 20
    points each, 30k pillars) instead of the sparse encoder; no pretrained
    weights are loaded."""
    cfg = copy.deepcopy(model_cfg)
    cfg.img_backbone.init_cfg = None
    cfg.view_transform.image_size = list(REDUCED_IMAGE_SIZE)
    # the LSS feature map is the input downsampled 8x, as in the paper
    cfg.view_transform.feature_size = [s // 8 for s in REDUCED_IMAGE_SIZE]
    pcr = list(cfg.data_preprocessor.voxel_layer.point_cloud_range)
    cfg.data_preprocessor.voxel_layer = dict(
        max_num_points=20, point_cloud_range=pcr,
        voxel_size=list(PILLAR_SIZE), max_voxels=(30000, 30000))
    cfg.pts_voxel_encoder = dict(
        type='PillarFeatureNet', in_channels=5, feat_channels=[64],
        with_distance=False, voxel_size=list(PILLAR_SIZE),
        point_cloud_range=pcr, legacy=False)
    grid = [round((pcr[3 + i] - pcr[i]) / PILLAR_SIZE[i]) for i in (0, 1)]
    cfg.pts_middle_encoder = dict(
        type='BEVPointPillarsScatter', in_channels=64, output_shape=grid)
    cfg.fusion_layer.in_channels = [cfg.fusion_layer.in_channels[0], 64]
    return cfg


def pipeline_reduced(pipeline: List[dict]) -> List[dict]:
    """A copy of a dataset pipeline whose multi-view image augmentation
    yields the reduced input: final size 64x176 and resize factors scaled
    by the same 1/4, so the crop sees what the paper's crop sees."""
    out = copy.deepcopy(pipeline)
    scale = REDUCED_IMAGE_SIZE[1] / PAPER_IMAGE_SIZE[1]
    for t in out:
        if t.get('type') == 'MultiViewImageAug':
            t['final_dim'] = list(REDUCED_IMAGE_SIZE)
            t['resize_lim'] = [r * scale for r in t['resize_lim']]
    return out
