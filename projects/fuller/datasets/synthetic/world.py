"""The procedural world behind the synthetic nuScenes set.

A location is a grid of straight roads (lanes, dividers, walkways, pedestrian
crossings, stop lines, car parks, unlabeled buildings). Its map is written in
the nuScenes map-expansion v1.3 format and painted into a fine ground raster
that the simulated sensors sample, so map labels, LiDAR intensities and camera
pixels all come from the same polygons.

Coordinates are global metres (x east, y north, z up); the ground is z = 0.
"""
import hashlib
import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

LANE_WIDTH = 3.5
WALK_WIDTH = 3.0
CROSSING_DEPTH = 4.0
STOP_LINE_DEPTH = 1.0
STOP_LINE_GAP = 1.0
ROAD_MARGIN = 70.0  # road length beyond the outermost intersection
RASTER_RES = 0.1  # metres per cell of the ground raster
PAINT_WIDTH = 0.2  # metres, width of painted divider lines

#: Ground classes of the raster, painted in this order (later wins).
GROUND_CLASSES = ('terrain', 'carpark_area', 'walkway', 'drivable',
                  'ped_crossing', 'stop_line', 'lane_divider', 'road_divider')
GROUND_ID = {name: i for i, name in enumerate(GROUND_CLASSES)}


def make_token(*parts) -> str:
    """Deterministic 32-hex nuScenes-style token from any key parts."""
    return hashlib.md5('/'.join(map(str, parts)).encode()).hexdigest()


@dataclass(frozen=True)
class LocationLayout:
    """Road grid of one map location (a real nuScenes location name, so that
    ``NuScenesMap`` accepts it)."""
    name: str
    origin: Tuple[float, float]  # global (x, y) of the first intersection
    spacing: Tuple[float, float]  # distance between vertical / horizontal roads
    grid: Tuple[int, int]  # number of vertical (along y) / horizontal roads
    lanes: Tuple[int, int]  # lanes per direction: vertical / horizontal roads
    right_hand: bool = True  # traffic keeps right (Boston) or left (Singapore)


LOCATIONS = (
    LocationLayout('singapore-onenorth', (125.0, 130.0), (118.0, 104.0),
                   (3, 3), (1, 2), right_hand=False),
    LocationLayout('boston-seaport', (140.0, 120.0), (132.0, 122.0),
                   (3, 3), (2, 1), right_hand=True),
)


@dataclass
class Road:
    """A straight road; ``axis`` 0 runs along global x, 1 along global y.

    Road coordinates: ``s`` along the axis, ``d`` the offset to the left of
    the +axis direction.
    """
    axis: int
    coord: float
    lanes: int
    start: float
    end: float
    crossings: List[Tuple[float, float]] = field(default_factory=list)

    @property
    def half_width(self) -> float:
        return self.lanes * LANE_WIDTH

    def to_global(self, s, d) -> np.ndarray:
        s, d = np.broadcast_arrays(np.asarray(s, float), np.asarray(d, float))
        if self.axis == 0:
            return np.stack([s, self.coord + d], -1)
        return np.stack([self.coord - d, s], -1)

    def rect(self, s0, s1, d0, d1) -> np.ndarray:
        """Counter-clockwise global polygon (4, 2) of a road-frame rectangle."""
        return self.to_global([s0, s1, s1, s0], [d0, d0, d1, d1])

    @property
    def heading(self) -> float:
        """Yaw (rad) of the +axis direction."""
        return 0.0 if self.axis == 0 else math.pi / 2

    def segments(self) -> List[Tuple[float, float, bool, bool]]:
        """Stretches between intersections: (s0, s1, crossing at s0, at s1)."""
        cuts = sorted(self.crossings)
        out, s = [], self.start
        prev_cross = False
        for q, hq in cuts:
            out.append((s, q - hq, prev_cross, True))
            s, prev_cross = q + hq, True
        out.append((s, self.end, prev_cross, False))
        return out


