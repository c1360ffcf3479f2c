"""The train/test pipelines of the multi-task nuScenes configs, built in one
place so that the paper and the CPU dataset configs differ only in their
numbers (configs/_base_/datasets/*.py call this)."""
import copy
from typing import List, Sequence, Tuple

from .metainfo import (CAMERAS, CLASS_NAMES, DEFAULT_DRIVABLE_AREA_SOURCE,
                       MAP_CLASSES)


def multitask_pipelines(
        data_root: str,
        point_cloud_range: Sequence[float],
        image_size: Sequence[int],
        resize_lim: Sequence[float],
        test_resize: float,
        map_xbound: Sequence[float] = (-50.0, 50.0, 0.5),
        map_ybound: Sequence[float] = (-50.0, 50.0, 0.5),
        num_sweeps: int = 9,
        rot_lim: Sequence[float] = (-5.4, 5.4),
        bev_rot_range: Sequence[float] = (-0.3927, 0.3927),
        bev_scale_range: Sequence[float] = (0.9, 1.1),
        bev_translation_std: Sequence[float] = (0.5, 0.5, 0.5),
        map_line_width: int = 2,
        drivable_area_source: str = DEFAULT_DRIVABLE_AREA_SOURCE,
        class_names: Sequence[str] = CLASS_NAMES,
        map_classes: Sequence[str] = MAP_CLASSES,
        cameras: Sequence[str] = CAMERAS,
        backend_args=None) -> Tuple[List[dict], List[dict]]:
    """(train_pipeline, test_pipeline) as lists of transform configs.

    Points: key frame + ``num_sweeps`` previous sweeps (column 4 becomes the
    time lag; 0 sweeps keeps only the key frame). Images: ``image_size`` =
    final (H, W), resize factor uniform in ``resize_lim`` (``test_resize``
    at test time), bottom crop, +-``rot_lim`` deg rotation and flips when
    training. BEV: rotation (rad), scale, translation and both flips when
    training. Map labels are rasterised after the BEV augmentation, their
    ``drivable_area`` from ``drivable_area_source`` (``'drivable_area'``:
    the map's layer, MIT BEVFusion's default; ``'road_segment+lane'``).
    """
    points = [
        dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5,
             use_dim=5, backend_args=backend_args),
        dict(type='LoadPointsFromMultiSweeps', sweeps_num=num_sweeps,
             load_dim=5, use_dim=[0, 1, 2, 3, 4], pad_empty_sweeps=True,
             remove_close=True, backend_args=backend_args),
    ]
    images = dict(type='LoadMultiViewImages', cameras=list(cameras),
                  to_float32=True, backend_args=backend_args)
    map_labels = dict(type='LoadBEVSegmentation', data_root=data_root,
                      xbound=list(map_xbound), ybound=list(map_ybound),
                      classes=list(map_classes), line_width=map_line_width,
                      drivable_area_source=drivable_area_source)
    in_range = dict(type='PointsRangeFilter',
                    point_cloud_range=list(point_cloud_range))
    train = [
        *points,
        dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
        images,
        dict(type='MultiViewImageAug', final_dim=list(image_size),
             resize_lim=list(resize_lim), bot_pct_lim=[0.0, 0.0],
             rot_lim=list(rot_lim), rand_flip=True, is_train=True),
        dict(type='BEVGlobalAug', rot_range=list(bev_rot_range),
             scale_range=list(bev_scale_range),
             translation_std=list(bev_translation_std), flip_ratio_x=0.5,
             flip_ratio_y=0.5, is_train=True),
        map_labels,
        in_range,
        dict(type='ObjectRangeFilter',
             point_cloud_range=list(point_cloud_range)),
        dict(type='ObjectNameFilter', classes=list(class_names)),
        dict(type='PointShuffle'),
        dict(type='PackMultiTaskInputs'),
    ]
    test = [
        *points,
        images,
        dict(type='MultiViewImageAug', final_dim=list(image_size),
             resize_lim=[test_resize, test_resize], bot_pct_lim=[0.0, 0.0],
             is_train=False),
        dict(type='BEVGlobalAug', is_train=False),
        map_labels,
        in_range,
        dict(type='PackMultiTaskInputs',
             keys=['points', 'img', 'gt_masks_bev']),
    ]
    return train, copy.deepcopy(test)
