"""Transforms of the multi-task (3D detection + BEV map) nuScenes pipeline.

Geometry keys they maintain (docs/architecture.md, "Data sample fields"):
``lidar2cam``, ``cam2img``, ``lidar2img``, ``cam2lidar`` (N, 4, 4) of the
un-augmented frames, ``img_aug_matrix`` (N, 4, 4) and ``lidar_aug_matrix``
(4, 4), ``gt_masks_bev`` (C, X, Y).
"""
import math
import os.path as osp
import zlib
from typing import Mapping, Optional, Sequence

import cv2
import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet3d.datasets.transforms import Pack3DDetInputs
from mmdet3d.datasets.transforms.dbsampler import DataBaseSampler
from mmdet3d.structures import BaseInstance3DBoxes
from mmengine.fileio import get

from ..registry import TRANSFORMS
from .map_raster import MapRasterizer
from .metainfo import CAMERAS, DEFAULT_DRIVABLE_AREA_SOURCE, MAP_CLASSES


def _as4x4(mat) -> np.ndarray:
    mat = np.asarray(mat, np.float64)
    out = np.eye(4)
    out[:mat.shape[0], :mat.shape[1]] = mat
    return out


@TRANSFORMS.register_module()
class LoadMultiViewImages(BaseTransform):
    """Loads the camera images of a sample and its camera geometry.

    Reads ``results['images'][cam]`` (``img_path``, ``cam2img`` 3x3,
    ``lidar2cam`` 4x4) for every camera of ``cameras``, in that order.

    Adds: ``img`` (list of (H, W, 3) float32 or uint8 arrays, BGR as mmcv
    loads them), ``lidar2cam``, ``cam2img``, ``lidar2img``, ``cam2lidar``
    (N, 4, 4), ``img_aug_matrix`` (N, 4, 4 identity), ``img_shape``,
    ``ori_shape``, ``num_views``, ``img_path`` (list), ``cameras``.
    """

    def __init__(self, cameras: Sequence[str] = CAMERAS,
                 to_float32: bool = True, color_type: str = 'color',
                 backend_args: Optional[dict] = None):
        self.cameras = tuple(cameras)
        self.to_float32, self.color_type = to_float32, color_type
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        images = results.get('images')
        if not images:
            raise KeyError('sample has no "images": the info file lacks '
                           'cameras, or the dataset modality has '
                           'use_camera=False')
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise KeyError(f'cameras {missing} missing from the sample (it has '
                           f'{sorted(images)}); set cameras=... accordingly')
        imgs, l2c, c2i, paths = [], [], [], []
        for cam in self.cameras:
            info = images[cam]
            img = mmcv.imfrombytes(get(info['img_path'], self.backend_args),
                                   flag=self.color_type)
            if img is None:
                raise FileNotFoundError(f'cannot read image {info["img_path"]}')
            imgs.append(img.astype(np.float32) if self.to_float32 else img)
            l2c.append(_as4x4(info['lidar2cam']))
            c2i.append(_as4x4(info['cam2img']))
            paths.append(info['img_path'])
        l2c, c2i = np.stack(l2c), np.stack(c2i)
        results.update(
            img=imgs, img_path=paths, cameras=self.cameras,
            lidar2cam=l2c, cam2img=c2i, lidar2img=c2i @ l2c,
            cam2lidar=np.linalg.inv(l2c),
            img_aug_matrix=np.tile(np.eye(4), (len(imgs), 1, 1)),
            img_shape=imgs[0].shape[:2], ori_shape=imgs[0].shape[:2],
            num_views=len(imgs))
        return results