@dataclass
class Lane:
    """A traffic lane: road, centre offset, travel direction (+1/-1)."""
    road: Road
    offset: float
    direction: int

    def pose(self, s: float, lateral: float = 0.0) -> Tuple[np.ndarray, float]:
        xy = self.road.to_global(s, self.offset + lateral)
        yaw = self.road.heading + (0.0 if self.direction > 0 else math.pi)
        return xy, yaw

    def velocity(self, speed: float) -> np.ndarray:
        h = self.road.heading + (0.0 if self.direction > 0 else math.pi)
        return speed * np.array([math.cos(h), math.sin(h)])


@dataclass
class StaticBox:
    """An unlabeled obstacle (building): centre, size (l, w, h), yaw, colour."""
    center: np.ndarray
    size: np.ndarray
    yaw: float
    color: Tuple[int, int, int]


class MapBuilder:
    """Collects map-expansion v1.3 records with deterministic tokens."""

    POLYGON_LAYERS = ('road_segment', 'road_block', 'lane', 'ped_crossing',
                      'walkway', 'stop_line', 'carpark_area')
    LINE_LAYERS = ('road_divider', 'lane_divider', 'traffic_light')

    def __init__(self, name: str, seed: int):
        self.name, self.seed = name, seed
        self.records: Dict[str, list] = {
            k: [] for k in ('polygon', 'line', 'node', 'drivable_area',
                            *self.POLYGON_LAYERS, *self.LINE_LAYERS,
                            'lane_connector')}
        self.geoms: Dict[str, List[np.ndarray]] = {
            k: [] for k in ('drivable_area', *self.POLYGON_LAYERS,
                            *self.LINE_LAYERS)}
        self._count = 0

    def _token(self, kind: str) -> str:
        self._count += 1
        return make_token('map', self.name, self.seed, kind, self._count)

    def _nodes(self, coords: np.ndarray) -> List[str]:
        tokens = []
        for x, y in np.asarray(coords, float):
            tok = self._token('node')
            self.records['node'].append(
                dict(token=tok, x=round(float(x), 4), y=round(float(y), 4)))
            tokens.append(tok)
        return tokens

    def polygon(self, layer: str, coords: np.ndarray, **fields) -> str:
        """Adds a polygon record and a ``layer`` record pointing at it."""
        ptok = self._token('polygon')
        self.records['polygon'].append(dict(
            token=ptok, exterior_node_tokens=self._nodes(coords), holes=[]))
        tok = self._token(layer)
        self.records[layer].append(dict(token=tok, polygon_token=ptok, **fields))
        self.geoms[layer].append(np.asarray(coords, float))
        return tok

    def line(self, layer: str, coords: np.ndarray, **fields) -> str:
        ltok = self._token('line')
        self.records['line'].append(dict(token=ltok,
                                         node_tokens=self._nodes(coords)))
        tok = self._token(layer)
        self.records[layer].append(dict(token=tok, line_token=ltok, **fields))
        self.geoms[layer].append(np.asarray(coords, float))
        return tok

    def to_json(self, canvas_edge: Sequence[float]) -> dict:
        """The map-expansion JSON object (``NuScenesMap`` reads it as is)."""
        da_tok = self._token('drivable_area')
        da_polys = [r['polygon_token'] for r in self.records['road_segment']]
        obj = {k: v for k, v in self.records.items() if k != 'drivable_area'}
        obj['drivable_area'] = [dict(token=da_tok, polygon_tokens=da_polys)]
        obj['version'] = '1.3'
        obj['canvas_edge'] = [float(canvas_edge[0]), float(canvas_edge[1])]
        obj['connectivity'] = {r['token']: dict(incoming=[], outgoing=[])
                               for r in self.records['lane']}
        obj['arcline_path_3'] = {}
        return obj


