"""Ego trajectory and annotated traffic of one synthetic scene.

Every agent moves with a constant velocity (or stands still), so its
annotations, velocities (the devkit derives them from consecutive
annotations) and attributes are exact. Agents are placed by rejection: none
overlaps another agent, the ego car or a building at any time of the scene.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import shapely

from .world import WALK_WIDTH, Lane, World, make_token

#: detection class -> (nuScenes category, mean size (w, l, h) in metres,
#: LiDAR reflectivity (mean intensity), base RGB colour)
CLASS_SPECS = {
    'car': ('vehicle.car', (1.95, 4.62, 1.73), 34.0, None),
    'truck': ('vehicle.truck', (2.51, 6.93, 2.84), 30.0, (200, 200, 205)),
    'construction_vehicle': ('vehicle.construction', (2.85, 6.37, 3.19), 30.0,
                             (230, 170, 30)),
    'bus': ('vehicle.bus.rigid', (2.94, 10.5, 3.47), 32.0, (40, 120, 200)),
    'trailer': ('vehicle.trailer', (2.90, 12.29, 3.87), 28.0, (170, 160, 150)),
    'barrier': ('movable_object.barrier', (2.53, 0.50, 0.98), 45.0,
                (230, 60, 50)),
    'motorcycle': ('vehicle.motorcycle', (0.77, 2.11, 1.47), 24.0, (30, 30, 35)),
    'bicycle': ('vehicle.bicycle', (0.60, 1.70, 1.28), 20.0, (20, 90, 60)),
    'pedestrian': ('human.pedestrian.adult', (0.67, 0.73, 1.77), 12.0, None),
    'traffic_cone': ('movable_object.trafficcone', (0.41, 0.41, 1.07), 70.0,
                     (250, 110, 20)),
}
VEHICLES = ('car', 'construction_vehicle', 'bus', 'truck', 'trailer')
CAR_COLORS = ((200, 30, 30), (230, 230, 230), (25, 25, 30), (60, 80, 160),
              (150, 150, 155), (90, 30, 20), (220, 200, 60))
PED_COLORS = ((200, 60, 60), (40, 60, 140), (60, 120, 70), (220, 190, 60),
              (90, 90, 90))
EGO_SIZE = (1.85, 4.1, 1.6)  # w, l, h
MOVING_SPEED = 0.2  # m/s, the evaluator's threshold for "moving"


def attribute_of(name: str, speed: float) -> str:
    """nuScenes attribute of an agent; the same rule the detection metric
    applies to predictions, so ground truth fed back scores no AAE."""
    moving = speed > MOVING_SPEED
    if name in VEHICLES:
        if moving:
            return 'vehicle.moving'
        return 'vehicle.stopped' if name == 'bus' else 'vehicle.parked'
    if name in ('bicycle', 'motorcycle'):
        return 'cycle.with_rider' if moving else 'cycle.without_rider'
    if name == 'pedestrian':
        return 'pedestrian.moving' if moving else 'pedestrian.standing'
    return ''


@dataclass
class Agent:
    """A moving or parked box: ``size`` is (w, l, h) as in nuScenes."""
    token: str
    name: str
    size: np.ndarray
    start: np.ndarray  # (x, y) at scene time 0
    velocity: np.ndarray  # (vx, vy) m/s
    yaw: float
    color: Tuple[int, int, int]

    @property
    def category(self) -> str:
        return CLASS_SPECS[self.name][0]

    @property
    def reflectivity(self) -> float:
        return CLASS_SPECS[self.name][2]

    @property
    def speed(self) -> float:
        return float(np.hypot(*self.velocity))

    @property
    def attribute(self) -> str:
        return attribute_of(self.name, self.speed)

    def center(self, t: float) -> np.ndarray:
        xy = self.start + self.velocity * t
        return np.array([xy[0], xy[1], self.size[2] / 2])

    def box(self, t: float) -> np.ndarray:
        """(cx, cy, cz, l, w, h, yaw) at scene time ``t``."""
        w, l, h = self.size
        return np.array([*self.center(t), l, w, h, self.yaw])

    def footprint(self, t: float, margin: float = 0.3):
        w, l, _ = self.size + 2 * margin
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        local = np.array([[l, w], [-l, w], [-l, -w], [l, -w]]) / 2
        pts = local @ np.array([[c, s], [-s, c]]) + self.center(t)[:2]
        return shapely.Polygon(pts)


class Traffic:
    """Places the ego car and the agents of a scene in a ``World``."""

    def __init__(self, world: World, rng: np.random.Generator,
                 duration: float, scene_key: str):
        self.world, self.rng, self.key = world, rng, scene_key
        self.times = np.arange(0.0, duration + 0.51, 0.25)
        self.agents: List[Agent] = []
        self._occupied = [[] for _ in self.times]
        self._sightlines = [[] for _ in self.times]  # kept free for the LiDAR
        # ...at the first and the middle key frame (enough for every class
        # to have LiDAR points; all times would leave no room in busy lanes)
        self._sight_idx = {0, int(np.argmin(np.abs(self.times
                                                   - duration / 2)))}
        self._ego_fp = []
        for b in world.buildings:
            poly = Agent('', 'car', np.array([b.size[1], b.size[0], 1.0]),
                         b.center[:2], np.zeros(2), b.yaw, (0, 0, 0)
                         ).footprint(0.0, margin=0.0)
            for occ in self._occupied:
                occ.append(poly)
        self.ego = self._place_ego()
        self.center = self.ego.center(duration / 2)[:2]

    # ---------------------------------------------------------------- ego
    def _place_ego(self) -> Agent:
        rng = self.rng
        lanes = self.world.lanes
        for _ in range(100):
            lane = lanes[rng.integers(len(lanes))]
            speed = rng.uniform(3.0, 8.0)
            travel = speed * self.times[-1]
            r = lane.road
            lo, hi = r.start + 30, r.end - 30 - travel
            if hi <= lo:
                continue
            s = rng.uniform(lo, hi) if lane.direction > 0 else rng.uniform(
                r.start + 30 + travel, r.end - 30)
            xy, yaw = lane.pose(s)
            ego = Agent('ego', 'car', np.array(EGO_SIZE), xy,
                        lane.velocity(speed), yaw, (0, 0, 0))
            if not self._fits(ego):
                continue
            self._ego_fp = [ego.footprint(t) for t in self.times]
            self.ego_lane = lane
            return ego
        raise RuntimeError('could not place the ego vehicle')

    # -------------------------------------------------------------- agents
    def _sightline(self, agent: Agent, t: float):
        return shapely.LineString([self.ego.center(t)[:2],
                                   agent.center(t)[:2]]).buffer(0.6)

    def _fits(self, agent: Agent, keep_visible: bool = False) -> bool:
        for i, t in enumerate(self.times):
            fp = agent.footprint(t)
            blockers = self._occupied[i] + self._sightlines[i]
            if self._ego_fp:
                blockers = blockers + [self._ego_fp[i]]
            if np.any(shapely.intersects(np.array(blockers, object), fp)):
                return False
            if keep_visible and i in self._sight_idx and np.any(
                    shapely.intersects(np.array(self._occupied[i], object),
                                       self._sightline(agent, t))):
                return False
        return True

    def _commit(self, agent: Agent, keep_visible: bool = False) -> None:
        """Occupies the agent's footprints; ``keep_visible`` also reserves
        the line of sight from the ego car to it at every time."""
        for i, t in enumerate(self.times):
            self._occupied[i].append(agent.footprint(t))
            if keep_visible and i in self._sight_idx:
                self._sightlines[i].append(self._sightline(agent, t))
        self.agents.append(agent)

    def _new(self, name: str, xy, yaw: float, velocity=(0.0, 0.0),
             keep_visible: bool = False) -> bool:
        rng = self.rng
        w, l, h = CLASS_SPECS[name][1]
        size = np.array([w, l, h]) * rng.uniform(0.9, 1.1, 3)
        base = CLASS_SPECS[name][3]
        if base is None:
            palette = CAR_COLORS if name == 'car' else PED_COLORS
            base = palette[rng.integers(len(palette))]
        agent = Agent(make_token('instance', self.key, len(self.agents)), name,
                      size, np.asarray(xy, float), np.asarray(velocity, float),
                      float(yaw), tuple(int(c) for c in base))
        if self._fits(agent, keep_visible):
            self._commit(agent, keep_visible)
            return True
        return False

    def _near_lanes(self, radius: float = 45.0) -> List[Lane]:
        return self.world.lanes_near(self.center, radius)

    def _s_near(self, lane: Lane, spread: float = 50.0) -> float:
        return self.center[lane.road.axis] + self.rng.uniform(-spread, spread)

    def populate(self, n_vehicles: int = 14, n_peds: int = 10,
                 n_cycles: int = 3, n_cone_groups: int = 2) -> List[Agent]:
        rng = self.rng
        lanes = [ln for ln in self._near_lanes() if ln is not self.ego_lane]
        self._one_of_each(lanes)
        kinds = ('car',) * 12 + ('truck',) * 3 + (
            'bus', 'trailer', 'motorcycle', 'motorcycle')
        lane_speed = {id(ln): (0.0 if rng.random() < 0.3 else
                               rng.uniform(3.0, 9.0)) for ln in lanes}
        for _ in range(n_vehicles * 3):
            if sum(a.name in VEHICLES + ('motorcycle',) for a in self.agents
                   ) > n_vehicles or not lanes:
                break
            lane = lanes[rng.integers(len(lanes))]
            name = kinds[rng.integers(len(kinds))]
            xy, yaw = lane.pose(self._s_near(lane), rng.uniform(-0.3, 0.3))
            self._new(name, xy, yaw, lane.velocity(lane_speed[id(lane)]))
        self._parked_cars()
        for _ in range(n_cycles * 3):
            if sum(a.name in ('bicycle',) for a in self.agents) >= n_cycles:
                break
            if rng.random() < 0.5 and lanes:  # riding at the lane edge
                lane = lanes[rng.integers(len(lanes))]
                xy, yaw = lane.pose(self._s_near(lane), rng.uniform(-1.2, 1.2))
                self._new('bicycle', xy, yaw,
                          lane.velocity(rng.uniform(2.5, 5.0)))
            else:
                xy, yaw, _ = self._walkway_spot()
                self._new('bicycle', xy, yaw + math.pi / 2 * rng.integers(2))
        for _ in range(n_peds * 3):
            if sum(a.name == 'pedestrian' for a in self.agents) >= n_peds:
                break
            if rng.random() < 0.25 and self.world.crossings:
                self._crossing_pedestrian()
                continue
            xy, yaw, along = self._walkway_spot()
            if rng.random() < 0.65:
                yaw += math.pi * rng.integers(2)
                speed = rng.uniform(1.0, 1.6)
                self._new('pedestrian', xy, yaw,
                          speed * np.array([math.cos(yaw), math.sin(yaw)]))
            else:
                self._new('pedestrian', xy, rng.uniform(-math.pi, math.pi))
        for _ in range(n_cone_groups):
            if lanes:
                self._roadworks(lanes[rng.integers(len(lanes))])
        return self.agents

    def _one_of_each(self, lanes: List[Lane]) -> None:
        """Every class once close to the ego path (inside the evaluation
        ranges) with a free line of sight from the ego car, so that even a
        tiny split has all ten classes with LiDAR points.

        They stand still (only small road users may ride), in a nearby lane
        or in the ego lane behind the ego's start or beyond its end, so that
        no moving agent has to cross their lines of sight."""
        rng = self.rng
        close = [ln for ln in self.world.lanes_near(self.center, 20.0)
                 if ln is not self.ego_lane] or lanes
        ego_s0 = self.ego.center(0.0)[self.ego_lane.road.axis]
        ego_s1 = self.ego.center(self.times[-1])[self.ego_lane.road.axis]
        # Longest first: they are the hardest to fit.
        for name in sorted(CLASS_SPECS, key=lambda n: -CLASS_SPECS[n][1][1]):
            for _ in range(150):
                on_walkway = name == 'pedestrian' or (name in (
                    'motorcycle', 'bicycle', 'barrier', 'traffic_cone')
                    and rng.random() < 0.4)
                if on_walkway:
                    xy, yaw, _ = self._walkway_spot(close, spread=20.0)
                    if self._new(name, xy, yaw, keep_visible=True):
                        break
                    continue
                lateral = (rng.choice([-1.3, 1.3]) if name in (
                    'barrier', 'traffic_cone') else rng.uniform(-0.3, 0.3))
                gap = rng.uniform(6.0, 18.0) + CLASS_SPECS[name][1][1] / 2
                if rng.random() < 0.3:
                    lane = self.ego_lane
                    sign = self.ego_lane.direction
                    s = ego_s1 + sign * gap if rng.random() < 0.5 else \
                        ego_s0 - sign * gap
                else:
                    lane = close[rng.integers(len(close))]
                    s = self._s_near(lane, 20.0)
                xy, yaw = lane.pose(s, lateral)
                if name == 'barrier':
                    yaw += math.pi / 2
                moving = lane is not self.ego_lane and name in (
                    'car', 'motorcycle', 'bicycle') and rng.random() < 0.4
                vel = lane.velocity(rng.uniform(2.0, 5.0)) if moving else (
                    0.0, 0.0)
                if self._new(name, xy, yaw, vel, keep_visible=True):
                    break

    def _walkway_spot(self, lanes: Optional[List[Lane]] = None,
                      spread: float = 50.0) -> Tuple[np.ndarray, float,
                                                     float]:
        rng = self.rng
        lanes = lanes or self._near_lanes()
        road = lanes[rng.integers(len(lanes))].road
        sgn = 1 if rng.random() < 0.5 else -1
        d = sgn * (road.half_width + rng.uniform(0.6, WALK_WIDTH - 0.6))
        s = self.center[road.axis] + rng.uniform(-spread, spread)
        return road.to_global(s, d), road.heading, s

    def _crossing_pedestrian(self) -> None:
        rng = self.rng
        near = [c for c in self.world.crossings
                if np.hypot(*(c[0].to_global((c[1] + c[2]) / 2, 0)
                              - self.center)) < 55]
        if not near:
            return
        road, c0, c1 = near[rng.integers(len(near))]
        d = rng.uniform(-road.half_width, road.half_width)
        xy = road.to_global(rng.uniform(c0 + 0.5, c1 - 0.5), d)
        yaw = road.heading + math.pi / 2 * (1 if rng.random() < 0.5 else -1)
        self._new('pedestrian', xy, yaw,
                  1.3 * np.array([math.cos(yaw), math.sin(yaw)]))

    def _parked_cars(self) -> None:
        rng = self.rng
        for road, a, b, d0, d1 in self.world.carparks:
            mid = road.to_global((a + b) / 2, (d0 + d1) / 2)
            if np.hypot(*(mid - self.center)) > 70:
                continue
            d_row = d0 + 3.0 if abs(d0) < abs(d1) else d1 - 3.0
            for s in np.arange(a + 1.5, b - 1.5, 2.8):
                if rng.random() < 0.55:
                    kind = 'car' if rng.random() < 0.9 else 'truck'
                    self._new(kind, road.to_global(s, d_row),
                              road.heading + math.pi / 2
                              + math.pi * rng.integers(2))

    def _roadworks(self, lane: Lane) -> None:
        """A row of cones or barriers along a lane edge, maybe a digger."""
        rng = self.rng
        s = self._s_near(lane, 40.0)
        edge = 1.3 if rng.random() < 0.5 else -1.3
        cones = rng.random() < 0.6
        _, yaw = lane.pose(s)
        for k in range(int(rng.integers(3, 7))):
            xy, _ = lane.pose(s + k * (2.5 if cones else 2.7) * lane.direction,
                              edge)
            if cones:
                self._new('traffic_cone', xy, rng.uniform(-math.pi, math.pi))
            else:
                self._new('barrier', xy, yaw + math.pi / 2)
        if rng.random() < 0.4:
            xy, _ = lane.pose(s - 9.0 * lane.direction, -edge * 0.3)
            self._new('construction_vehicle', xy, yaw)


def boxes_at(agents: Sequence[Agent], t: float) -> np.ndarray:
    """(N, 7) boxes (cx, cy, cz, l, w, h, yaw) of ``agents`` at time ``t``."""
    if not agents:
        return np.zeros((0, 7))
    return np.stack([a.box(t) for a in agents])