@TRANSFORMS.register_module()
class MultiViewImageAug(BaseTransform):
    """Resize, crop, flip and rotate every view (BEVFusion's image aug), in
    one affine warp per view, and record the pixel transform.

    Each view is scaled by ``r`` (uniform in ``resize_lim`` when training,
    its mean otherwise), cropped to ``final_dim`` = (H, W) (from the bottom,
    leaving a ``bot_pct_lim`` share of the resized height below; horizontally
    random when training, centred otherwise), flipped with probability 0.5 if
    ``rand_flip`` and rotated by a uniform angle in ``rot_lim`` degrees about
    the image centre. ``img_aug_matrix[n] @ [u, v, d, 1]`` maps an original
    pixel to the augmented one.
    """

    def __init__(self, final_dim: Sequence[int],
                 resize_lim: Sequence[float] = (1.0, 1.0),
                 bot_pct_lim: Sequence[float] = (0.0, 0.0),
                 rot_lim: Sequence[float] = (0.0, 0.0),
                 rand_flip: bool = False, is_train: bool = False):
        self.final_dim = tuple(int(v) for v in final_dim)
        self.resize_lim, self.bot_pct_lim = tuple(resize_lim), tuple(
            bot_pct_lim)
        self.rot_lim, self.rand_flip = tuple(rot_lim), rand_flip
        self.is_train = is_train

    def _sample(self, height: int, width: int):
        fh, fw = self.final_dim
        if self.is_train:
            r = np.random.uniform(*self.resize_lim)
            bot = np.random.uniform(*self.bot_pct_lim)
        else:
            r, bot = float(np.mean(self.resize_lim)), float(
                np.mean(self.bot_pct_lim))
        nw, nh = int(width * r), int(height * r)
        crop_h = int((1 - bot) * nh) - fh
        if self.is_train:
            crop_w = int(np.random.uniform(0, max(0, nw - fw)))
        else:
            crop_w = int(max(0, nw - fw) / 2)
        flip = self.is_train and self.rand_flip and np.random.rand() < 0.5
        rot = np.random.uniform(*self.rot_lim) if self.is_train else 0.0
        return r, crop_w, crop_h, flip, rot

    def _matrix(self, r, crop_w, crop_h, flip, rot) -> np.ndarray:
        fh, fw = self.final_dim
        mat = np.diag([r, r, 1.0])
        mat[:2, 2] = (-crop_w, -crop_h)
        if flip:
            mat = np.array([[-1.0, 0.0, fw], [0.0, 1.0, 0.0], [0, 0, 1]]) @ mat
        if rot:
            a = math.radians(rot)
            c, s = math.cos(a), math.sin(a)
            cx, cy = fw / 2, fh / 2
            rmat = np.array([[c, -s, cx - c * cx + s * cy],
                             [s, c, cy - s * cx - c * cy], [0, 0, 1]])
            mat = rmat @ mat
        return mat

    def transform(self, results: dict) -> dict:
        fh, fw = self.final_dim
        out, mats = [], []
        for n, img in enumerate(results['img']):
            mat = self._matrix(*self._sample(*img.shape[:2]))
            out.append(cv2.warpAffine(img, mat[:2], (fw, fh),
                                      flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT))
            m4 = np.eye(4)
            m4[:2, :2], m4[:2, 3] = mat[:2, :2], mat[:2, 2]
            mats.append(m4 @ results['img_aug_matrix'][n])
        results['img'] = out
        results['img_aug_matrix'] = np.stack(mats)
        results['img_shape'] = (fh, fw)
        return results


def bev_aug_matrix(rotation: float = 0.0, scale: float = 1.0,
                   translation: Sequence[float] = (0.0, 0.0, 0.0),
                   flip_x: bool = False, flip_y: bool = False) -> np.ndarray:
    """(4, 4) BEV augmentation: rotate counter-clockwise about +z by
    ``rotation`` (rad), scale, translate, then flip (``flip_x`` negates y:
    a mirror across the x axis; ``flip_y`` negates x)."""
    c, s = math.cos(rotation), math.sin(rotation)
    mat = np.eye(4)
    mat[:3, :3] = scale * np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    mat[:3, 3] = translation
    flip = np.diag([-1.0 if flip_y else 1.0, -1.0 if flip_x else 1.0, 1, 1])
    return flip @ mat