class World:
    """One location: roads, map layers, ground raster, buildings, car parks."""

    def __init__(self, layout: LocationLayout, seed: int):
        self.layout = layout
        self.rng = np.random.default_rng(
            int(make_token('world', layout.name, seed)[:8], 16))
        self.map = MapBuilder(layout.name, seed)
        self.roads: List[Road] = []
        self.lanes: List[Lane] = []
        self.buildings: List[StaticBox] = []
        self.carparks: List[Tuple[Road, float, float, float, float]] = []
        self.crossings: List[Tuple[Road, float, float]] = []  # road, s0, s1
        self._build_roads()
        self._build_layers()
        self._build_blocks()
        self._build_raster()

    # ------------------------------------------------------------ layout
    def _build_roads(self) -> None:
        lo = self.layout
        xs = [lo.origin[0] + i * lo.spacing[0] for i in range(lo.grid[0])]
        ys = [lo.origin[1] + j * lo.spacing[1] for j in range(lo.grid[1])]
        self.xs, self.ys = xs, ys
        vert = [Road(1, x, lo.lanes[0], ys[0] - ROAD_MARGIN,
                     ys[-1] + ROAD_MARGIN) for x in xs]
        horz = [Road(0, y, lo.lanes[1], xs[0] - ROAD_MARGIN,
                     xs[-1] + ROAD_MARGIN) for y in ys]
        for v in vert:
            v.crossings = [(h.coord, h.half_width) for h in horz]
        for h in horz:
            h.crossings = [(v.coord, v.half_width) for v in vert]
        self.roads = horz + vert
        sign = -1 if lo.right_hand else 1  # +axis traffic: right = -d
        for road in self.roads:
            for i in range(road.lanes):
                off = (i + 0.5) * LANE_WIDTH
                self.lanes.append(Lane(road, sign * off, +1))
                self.lanes.append(Lane(road, -sign * off, -1))
        self.bounds = (xs[0] - ROAD_MARGIN, ys[0] - ROAD_MARGIN,
                       xs[-1] + ROAD_MARGIN, ys[-1] + ROAD_MARGIN)

    def _build_layers(self) -> None:
        m, right = self.map, self.layout.right_hand
        for road in self.roads:
            hw = road.half_width
            for s0, s1, cross0, cross1 in road.segments():
                seg = m.polygon('road_segment', road.rect(s0, s1, -hw, hw),
                                is_intersection=False, drivable_area_token='')
                m.polygon('road_block', road.rect(s0, s1, -hw, hw),
                          road_segment_token=seg, from_edge_line_token='',
                          to_edge_line_token='')
                for i in range(road.lanes):
                    for sgn in (-1, 1):
                        d0, d1 = sorted((sgn * i * LANE_WIDTH,
                                         sgn * (i + 1) * LANE_WIDTH))
                        m.polygon('lane', road.rect(s0, s1, d0, d1),
                                  lane_type='CAR', from_edge_line_token='',
                                  to_edge_line_token='',
                                  left_lane_divider_segments=[],
                                  right_lane_divider_segments=[])
                for sgn in (-1, 1):
                    d0, d1 = sorted((sgn * hw, sgn * (hw + WALK_WIDTH)))
                    m.polygon('walkway', road.rect(s0, s1, d0, d1))
                # Paint stops before the crossings.
                a = s0 + (CROSSING_DEPTH + STOP_LINE_GAP if cross0 else 0)
                b = s1 - (CROSSING_DEPTH + STOP_LINE_GAP if cross1 else 0)
                m.line('road_divider', road.to_global([a, b], [0, 0]),
                       road_segment_token=seg)
                for i in range(1, road.lanes):
                    for sgn in (-1, 1):
                        m.line('lane_divider', road.to_global(
                            [a, b], [sgn * i * LANE_WIDTH] * 2),
                            lane_divider_segments=[])
                # Crossing + stop line at every end that meets an intersection;
                # traffic arriving at s1 drives +axis, at s0 -axis.
                for at_end, has in ((1, cross1), (0, cross0)):
                    if not has:
                        continue
                    if at_end:
                        c0, c1 = s1 - CROSSING_DEPTH, s1
                        l1 = c0 - STOP_LINE_GAP
                        l0 = l1 - STOP_LINE_DEPTH
                        side = -1 if right else 1
                    else:
                        c0, c1 = s0, s0 + CROSSING_DEPTH
                        l0 = c1 + STOP_LINE_GAP
                        l1 = l0 + STOP_LINE_DEPTH
                        side = 1 if right else -1
                    pc = m.polygon('ped_crossing',
                                   road.rect(c0, c1, -hw, hw),
                                   road_segment_token=seg)
                    self.crossings.append((road, c0, c1))
                    d0, d1 = sorted((0.0, side * hw))
                    m.polygon('stop_line', road.rect(l0, l1, d0, d1),
                              stop_line_type='PED_CROSSING',
                              ped_crossing_tokens=[pc],
                              traffic_light_tokens=[], road_block_token='')
        # Intersections (road segments flagged as such).
        horz = [r for r in self.roads if r.axis == 0]
        vert = [r for r in self.roads if r.axis == 1]
        for h in horz:
            for v in vert:
                m.polygon('road_segment',
                          h.rect(v.coord - v.half_width, v.coord + v.half_width,
                                 -h.half_width, h.half_width),
                          is_intersection=True, drivable_area_token='')

    def _build_blocks(self) -> None:
        """Car parks and buildings in the blocks between (and around) roads."""
        rng = self.rng
        road_x = {r.coord: r for r in self.roads if r.axis == 1}
        road_y = {r.coord: r for r in self.roads if r.axis == 0}
        bx = [self.bounds[0] + 15] + list(road_x) + [self.bounds[2] - 15]
        by = [self.bounds[1] + 15] + list(road_y) + [self.bounds[3] - 15]

        def inner(lo, hi, roads):
            a = lo + (roads[lo].half_width + WALK_WIDTH if lo in roads else 0)
            b = hi - (roads[hi].half_width + WALK_WIDTH if hi in roads else 0)
            return a, b

        for i in range(len(bx) - 1):
            for j in range(len(by) - 1):
                x0, x1 = inner(bx[i], bx[i + 1], road_x)
                y0, y1 = inner(by[j], by[j + 1], road_y)
                # Sides facing a real road: (road, s0, s1, d_near, outward sign)
                sides = []
                if by[j] in road_y:
                    sides.append((road_y[by[j]], x0, x1, +1))
                if by[j + 1] in road_y:
                    sides.append((road_y[by[j + 1]], x0, x1, -1))
                if bx[i] in road_x:
                    sides.append((road_x[bx[i]], y0, y1, -1))
                if bx[i + 1] in road_x:
                    sides.append((road_x[bx[i + 1]], y0, y1, +1))
                park_side = rng.integers(len(sides)) if (
                    sides and rng.random() < 0.45) else -1
                for k, (road, s0, s1, sgn) in enumerate(sides):
                    near = road.half_width + WALK_WIDTH
                    if k == park_side:
                        length = min(45.0, 0.6 * (s1 - s0))
                        a = s0 + rng.uniform(0.1, 0.9) * (s1 - s0 - length)
                        d0, d1 = sorted((sgn * near, sgn * (near + 18.0)))
                        self.map.polygon(
                            'carpark_area', road.rect(a, a + length, d0, d1),
                            orientation=0.0, road_block_token='')
                        self.carparks.append((road, a, a + length, d0, d1))
                        self._frontage(road, s0, a - 3, sgn, near)
                        self._frontage(road, a + length + 3, s1, sgn, near)
                    else:
                        self._frontage(road, s0, s1, sgn, near)

    def _frontage(self, road: Road, s0: float, s1: float, sgn: int,
                  near: float) -> None:
        """A row of buildings set back from the walkway along ``road``."""
        rng = self.rng
        s = s0 + rng.uniform(2, 12)
        while True:
            length = rng.uniform(12, 30)
            if s + length > s1 - 2:
                break
            setback = near + rng.uniform(6, 16)
            depth = rng.uniform(10, 20)
            d_mid = sgn * (setback + depth / 2)
            xy = road.to_global(s + length / 2, d_mid)
            h = rng.uniform(7, 22)
            size = (length, depth, h) if road.axis == 0 else (depth, length, h)
            tone = int(rng.integers(120, 200))
            color = (tone, int(tone * rng.uniform(0.85, 1.0)),
                     int(tone * rng.uniform(0.7, 0.95)))
            self.buildings.append(StaticBox(
                np.array([xy[0], xy[1], h / 2]), np.array(size), 0.0, color))
            s += length + rng.uniform(8, 25)

    # ------------------------------------------------------------ raster
    def _build_raster(self) -> None:
        x0, y0, x1, y1 = self.bounds
        self.raster_origin = np.array([x0 - 40.0, y0 - 40.0])
        w = int(math.ceil((x1 - x0 + 80.0) / RASTER_RES))
        h = int(math.ceil((y1 - y0 + 80.0) / RASTER_RES))
        self.raster = np.zeros((h, w), np.uint8)  # [row=y, col=x]
        shift = 3

        def px(coords):
            p = (np.asarray(coords) - self.raster_origin) / RASTER_RES - 0.5
            return np.round(p * (1 << shift)).astype(np.int32)

        geoms = self.map.geoms
        order = (('carpark_area', 'carpark_area'), ('walkway', 'walkway'),
                 ('road_segment', 'drivable'), ('ped_crossing', 'ped_crossing'),
                 ('stop_line', 'stop_line'))
        for layer, cls in order:
            cv2.fillPoly(self.raster, [px(g) for g in geoms[layer]],
                         GROUND_ID[cls], lineType=cv2.LINE_8, shift=shift)
        thick = max(1, int(round(PAINT_WIDTH / RASTER_RES)))
        for layer in ('lane_divider', 'road_divider'):
            cv2.polylines(self.raster, [px(g) for g in geoms[layer]], False,
                          GROUND_ID[layer], thick, cv2.LINE_8, shift=shift)
        noise_rng = np.random.default_rng(int(make_token(
            'texture', self.layout.name)[:8], 16))
        coarse = noise_rng.normal(0, 1, (h // 20 + 2, w // 20 + 2)).astype(
            np.float32)
        coarse = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
        fine = noise_rng.integers(-7, 8, (h, w), dtype=np.int8)
        self.texture = (np.clip(6 * coarse, -100, 100).astype(np.int8)
                        + fine)

    def _index(self, xy: np.ndarray
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        ij = np.floor((xy - self.raster_origin) / RASTER_RES).astype(np.int64)
        h, w = self.raster.shape
        inside = ((ij[..., 0] >= 0) & (ij[..., 0] < w) & (ij[..., 1] >= 0)
                  & (ij[..., 1] < h))
        return (np.clip(ij[..., 1], 0, h - 1), np.clip(ij[..., 0], 0, w - 1),
                inside)

    def ground_class(self, xy: np.ndarray) -> np.ndarray:
        """Ground class id (see ``GROUND_CLASSES``) at global points (..., 2)."""
        r, c, inside = self._index(xy)
        return np.where(inside, self.raster[r, c], GROUND_ID['terrain'])

    def ground_texture(self, xy: np.ndarray) -> np.ndarray:
        r, c, _ = self._index(xy)
        return self.texture[r, c].astype(np.float32)

    # ------------------------------------------------------------ output
    def map_json(self) -> dict:
        x1, y1 = self.bounds[2] + 40.0, self.bounds[3] + 40.0
        return self.map.to_json((x1, y1))

    def semantic_prior(self) -> np.ndarray:
        """Drivable-area mask at 10 px/m, image rows from north to south (as
        nuScenes' ``maps/*.png``), covering [0, x1] x [0, y1]."""
        x1, y1 = self.bounds[2] + 40.0, self.bounds[3] + 40.0
        w, h = int(x1 * 10), int(y1 * 10)
        mask = np.zeros((h, w), np.uint8)
        polys = [np.round(np.stack([g[:, 0] * 10, h - g[:, 1] * 10], -1)
                          ).astype(np.int32)
                 for g in self.map.geoms['road_segment']]
        cv2.fillPoly(mask, polys, 255)
        return mask

    def lanes_near(self, xy: np.ndarray, radius: float) -> List[Lane]:
        """Lanes whose road passes within ``radius`` of ``xy``."""
        out = []
        for lane in self.lanes:
            r = lane.road
            across = abs(xy[1 - r.axis] - r.coord)
            along = xy[r.axis]
            if across < radius and r.start - radius < along < r.end + radius:
                out.append(lane)
        return out


def yaw_matrix(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_quaternion(yaw: float) -> List[float]:
    """(w, x, y, z) of a rotation about +z."""
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def matrix_quaternion(rot: np.ndarray) -> List[float]:
    """(w, x, y, z) of a 3x3 rotation matrix."""
    from pyquaternion import Quaternion
    q = Quaternion(matrix=np.asarray(rot, float), atol=1e-6)
    return [float(v) for v in q.elements]
