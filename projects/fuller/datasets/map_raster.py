"""Rasterisation of nuScenes map-expansion layers into BEV map labels.

The label grid lives in the (augmented) LiDAR frame with the (C, X, Y) layout
of docs/architecture.md: cell ``[i, j]`` has its centre at
``x = xmin + (i + 0.5) * res``, ``y = ymin + (j + 0.5) * res``.

The layers are parsed once per location by ``NuScenesMap`` (its
``extract_polygon`` / ``extract_line``) into a shapely STRtree per layer. Per
sample, the records meeting a patch around the LiDAR pose are taken to the
LiDAR frame (rotation by the LiDAR yaw, as ``NuScenesMap.get_map_mask`` with
``patch_angle`` = yaw does), then through the BEV augmentation
(``lidar_aug_matrix``: rotation, scale, flips, translation), exactly as
points and boxes, and filled into the grid with OpenCV (sub-pixel precision).
"""
import json
import math
import os.path as osp
from typing import Dict, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import shapely

from .metainfo import (DEFAULT_DRIVABLE_AREA_SOURCE, DRIVABLE_AREA_SOURCES,
                       MAP_CLASSES, MAP_LAYERS)

MAP_EXPANSION_HINT = (
    'download the nuScenes "Map expansion" pack (v1.3 or newer) from '
    'https://www.nuscenes.org/download and unpack it so that '
    '{root}/maps/expansion/<location>.json exists (for the synthetic set, '
    're-run tools/make_synthetic_nuscenes.py)')


def check_map_expansion(data_root: str, location: str) -> str:
    """Path of a location's map-expansion JSON; clear errors when it is
    missing or older than v1.3."""
    path = osp.join(data_root, 'maps', 'expansion', f'{location}.json')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'map expansion for location {location!r} not found at {path}: '
            + MAP_EXPANSION_HINT.format(root=data_root))
    with open(path) as f:
        head = f.read(4096)
    version = '1.0'
    key = head.find('"version"')
    if key >= 0:
        version = head[key:].split(':', 1)[1].split('"')[1]
    else:  # the key may sit anywhere in the object: parse it all
        with open(path) as f:
            version = json.load(f).get('version', '1.0')
    if tuple(int(v) for v in version.split('.')[:2]) < (1, 3):
        raise ValueError(
            f'map expansion {path} is version {version}, the map labels need '
            f'>= 1.3: ' + MAP_EXPANSION_HINT.format(root=data_root))
    return path