def apply_bev_transform(results: dict, mat: np.ndarray) -> None:
    """Applies a BEV similarity ``mat`` (4, 4) to ``points`` and
    ``gt_bboxes_3d`` of ``results`` and composes it into
    ``lidar_aug_matrix``."""
    mat = np.asarray(mat, np.float64)
    lin = mat[:3, :3]
    scale = float(np.cbrt(abs(np.linalg.det(lin))))
    rot2 = lin[:2, :2] / scale  # rotation or reflection
    if 'points' in results:
        pts = results['points']
        xyz = pts.tensor[:, :3].double().numpy() @ lin.T + mat[:3, 3]
        pts.tensor[:, :3] = torch.as_tensor(xyz, dtype=pts.tensor.dtype)
    boxes = results.get('gt_bboxes_3d')
    if isinstance(boxes, BaseInstance3DBoxes) and len(boxes):
        t = boxes.tensor.double().numpy().copy()
        t[:, :3] = t[:, :3] @ lin.T + mat[:3, 3]
        t[:, 3:6] *= scale
        heading = np.stack([np.cos(t[:, 6]), np.sin(t[:, 6])], -1) @ rot2.T
        t[:, 6] = np.arctan2(heading[:, 1], heading[:, 0])
        if t.shape[1] > 7:  # velocity (vx, vy)
            t[:, 7:9] = t[:, 7:9] @ (rot2 * scale).T
        results['gt_bboxes_3d'] = boxes.new_box(
            torch.as_tensor(t, dtype=boxes.tensor.dtype))
    prev = results.get('lidar_aug_matrix', np.eye(4))
    results['lidar_aug_matrix'] = mat @ prev


@TRANSFORMS.register_module()
class SeededPointShuffle(BaseTransform):
    """Reorder the points by a permutation fixed per sample: the test-time
    counterpart of ``PointShuffle``.

    The voxeliser keeps the first ``max_num_points`` points of a voxel in
    input order (mmcv's contract). Training shuffles the points, so a voxel
    that holds more points is trained on a random sample of them; unshuffled
    at test time, it keeps the points that come first in the file instead.
    In a file written ring by ring those are the lowest rings only, and near
    objects, whose pillars overflow, look flat to the model (docs/results.md:
    det_only went from 36.3 to 60.4 mAP on the synthetic val split with the
    same checkpoint). The permutation comes from a generator seeded by the
    LiDAR file's name, so an evaluation is repeatable whatever the worker or
    the order of the samples.

    Required keys: ``points``, ``lidar_points['lidar_path']``.
    Modified keys: ``points``.
    """

    def transform(self, results: dict) -> dict:
        name = osp.basename(results['lidar_points']['lidar_path'])
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        order = torch.from_numpy(rng.permutation(len(results['points'])))
        results['points'] = results['points'][order]
        return results


@TRANSFORMS.register_module()
class BEVGlobalAug(BaseTransform):
    """Random global BEV rotation, scale, translation and flips of points,
    boxes (with velocity) and, through ``lidar_aug_matrix``, map labels and
    camera geometry.

    Args:
        rot_range: rotation range in radians (e.g. (-0.3927, 0.3927) for
            +-22.5 deg).
        scale_range: isotropic scale range.
        translation_std: per-axis std (m) of a Gaussian translation.
        flip_ratio_x / flip_ratio_y: probability of mirroring y / x.
        is_train: False makes it the identity (records the matrix only).
    """

    def __init__(self, rot_range: Sequence[float] = (0.0, 0.0),
                 scale_range: Sequence[float] = (1.0, 1.0),
                 translation_std: Sequence[float] = (0.0, 0.0, 0.0),
                 flip_ratio_x: float = 0.0, flip_ratio_y: float = 0.0,
                 is_train: bool = True):
        self.rot_range, self.scale_range = tuple(rot_range), tuple(scale_range)
        self.translation_std = np.asarray(translation_std, np.float64)
        self.flip_ratio_x, self.flip_ratio_y = flip_ratio_x, flip_ratio_y
        self.is_train = is_train

    def transform(self, results: dict) -> dict:
        if not self.is_train:
            apply_bev_transform(results, np.eye(4))
            return results
        mat = bev_aug_matrix(
            rotation=np.random.uniform(*self.rot_range),
            scale=np.random.uniform(*self.scale_range),
            translation=np.random.normal(0.0, 1.0, 3) * self.translation_std,
            flip_x=np.random.rand() < self.flip_ratio_x,
            flip_y=np.random.rand() < self.flip_ratio_y)
        apply_bev_transform(results, mat)
        return results


