"""The train/test pipelines of the multi-task nuScenes configs, built in one
place so that the paper and the CPU dataset configs differ only in their
numbers (configs/_base_/datasets/*.py call this)."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

from .metainfo import (CAMERAS, CLASS_NAMES, DEFAULT_DRIVABLE_AREA_SOURCE,
                       MAP_CLASSES)


#: upstream BEVFusion's GT-paste groups on nuScenes: the number of objects of
#: each class a training sample is filled up to from the GT database
NUSCENES_SAMPLE_GROUPS = dict(
    car=2, truck=3, construction_vehicle=7, bus=4, trailer=6, barrier=2,
    motorcycle=6, bicycle=6, pedestrian=2, traffic_cone=2)


def gt_paste_sampler(data_root: str,
                     class_names: Sequence[str] = CLASS_NAMES,
                     info_path: str = 'nuscenes_dbinfos_train.pkl',
                     min_points: int = 5,
                     sample_groups: Optional[Dict[str, int]] = None,
                     load_dim: int = 5) -> dict:
    """The ``db_sampler`` config of ``ObjectSample`` (GT-paste) as upstream
    BEVFusion's LiDAR stage: every class filled up to its
    ``sample_groups`` count (default ``NUSCENES_SAMPLE_GROUPS``) with
    database objects of at least ``min_points`` LiDAR points, no overlap
    with the sample's own boxes. ``info_path`` is relative to ``data_root``
    (tools/create_data.py writes it there)."""
    groups = dict(NUSCENES_SAMPLE_GROUPS if sample_groups is None else
                  sample_groups)
    return dict(
        type='FullerDataBaseSampler',
        data_root=data_root,
        info_path=info_path,
        rate=1.0,
        prepare=dict(
            filter_by_difficulty=[-1],
            filter_by_min_points={c: min_points for c in class_names}),
        classes=list(class_names),
        sample_groups={c: groups[c] for c in class_names if c in groups},
        points_loader=dict(type='LoadPointsFromFile', coord_type='LIDAR',
                           load_dim=load_dim, use_dim=list(range(load_dim))))


#: what the LiDAR-only detection stage reads of a sample
LIDAR_ONLY = dict(use_lidar=True, use_camera=False)


def cbgs_lidar_train_set(data_root: str, pipeline: List[dict]) -> dict:
    """The train split for LiDAR-only detection (stage 1 of the BEVFusion
    recipe), wrapped in class-balanced grouping and sampling (CBGS, Zhu et
    al. 2019: mmdet3d's ``CBGSDataset`` repeats the samples of rare classes
    until every class is seen about equally often). Put it under
    ``train_dataloader.dataset`` with ``_delete_=True``."""
    return dict(
        type='CBGSDataset',
        dataset=dict(
            type='FullerNuScenesDataset',
            data_root=data_root,
            ann_file='nuscenes_infos_train.pkl',
            modality=LIDAR_ONLY,
            data_prefix=dict(pts='samples/LIDAR_TOP',
                             sweeps='sweeps/LIDAR_TOP'),
            pipeline=pipeline,
            box_type_3d='LiDAR',
            use_valid_flag=True,
            filter_empty_gt=False,
            test_mode=False))


def multitask_pipelines(
        data_root: str,
        point_cloud_range: Sequence[float],
        image_size: Optional[Sequence[int]] = None,
        resize_lim: Optional[Sequence[float]] = None,
        test_resize: Optional[float] = None,
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
        use_camera: bool = True,
        with_map: bool = True,
        db_sampler: Optional[dict] = None,
        backend_args=None) -> Tuple[List[dict], List[dict]]:
    """(train_pipeline, test_pipeline) as lists of transform configs.

    Points: key frame + ``num_sweeps`` previous sweeps (column 4 becomes the
    time lag; 0 sweeps keeps only the key frame). Images (``use_camera``;
    then ``image_size``, ``resize_lim`` and ``test_resize`` are needed):
    ``image_size`` = final (H, W), resize factor uniform in ``resize_lim``
    (``test_resize`` at test time), bottom crop, +-``rot_lim`` deg rotation
    and flips when training. ``db_sampler`` (see ``gt_paste_sampler``) adds
    GT-paste (``ObjectSample``) right after the annotations, before any
    augmentation, as upstream's LiDAR stage. BEV: rotation (rad), scale,
    translation and both flips when training. Map labels (``with_map``) are
    rasterised after the BEV augmentation, their ``drivable_area`` from
    ``drivable_area_source`` (``'drivable_area'``: the map's layer, MIT
    BEVFusion's default; ``'road_segment+lane'``).
    """
    if use_camera and None in (image_size, resize_lim, test_resize):
        raise ValueError('multitask_pipelines(use_camera=True) needs '
                         'image_size, resize_lim and test_resize')
    points = [
        dict(type='CheckedLoadPointsFromFile', coord_type='LIDAR', load_dim=5,
             use_dim=5, backend_args=backend_args),
        dict(type='CheckedLoadPointsFromMultiSweeps', sweeps_num=num_sweeps,
             load_dim=5, use_dim=[0, 1, 2, 3, 4], pad_empty_sweeps=True,
             remove_close=True, backend_args=backend_args),
    ]
    images = [dict(type='LoadMultiViewImages', cameras=list(cameras),
                   to_float32=True, backend_args=backend_args)]
    map_labels = [dict(type='LoadBEVSegmentation', data_root=data_root,
                       xbound=list(map_xbound), ybound=list(map_ybound),
                       classes=list(map_classes), line_width=map_line_width,
                       drivable_area_source=drivable_area_source)]
    if not use_camera:
        images = []
    if not with_map:
        map_labels = []
    in_range = dict(type='PointsRangeFilter',
                    point_cloud_range=list(point_cloud_range))
    gt_paste = [] if db_sampler is None else [
        dict(type='ObjectSample', db_sampler=copy.deepcopy(dict(db_sampler)))]
    train_aug = [] if not use_camera else [
        dict(type='MultiViewImageAug', final_dim=list(image_size),
             resize_lim=list(resize_lim), bot_pct_lim=[0.0, 0.0],
             rot_lim=list(rot_lim), rand_flip=True, is_train=True)]
    test_aug = [] if not use_camera else [
        dict(type='MultiViewImageAug', final_dim=list(image_size),
             resize_lim=[test_resize, test_resize], bot_pct_lim=[0.0, 0.0],
             is_train=False)]
    img_key = ['img'] if use_camera else []
    mask_key = ['gt_masks_bev'] if with_map else []
    train = [
        *points,
        dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
        *gt_paste,
        *images,
        *train_aug,
        dict(type='BEVGlobalAug', rot_range=list(bev_rot_range),
             scale_range=list(bev_scale_range),
             translation_std=list(bev_translation_std), flip_ratio_x=0.5,
             flip_ratio_y=0.5, is_train=True),
        *map_labels,
        in_range,
        dict(type='ObjectRangeFilter',
             point_cloud_range=list(point_cloud_range)),
        dict(type='ObjectNameFilter', classes=list(class_names)),
        dict(type='PointShuffle'),
        dict(type='PackMultiTaskInputs',
             keys=['points', *img_key, 'gt_bboxes_3d', 'gt_labels_3d',
                   *mask_key]),
    ]
    test = [
        *points,
        *images,
        *test_aug,
        dict(type='BEVGlobalAug', is_train=False),
        *map_labels,
        in_range,
        # the points of an overfull voxel as in training (a random sample),
        # repeatably (SeededPointShuffle's docstring)
        dict(type='SeededPointShuffle'),
        dict(type='PackMultiTaskInputs',
             keys=['points', *img_key, *mask_key]),
    ]
    return copy.deepcopy(train), copy.deepcopy(test)
