"""Writes a synthetic dataset in the exact nuScenes on-disk format.

Layout under ``out_dir`` (what ``nuscenes.NuScenes`` and ``NuScenesMap`` read):
``<version>/*.json`` (the 13 tables), ``maps/expansion/<location>.json``
(map expansion v1.3), ``maps/<token>.png`` (semantic prior),
``samples/<channel>/`` key frames and ``sweeps/<channel>/`` intermediate
frames (LiDAR ``.pcd.bin`` with x, y, z, intensity, ring; camera ``.jpg``).

With at most 8 train and 2 val scenes the set is a ``v1.0-mini`` whose scene
names come from nuScenes-mini's own train/val split, so every nuScenes tool
that splits by scene name (the mmdet3d converter, the detection evaluator)
works unchanged; a larger one is a partial ``v1.0-trainval``. The default set
of the tools (``DEFAULT_SET``) has 12 scenes, 4 of them val (40 val samples).
"""
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .sensors import (CAMERA_DELAY_MS, CAMERA_RIG, LIDAR_ROTATION,
                      LIDAR_TRANSLATION, SENSOR_PROFILES, camera_extrinsics,
                      camera_intrinsics, pose_matrix, render_camera,
                      scan_lidar, visibility_level)
from .traffic import Agent, Traffic, boxes_at
from .world import (LOCATIONS, World, make_token, matrix_quaternion,
                    yaw_matrix, yaw_quaternion)

CATEGORIES = (
    'animal', 'human.pedestrian.adult', 'human.pedestrian.child',
    'human.pedestrian.construction_worker', 'human.pedestrian.personal_mobility',
    'human.pedestrian.police_officer', 'human.pedestrian.stroller',
    'human.pedestrian.wheelchair', 'movable_object.barrier',
    'movable_object.debris', 'movable_object.pushable_pullable',
    'movable_object.trafficcone', 'static_object.bicycle_rack',
    'vehicle.bicycle', 'vehicle.bus.bendy', 'vehicle.bus.rigid', 'vehicle.car',
    'vehicle.construction', 'vehicle.emergency.ambulance',
    'vehicle.emergency.police', 'vehicle.motorcycle', 'vehicle.trailer',
    'vehicle.truck')
ATTRIBUTES = ('vehicle.moving', 'vehicle.stopped', 'vehicle.parked',
              'cycle.with_rider', 'cycle.without_rider', 'pedestrian.sitting_lying_down',
              'pedestrian.standing', 'pedestrian.moving')
VISIBILITY = (('1', 'v0-40'), ('2', 'v40-60'), ('3', 'v60-80'),
              ('4', 'v80-100'))
LIDAR = 'LIDAR_TOP'
KEYFRAME_US = 500_000  # 2 Hz key frames
LIDAR_PERIOD_US = 50_000  # 20 Hz LiDAR
CAMERA_PERIOD_US = 83_333  # 12 Hz cameras
ANNOTATION_RANGE = 60.0  # metres around the ego vehicle
#: The default set of tools/make_synthetic_nuscenes.py, `make data` and the
#: demo: 8 train scenes (80 samples) and 4 val scenes (40 samples).
DEFAULT_SET = dict(num_scenes=12, num_val_scenes=4, samples_per_scene=10)
#: What the generator draws; changes when the content changes (2: heading
#: cue, motion along the heading). Written to ``synthetic_nuscenes.json``.
GENERATOR_VERSION = 2
SUMMARY_FILE = 'synthetic_nuscenes.json'