class MapRasterizer:
    """Rasterises map layers of nuScenes locations into BEV label grids.

    Args:
        data_root: dataset root holding ``maps/expansion/*.json``.
        classes: map classes (channels), in order.
        layers: class -> map-expansion layers united into it (default
            ``MAP_LAYERS``).
        xbound, ybound: (min, max, resolution) of the grid in metres.
        line_width: width in cells of line layers (dividers).
        drivable_area_source: the layers of class ``drivable_area`` unless
            ``layers`` names them: ``'drivable_area'`` (the map's
            drivable_area layer, MIT BEVFusion's default) or
            ``'road_segment+lane'`` (their union, MIT's ``drivable_area*``).
    """

    def __init__(self, data_root: str,
                 classes: Sequence[str] = MAP_CLASSES,
                 layers: Optional[Mapping[str, Sequence[str]]] = None,
                 xbound: Sequence[float] = (-50.0, 50.0, 0.5),
                 ybound: Sequence[float] = (-50.0, 50.0, 0.5),
                 line_width: int = 2,
                 drivable_area_source: str = DEFAULT_DRIVABLE_AREA_SOURCE):
        if drivable_area_source not in DRIVABLE_AREA_SOURCES:
            raise ValueError(
                f'drivable_area_source={drivable_area_source!r}: use one of '
                f'{sorted(DRIVABLE_AREA_SOURCES)}')
        self.drivable_area_source = drivable_area_source
        named = {} if layers is None else dict(layers)
        layers = dict(MAP_LAYERS)
        layers['drivable_area'] = DRIVABLE_AREA_SOURCES[drivable_area_source]
        layers.update(named)
        missing = [c for c in classes if c not in layers]
        if missing:
            raise KeyError(f'no map layers given for classes {missing}; pass '
                           f'layers=dict({missing[0]}=[...])')
        self.data_root, self.classes = data_root, tuple(classes)
        self.layers = {c: tuple(layers[c]) for c in self.classes}
        self.xbound, self.ybound = tuple(xbound), tuple(ybound)
        self.shape = (int(round((xbound[1] - xbound[0]) / xbound[2])),
                      int(round((ybound[1] - ybound[0]) / ybound[2])))
        self.line_width = line_width
        self._maps: Dict[str, object] = {}
        self._indices: Dict[str, _LayerIndex] = {}

    def nusc_map(self, location: str):
        """The ``NuScenesMap`` of a location, loaded once."""
        if location not in self._maps:
            from nuscenes.map_expansion.map_api import NuScenesMap
            check_map_expansion(self.data_root, location)
            self._maps[location] = NuScenesMap(self.data_root, location)
        return self._maps[location]

    def rasterize(self, location: str, lidar2global: np.ndarray,
                  lidar_aug_matrix: Optional[np.ndarray] = None) -> np.ndarray:
        """Map labels (C, X, Y) uint8 of one sample.

        Args:
            location: map location of the sample (scene -> log -> location).
            lidar2global: (4, 4) LiDAR pose (ego2global @ lidar2ego).
            lidar_aug_matrix: (4, 4) BEV augmentation applied to points and
                boxes (augmented = A @ original); identity if None.
        """
        aug = np.eye(4) if lidar_aug_matrix is None else np.asarray(
            lidar_aug_matrix, np.float64)
        lin, trans = aug[:2, :2], aug[:2, 3]
        # Patch in the un-augmented LiDAR frame covering the whole grid.
        xs = np.array(self.xbound[:2])
        ys = np.array(self.ybound[:2])
        corners = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        back = (corners - trans) @ np.linalg.inv(lin).T
        radius = float(np.abs(back).max()) + 2.0
        pose = np.asarray(lidar2global, np.float64)
        yaw = math.atan2(pose[1, 0], pose[0, 0])
        centre = pose[:2, 3]
        c, s = math.cos(yaw), math.sin(yaw)
        rot = np.array([[c, -s], [s, c]])
        # The square patch (global frame) that covers the grid.
        square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * radius
        patch = shapely.Polygon(square @ rot.T + centre)
        # global -> LiDAR (rotate by -yaw about the sensor) -> augmented.
        lin_g = lin @ rot.T
        trans_g = trans - lin_g @ centre
        index = self._index(location)
        masks = np.zeros((len(self.classes), *self.shape), np.uint8)
        for ci, cls in enumerate(self.classes):
            for layer in self.layers[cls]:
                self._draw(masks[ci], index.query(layer, patch), lin_g,
                           trans_g)
        return masks

    def _index(self, location: str) -> '_LayerIndex':
        if location not in self._indices:
            needed = {ly for c in self.classes for ly in self.layers[c]}
            self._indices[location] = _LayerIndex(self.nusc_map(location),
                                                  needed)
        return self._indices[location]

    # ------------------------------------------------------------------
    _SHIFT = 4

    def _to_cells(self, xy: np.ndarray, lin: np.ndarray,
                  trans: np.ndarray) -> np.ndarray:
        """LiDAR (x, y) -> OpenCV points (col = y index, row = x index) of
        the augmented grid, fixed-point with ``_SHIFT`` fractional bits."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2) @ lin.T + trans
        row = (xy[:, 0] - self.xbound[0]) / self.xbound[2] - 0.5
        col = (xy[:, 1] - self.ybound[0]) / self.ybound[2] - 0.5
        pts = np.stack([col, row], -1) * (1 << self._SHIFT)
        return np.round(pts).astype(np.int32)

    def _draw(self, mask: np.ndarray, geoms, lin, trans) -> None:
        for geom in geoms:
            for part in getattr(geom, 'geoms', [geom]):
                kind = part.geom_type
                if kind == 'Polygon':
                    if part.is_empty:
                        continue
                    cv2.fillPoly(mask, [self._to_cells(part.exterior.coords,
                                                       lin, trans)], 1,
                                 shift=self._SHIFT)
                    holes = [self._to_cells(h.coords, lin, trans)
                             for h in part.interiors]
                    if holes:
                        cv2.fillPoly(mask, holes, 0, shift=self._SHIFT)
                elif kind == 'LineString':
                    if len(part.coords) < 2:
                        continue
                    cv2.polylines(mask, [self._to_cells(part.coords, lin,
                                                        trans)],
                                  False, 1, self.line_width,
                                  shift=self._SHIFT)
                elif kind in ('MultiPolygon', 'MultiLineString',
                              'GeometryCollection'):
                    self._draw(mask, [part], lin, trans)


def bev_grid_centers(xbound: Sequence[float],
                     ybound: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates (x of rows, y of columns) of a BEV grid."""
    xs = np.arange(xbound[0], xbound[1] - 1e-9, xbound[2]) + xbound[2] / 2
    ys = np.arange(ybound[0], ybound[1] - 1e-9, ybound[2]) + ybound[2] / 2
    return xs, ys


class _LayerIndex:
    """Shapely geometries of some map layers of one location, with an
    STRtree per layer (as the devkit: invalid polygons are skipped)."""

    def __init__(self, nusc_map, layers):
        self.geoms, self.trees = {}, {}
        for layer in layers:
            records = getattr(nusc_map, layer)
            if layer == 'drivable_area':
                geoms = [nusc_map.extract_polygon(tok) for rec in records
                         for tok in rec['polygon_tokens']]
            elif layer in nusc_map.non_geometric_polygon_layers:
                geoms = [nusc_map.extract_polygon(rec['polygon_token'])
                         for rec in records]
            elif layer in nusc_map.non_geometric_line_layers:
                geoms = [nusc_map.extract_line(rec['line_token'])
                         for rec in records]
            else:
                raise KeyError(f'{layer!r} is not a map-expansion layer '
                               f'(see NuScenesMap.non_geometric_layers)')
            geoms = [g for g in geoms if not g.is_empty and (
                g.geom_type != 'Polygon' or layer == 'drivable_area'
                or g.is_valid)]
            self.geoms[layer] = np.array(geoms + [None], object)[:-1]
            self.trees[layer] = shapely.STRtree(geoms)

    def query(self, layer: str, patch) -> np.ndarray:
        return self.geoms[layer][self.trees[layer].query(
            patch, predicate='intersects')]