@TRANSFORMS.register_module()
class LoadBEVSegmentation(BaseTransform):
    """Rasterises the map labels ``gt_masks_bev`` (C, X, Y) uint8 of a sample
    from the nuScenes map expansion, in the augmented LiDAR frame.

    Place it after every BEV augmentation: it reads ``map_location``,
    ``ego2global``, ``lidar_points['lidar2ego']`` and ``lidar_aug_matrix``.

    Args:
        data_root: dataset root with ``maps/expansion/<location>.json``.
        xbound, ybound: (min, max, resolution) of the map grid (metres).
        classes: map classes, in channel order.
        layers: class -> map-expansion layers (default: ``MAP_LAYERS``).
        line_width: width in cells of dividers.
        drivable_area_source: ``'drivable_area'`` (the map's layer, MIT
            BEVFusion's default) or ``'road_segment+lane'``; recorded in
            the sample's metainfo (``drivable_area_source``) so that the map
            metric can say which labels it scored.
    """

    def __init__(self, data_root: str,
                 xbound: Sequence[float] = (-50.0, 50.0, 0.5),
                 ybound: Sequence[float] = (-50.0, 50.0, 0.5),
                 classes: Sequence[str] = MAP_CLASSES,
                 layers: Optional[Mapping[str, Sequence[str]]] = None,
                 line_width: int = 2,
                 drivable_area_source: str = DEFAULT_DRIVABLE_AREA_SOURCE):
        self.rasterizer = MapRasterizer(data_root, classes, layers, xbound,
                                        ybound, line_width,
                                        drivable_area_source)

    def transform(self, results: dict) -> dict:
        location = results.get('map_location')
        if not location:
            raise KeyError(
                'sample has no "map_location": build the info files with '
                'tools/create_data.py (it adds the location of every sample), '
                'or drop LoadBEVSegmentation from the pipeline')
        lidar2global = np.asarray(results['ego2global'], np.float64) @ \
            np.asarray(results['lidar_points']['lidar2ego'], np.float64)
        results['gt_masks_bev'] = self.rasterizer.rasterize(
            location, lidar2global, results.get('lidar_aug_matrix'))
        results['drivable_area_source'] = \
            self.rasterizer.drivable_area_source
        return results


#: metainfo every packed sample carries (when present in the results)
META_KEYS = ('sample_idx', 'token', 'timestamp', 'map_location', 'lidar_path',
             'img_path', 'cameras', 'box_type_3d', 'num_pts_feats',
             'lidar2img', 'cam2img', 'lidar2cam', 'cam2lidar',
             'img_aug_matrix', 'lidar_aug_matrix', 'ego2global', 'lidar2ego',
             'img_shape', 'ori_shape', 'num_views', 'drivable_area_source')


@TRANSFORMS.register_module()
class PackMultiTaskInputs(Pack3DDetInputs):
    """``Pack3DDetInputs`` for the multi-task model.

    inputs: ``points`` (P, C) tensor, ``imgs`` (N_cam, 3, H, W) tensor.
    data_samples: ``gt_instances_3d`` (bboxes_3d, labels_3d),
    ``gt_masks_bev`` (C_map, X, Y) uint8 tensor, metainfo ``META_KEYS``
    (``lidar2ego`` is copied up from ``lidar_points``).
    """

    def __init__(self, keys: Sequence[str] = ('points', 'img', 'gt_bboxes_3d',
                                              'gt_labels_3d', 'gt_masks_bev'),
                 meta_keys: Sequence[str] = META_KEYS):
        self.with_masks = 'gt_masks_bev' in keys
        super().__init__(keys=tuple(k for k in keys if k != 'gt_masks_bev'),
                         meta_keys=tuple(meta_keys))

    def transform(self, results: dict) -> dict:
        if 'lidar_points' in results and 'lidar2ego' not in results:
            results['lidar2ego'] = np.asarray(
                results['lidar_points']['lidar2ego'])
        if 'lidar_aug_matrix' not in results:
            results['lidar_aug_matrix'] = np.eye(4)
        packed = super().transform(results)
        if 'img' in packed['inputs']:
            packed['inputs']['imgs'] = packed['inputs'].pop('img')
        if self.with_masks:
            if 'gt_masks_bev' not in results:
                raise KeyError('gt_masks_bev requested but not produced: add '
                               'LoadBEVSegmentation to the pipeline')
            packed['data_samples'].gt_masks_bev = torch.from_numpy(
                np.ascontiguousarray(results['gt_masks_bev']))
        return packed