def split_scene_names(
        num_scenes: int,
        num_val: Optional[int] = None) -> Tuple[str, List[str], List[str]]:
    """(version, train names, val names).

    ``num_val`` val scenes (default: the proportion of nuScenes-mini, 2 of
    10). A split that fits nuScenes-mini's (at most 8 train / 2 val scenes)
    is a ``v1.0-mini`` with its scene names, a larger one a partial
    ``v1.0-trainval`` with names from nuScenes' train / val lists, so every
    tool that splits by scene name works unchanged.
    """
    from nuscenes.utils import splits
    if num_scenes < 2:
        raise ValueError(f'need at least 2 scenes (one train, one val), got '
                         f'{num_scenes}')
    n_val = max(1, int(round(num_scenes * 0.2))) if num_val is None \
        else int(num_val)
    n_train = num_scenes - n_val
    if not 1 <= n_val < num_scenes:
        raise ValueError(f'need 1 to {num_scenes - 1} val scenes of '
                         f'{num_scenes}, got {n_val}')
    if n_train <= len(splits.mini_train) and n_val <= len(splits.mini_val):
        return 'v1.0-mini', splits.mini_train[:n_train], splits.mini_val[:n_val]
    if n_train > len(splits.train) or n_val > len(splits.val):
        raise ValueError(f'at most {len(splits.train) + len(splits.val)} '
                         f'scenes, got {num_scenes}')
    return 'v1.0-trainval', splits.train[:n_train], splits.val[:n_val]