@TRANSFORMS.register_module()
class FullerDataBaseSampler(DataBaseSampler):
    """mmdet3d 1.4's ``DataBaseSampler`` (the GT database of ``ObjectSample``,
    GT-paste), usable with numpy >= 1.24 and on small sets.

    Differences from the parent:

    - ``sample_all`` is our own: the parent's builds the pasted labels with
      ``np.long``, which numpy 1.24 removed (AttributeError on every call);
    - a class without database objects (none recorded, or all filtered out
      by ``prepare``) is not pasted instead of failing;
    - ``info_path`` may be relative to ``data_root`` (then the configs follow
      ``--data-root``), and a missing database names the command that
      writes it.

    Args: as ``DataBaseSampler`` (``info_path``, ``data_root``, ``rate``,
    ``prepare``, ``sample_groups``, ``classes``, ``points_loader``).
    """

    def __init__(self, info_path: str, data_root: str, *args, **kwargs):
        if not osp.isabs(info_path) and data_root and not osp.isfile(
                info_path):
            info_path = osp.join(data_root, info_path)
        if not osp.isfile(info_path):
            raise FileNotFoundError(
                f'GT database {info_path} not found: write it with '
                f'python tools/create_data.py nuscenes --root-path '
                f'{data_root or "<data root>"} (it writes the infos, then '
                f'<prefix>_dbinfos_train.pkl and <prefix>_gt_database/)')
        super().__init__(info_path, data_root, *args, **kwargs)

    def sample_all(self, gt_bboxes: np.ndarray, gt_labels: np.ndarray,
                   img: Optional[np.ndarray] = None,
                   ground_plane: Optional[np.ndarray] = None
                   ) -> Optional[dict]:
        """Database objects pasted into one sample.

        Args:
            gt_bboxes: (M, 7 or 9) boxes of the sample (bottom centre).
            gt_labels: (M,) their labels.
            ground_plane: optional (4,) plane the pasted boxes are put on.

        Returns:
            None when nothing was pasted, else ``gt_bboxes_3d`` (S, D)
            array, ``gt_labels_3d`` (S,) int64, ``points`` (the pasted
            objects' points, ``BasePoints``) and ``group_ids`` (S,).
        """
        gt_bboxes = np.asarray(gt_bboxes)
        gt_labels = np.asarray(gt_labels)
        taken = gt_bboxes
        picked: list = []
        for name, group in zip(self.sample_classes, self.sample_max_nums):
            if not self.db_infos.get(name):
                continue
            have = int(np.sum(gt_labels == self.cat2label[name]))
            num = int(np.round(self.rate * (group - have)))
            if num <= 0:
                continue
            # sample_class_v2 drops candidates that overlap (in BEV) the
            # boxes taken so far
            new = self.sample_class_v2(name, num, taken)
            if new:
                taken = np.concatenate(
                    [taken, np.stack([s['box3d_lidar'] for s in new])])
                picked += new
        if not picked:
            return None
        boxes = taken[len(gt_bboxes):].copy()
        points = []
        for info in picked:
            path = (osp.join(self.data_root, info['path'])
                    if self.data_root else info['path'])
            obj = self.points_loader(
                dict(lidar_points=dict(lidar_path=path)))['points']
            obj.translate(info['box3d_lidar'][:3])  # stored box-relative
            points.append(obj)
        if ground_plane is not None:
            # drop each pasted box (and its points) onto the plane
            dz = boxes[:, :3] @ ground_plane[:3] + ground_plane[3]
            boxes[:, 2] -= dz
            for obj, d in zip(points, dz):
                obj.tensor[:, 2] -= float(d)
        return dict(
            gt_labels_3d=np.array([self.cat2label[s['name']] for s in picked],
                                  dtype=np.int64),
            gt_bboxes_3d=boxes,
            points=points[0].cat(points),
            group_ids=np.arange(len(gt_bboxes), len(gt_bboxes) + len(picked)))