class SyntheticNuScenes:
    """Generator of a synthetic nuScenes set; ``run()`` writes it.

    Args:
        out_dir: dataset root to write (created).
        num_scenes: scenes (>= 2); scene i lies in location i % 2.
        num_val_scenes: how many of them are val scenes (the last ones;
            default 20%, as nuScenes-mini).
        samples_per_scene: key frames per scene (2 Hz).
        seed: everything written is a function of the arguments.
        image_size: (width, height) of the camera images; intrinsics are
            those of nuScenes' 1600x900 cameras scaled to it.
        lidar_sweeps: LiDAR sweeps (20 Hz) written before every key frame.
        camera_sweeps: camera sweeps (12 Hz) written before every key frame.
        azimuths: LiDAR columns per revolution (32 rings each).
        sensor_profile: a name of ``SENSOR_PROFILES``: what each sensor
            sees how well (written to the summary file).
    """

    def __init__(self, out_dir: str, num_scenes: int = 10,
                 samples_per_scene: int = 10, seed: int = 0,
                 num_val_scenes: Optional[int] = None,
                 image_size: Sequence[int] = (480, 270), lidar_sweeps: int = 1,
                 camera_sweeps: int = 1, azimuths: int = 1024,
                 sensor_profile: str = 'v2', verbose: bool = True):
        if sensor_profile not in SENSOR_PROFILES:
            raise ValueError(f'unknown sensor profile {sensor_profile!r}: '
                             f'choose one of {", ".join(SENSOR_PROFILES)}')
        self.sensor_profile = sensor_profile
        self.profile = SENSOR_PROFILES[sensor_profile]
        if samples_per_scene < 2:
            raise ValueError('samples_per_scene must be >= 2 (prev/next '
                             f'links and velocities), got {samples_per_scene}')
        if lidar_sweeps > 9 or camera_sweeps > 5:
            raise ValueError('at most 9 LiDAR and 5 camera sweeps fit between '
                             '2 Hz key frames')
        self.out_dir = out_dir
        self.version, self.train_names, self.val_names = split_scene_names(
            num_scenes, num_val_scenes)
        self.num_scenes, self.samples = num_scenes, samples_per_scene
        self.seed, self.image_size = seed, tuple(int(v) for v in image_size)
        self.lidar_sweeps, self.camera_sweeps = lidar_sweeps, camera_sweeps
        self.azimuths, self.verbose = azimuths, verbose
        self.tables: Dict[str, list] = {k: [] for k in (
            'category', 'attribute', 'visibility', 'instance', 'sensor',
            'calibrated_sensor', 'ego_pose', 'log', 'scene', 'sample',
            'sample_data', 'sample_annotation', 'map')}

    def tok(self, *parts) -> str:
        return make_token(self.seed, *parts)

    # ----------------------------------------------------------------- run
    def run(self) -> dict:
        t_start = time.time()
        os.makedirs(self.out_dir, exist_ok=True)
        self._static_tables()
        worlds = {}
        names = list(self.train_names) + list(self.val_names)
        logs_per_location: Dict[str, list] = {}
        for i, name in enumerate(names):
            layout = LOCATIONS[i % len(LOCATIONS)]
            if layout.name not in worlds:
                worlds[layout.name] = World(layout, self.seed)
            log_token = self._scene(i, name, worlds[layout.name])
            logs_per_location.setdefault(layout.name, []).append(log_token)
            if self.verbose:
                print(f'[synthetic-nuscenes] {name} ({layout.name}) done, '
                      f'{time.time() - t_start:.1f} s', flush=True)
        for loc, world in worlds.items():
            self._write_map(world, logs_per_location[loc])
        table_dir = osp.join(self.out_dir, self.version)
        os.makedirs(table_dir, exist_ok=True)
        for name, records in self.tables.items():
            with open(osp.join(table_dir, f'{name}.json'), 'w') as f:
                json.dump(records, f, indent=1)
        summary = dict(version=self.version, scenes=len(names),
                       val_scenes=len(self.val_names),
                       samples=len(self.tables['sample']),
                       val_samples=len(self.val_names) * self.samples,
                       annotations=len(self.tables['sample_annotation']),
                       instances=len(self.tables['instance']),
                       generator_version=GENERATOR_VERSION, seed=self.seed,
                       sensor_profile=self.sensor_profile)
        with open(osp.join(self.out_dir, SUMMARY_FILE), 'w') as f:
            json.dump(summary, f, indent=1)  # no timings: same args, same bytes
        summary['seconds'] = round(time.time() - t_start, 1)
        summary['bytes'] = _tree_size(self.out_dir)
        return summary

    # ------------------------------------------------------- static tables
    def _static_tables(self) -> None:
        t = self.tables
        for name in CATEGORIES:
            t['category'].append(dict(token=self.tok('category', name),
                                      name=name, description=name))
        for name in ATTRIBUTES:
            t['attribute'].append(dict(token=self.tok('attribute', name),
                                       name=name, description=name))
        for level, name in VISIBILITY:
            t['visibility'].append(dict(token=level, level=name,
                                        description=f'visibility {name}%'))
        for channel in (LIDAR, *CAMERA_RIG):
            t['sensor'].append(dict(
                token=self.tok('sensor', channel), channel=channel,
                modality='lidar' if channel == LIDAR else 'camera'))

    def _write_map(self, world: World, log_tokens: List[str]) -> None:
        exp = osp.join(self.out_dir, 'maps', 'expansion')
        os.makedirs(exp, exist_ok=True)
        with open(osp.join(exp, f'{world.layout.name}.json'), 'w') as f:
            json.dump(world.map_json(), f)
        token = self.tok('map', world.layout.name)
        filename = f'maps/{token}.png'
        cv2.imwrite(osp.join(self.out_dir, filename), world.semantic_prior())
        self.tables['map'].append(dict(token=token, log_tokens=log_tokens,
                                       category='semantic_prior',
                                       filename=filename))

    # --------------------------------------------------------------- scene
    def _scene(self, index: int, name: str, world: World) -> str:
        t = self.tables
        rng = np.random.default_rng([self.seed, index])
        duration = (self.samples - 1) * KEYFRAME_US / 1e6
        traffic = Traffic(world, rng, duration, self.tok('scene', name))
        agents = traffic.populate()
        ego = traffic.ego
        scene_tok, log_tok = self.tok('scene', name), self.tok('log', name)
        t0 = 1_533_000_000_000_000 + index * 3_600_000_000
        logfile = (f'n{15 if index % 2 else 8:03d}-2018-08-{1 + index % 28:02d}'
                   f'-{10 + index % 10:02d}-00-00+0800')
        t['log'].append(dict(token=log_tok, logfile=logfile, vehicle='n015',
                             date_captured=f'2018-08-{1 + index % 28:02d}',
                             location=world.layout.name))
        calib = self._calibration(name)
        sample_toks = [self.tok('sample', name, k) for k in range(self.samples)]
        for k, stok in enumerate(sample_toks):
            t['sample'].append(dict(
                token=stok, timestamp=t0 + k * KEYFRAME_US,
                prev=sample_toks[k - 1] if k else '',
                next=sample_toks[k + 1] if k + 1 < self.samples else '',
                scene_token=scene_tok))
        t['scene'].append(dict(
            token=scene_tok, log_token=log_tok, nbr_samples=self.samples,
            first_sample_token=sample_toks[0], last_sample_token=sample_toks[-1],
            name=name, description=f'synthetic drive in {world.layout.name}'))

        static = np.array([[*b.center, *b.size, b.yaw]
                           for b in world.buildings]).reshape(-1, 7)
        static_refl = np.full(len(static), 12.0)
        static_rgb = np.array([b.color for b in world.buildings],
                              np.float32).reshape(-1, 3)
        agent_refl = np.array([a.reflectivity for a in agents])
        agent_rgb = np.array([a.color for a in agents], np.float32).reshape(
            -1, 3)
        # the heading cue (front part marked in both sensors): agents with a
        # heading; cones are round (nuScenes does not score their yaw)
        cued = np.array([a.name != 'traffic_cone' for a in agents]
                        + [False] * len(static), bool)

        def world_boxes(tau):
            return np.concatenate([boxes_at(agents, tau), static])

        # Key frames and sweeps of every channel, in time order.
        lidar_hits = {}  # key frame -> per-agent LiDAR point counts
        seen = np.zeros((self.samples, len(agents)), np.int64)
        covered = np.zeros((self.samples, len(agents)), np.int64)
        for channel in (LIDAR, *CAMERA_RIG):
            frames = self._frame_times(channel, t0)
            prev_tok = ''
            toks = [self.tok('sd', name, channel, ts) for ts, _, _ in frames]
            for n, (ts, key, k) in enumerate(frames):
                sd_tok = toks[n]
                tau = (ts - t0) / 1e6
                ego2global = pose_matrix(yaw_matrix(ego.yaw),
                                         ego.center(tau) * [1, 1, 0])
                t['ego_pose'].append(dict(
                    token=sd_tok, timestamp=ts,
                    rotation=yaw_quaternion(ego.yaw),
                    translation=[float(v) for v in ego2global[:3, 3]]))
                folder = 'samples' if key else 'sweeps'
                ext = 'pcd.bin' if channel == LIDAR else 'jpg'
                filename = (f'{folder}/{channel}/{logfile}__{channel}__{ts}'
                            f'.{ext}')
                path = osp.join(self.out_dir, filename)
                os.makedirs(osp.dirname(path), exist_ok=True)
                sensor2ego = calib[channel][1]
                sensor2global = ego2global @ sensor2ego
                boxes = world_boxes(tau)
                if channel == LIDAR:
                    pts, tgt = scan_lidar(
                        world, sensor2global, boxes,
                        np.concatenate([agent_refl, static_refl]),
                        np.random.default_rng(int(sd_tok[:8], 16)),
                        self.azimuths, cued, self.profile)
                    pts.tofile(path)
                    if key:
                        lidar_hits[k] = np.bincount(
                            tgt[(tgt >= 0) & (tgt < len(agents))],
                            minlength=len(agents))
                    height = width = 0
                else:
                    width, height = self.image_size
                    img, vis, tot = render_camera(
                        world, sensor2global, calib[channel][2],
                        self.image_size, boxes,
                        np.concatenate([agent_rgb, static_rgb]), cued)
                    cv2.imwrite(path, img[:, :, ::-1],
                                [cv2.IMWRITE_JPEG_QUALITY, 92])
                    if key:
                        seen[k] += vis[:len(agents)]
                        covered[k] += tot[:len(agents)]
                t['sample_data'].append(dict(
                    token=sd_tok, sample_token=sample_toks[k],
                    ego_pose_token=sd_tok,
                    calibrated_sensor_token=calib[channel][0], timestamp=ts,
                    fileformat='pcd' if channel == LIDAR else 'jpg',
                    is_key_frame=key, height=height, width=width,
                    filename=filename, prev=prev_tok,
                    next=toks[n + 1] if n + 1 < len(frames) else ''))
                prev_tok = sd_tok
        self._annotations(name, agents, ego, t0, sample_toks, lidar_hits,
                          seen, covered)
        return log_tok

    def _frame_times(self, channel: str, t0: int) -> List[Tuple[int, bool,
                                                                int]]:
        """(timestamp, is key frame, key frame index) of a channel's frames;
        sweeps belong to the key frame that follows them."""
        if channel == LIDAR:
            delay, period, sweeps = 0, LIDAR_PERIOD_US, self.lidar_sweeps
        else:
            delay = CAMERA_DELAY_MS[channel] * 1000
            period, sweeps = CAMERA_PERIOD_US, self.camera_sweeps
        out = []
        for k in range(self.samples):
            key_ts = t0 + k * KEYFRAME_US + delay
            for j in range(sweeps, 0, -1):
                out.append((key_ts - j * period, False, k))
            out.append((key_ts, True, k))
        return out

    def _calibration(self, scene: str) -> Dict[str, tuple]:
        """channel -> (calibrated_sensor token, sensor2ego 4x4, intrinsics)."""
        out = {}
        for channel in (LIDAR, *CAMERA_RIG):
            tok = self.tok('calibrated_sensor', scene, channel)
            if channel == LIDAR:
                rot, trans, k = LIDAR_ROTATION, LIDAR_TRANSLATION, None
            else:
                rot, trans = camera_extrinsics(channel)
                k = camera_intrinsics(channel, *self.image_size)
            self.tables['calibrated_sensor'].append(dict(
                token=tok, sensor_token=self.tok('sensor', channel),
                translation=[float(v) for v in trans],
                rotation=matrix_quaternion(rot),
                camera_intrinsic=[] if k is None else k.tolist()))
            out[channel] = (tok, pose_matrix(rot, trans), k)
        return out

    def _annotations(self, scene: str, agents: List[Agent], ego: Agent,
                     t0: int, sample_toks: List[str],
                     lidar_hits: Dict[int, np.ndarray], seen: np.ndarray,
                     covered: np.ndarray) -> None:
        t = self.tables
        cat_tok = {r['name']: r['token'] for r in t['category']}
        attr_tok = {r['name']: r['token'] for r in t['attribute']}
        for a_idx, agent in enumerate(agents):
            anns = []
            for k in range(self.samples):
                tau = k * KEYFRAME_US / 1e6
                center = agent.center(tau)
                if np.hypot(*(center[:2] - ego.center(tau)[:2])
                            ) > ANNOTATION_RANGE:
                    continue
                anns.append(dict(
                    token=self.tok('ann', scene, agent.token, k),
                    sample_token=sample_toks[k],
                    instance_token=agent.token,
                    visibility_token=visibility_level(seen[k, a_idx],
                                                      covered[k, a_idx]),
                    attribute_tokens=[attr_tok[agent.attribute]]
                    if agent.attribute else [],
                    translation=[round(float(v), 4) for v in center],
                    size=[round(float(v), 4) for v in agent.size],
                    rotation=yaw_quaternion(agent.yaw),
                    prev='', next='',
                    num_lidar_pts=int(lidar_hits[k][a_idx]),
                    num_radar_pts=0))
            if not anns:
                continue
            for i, ann in enumerate(anns):
                ann['prev'] = anns[i - 1]['token'] if i else ''
                ann['next'] = anns[i + 1]['token'] if i + 1 < len(anns) else ''
            t['sample_annotation'].extend(anns)
            t['instance'].append(dict(
                token=agent.token, category_token=cat_tok[agent.category],
                nbr_annotations=len(anns),
                first_annotation_token=anns[0]['token'],
                last_annotation_token=anns[-1]['token']))


def _tree_size(root: str) -> int:
    return sum(osp.getsize(osp.join(d, f)) for d, _, files in os.walk(root)
               for f in files)


def generate(out_dir: str, **kwargs) -> dict:
    """Writes a synthetic nuScenes set; see ``SyntheticNuScenes`` for the
    arguments. Returns a summary (counts, seconds, bytes)."""
    return SyntheticNuScenes(out_dir, **kwargs).run()
