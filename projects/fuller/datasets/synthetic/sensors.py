"""Simulated sensors of the synthetic nuScenes set: a nuScenes-like rig of a
32-beam spinning LiDAR and six cameras, ray-cast against the ground raster,
the annotated boxes and the buildings of a ``World``.

Both sensors share one ray caster, so a box that a camera sees is where the
LiDAR hits it. Road paint is bright in the images but only slightly brighter
than asphalt in LiDAR intensity: map layers are mostly a camera cue, object
geometry mostly a LiDAR cue.

Heading cue: the front third of every agent but traffic cones (along its yaw,
the direction it moves in) is marked in both sensors, a retro-reflective band in the LiDAR
intensity and a turquoise paint in the images, so that the front can be told
from the back (a plain box looks the same both ways round).
"""
import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from .world import World, yaw_matrix

# ----------------------------------------------------------------- the rig
#: LiDAR mount in the ego frame; its x axis points to the ego's right, y
#: forward (as nuScenes' LIDAR_TOP).
LIDAR_TRANSLATION = np.array([0.94, 0.0, 1.84])
LIDAR_ROTATION = yaw_matrix(-math.pi / 2)
LIDAR_ELEVATIONS = np.deg2rad(np.linspace(-30.67, 10.67, 32))
LIDAR_MAX_RANGE = 70.0

#: camera name -> (mount (x, y, z) in ego frame, yaw of the optical axis in
#: degrees, focal length in pixels for a 1600 px wide image)
CAMERA_RIG = {
    'CAM_FRONT': ((1.70, 0.00, 1.51), 0.0, 1266.0),
    'CAM_FRONT_RIGHT': ((1.55, -0.49, 1.50), -55.0, 1260.0),
    'CAM_FRONT_LEFT': ((1.52, 0.49, 1.51), 55.0, 1262.0),
    'CAM_BACK': ((0.03, 0.00, 1.57), 180.0, 809.0),
    'CAM_BACK_LEFT': ((1.04, 0.48, 1.56), 110.0, 1256.0),
    'CAM_BACK_RIGHT': ((1.05, -0.48, 1.59), -110.0, 1259.0),
}
CAMERA_TILT = math.radians(1.0)  # optical axes look slightly down
#: camera -> ms after the LiDAR keyframe at which it fires (the sweeping beam
#: passes the cameras one after the other, as in nuScenes)
CAMERA_DELAY_MS = {'CAM_FRONT': 12, 'CAM_FRONT_RIGHT': 20, 'CAM_BACK_RIGHT': 28,
                   'CAM_BACK': 37, 'CAM_BACK_LEFT': 45, 'CAM_FRONT_LEFT': 4}


def camera_extrinsics(name: str) -> Tuple[np.ndarray, np.ndarray]:
    """(rotation 3x3, translation) of camera -> ego. Camera axes: x right,
    y down, z forward (optical axis)."""
    pos, yaw_deg, _ = CAMERA_RIG[name]
    forward_cam = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0],
                            [0.0, -1.0, 0.0]])  # cam axes in a forward rig
    c, s = math.cos(CAMERA_TILT), math.sin(CAMERA_TILT)
    tilt = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])  # pitch down
    rot = yaw_matrix(math.radians(yaw_deg)) @ tilt @ forward_cam
    return rot, np.array(pos)


def camera_intrinsics(name: str, width: int, height: int) -> np.ndarray:
    """3x3 pinhole intrinsics scaled from a 1600x900 nuScenes camera."""
    f = CAMERA_RIG[name][2] * width / 1600.0
    return np.array([[f, 0.0, width / 2.0 + 0.01 * width],
                     [0.0, f, height / 2.0 + 0.04 * height], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------- ray casting
@dataclass
class Hits:
    """Nearest hit of every ray: distance along the (unit) ray, what it hit
    (-2 nothing, -1 ground, k >= 0 box k) and the outward face normal."""
    t: np.ndarray
    target: np.ndarray
    normal: np.ndarray
    total: np.ndarray  # per box: rays that hit it ignoring occlusion


def _ray_box(origin: np.ndarray, dirs: np.ndarray, box: np.ndarray):
    """Slab test of rays against one yawed box (cx, cy, cz, l, w, h, yaw).

    Returns (t, face): t (R,) is inf where the ray misses; face (R,) codes
    the entry face as axis + 3 * (ray direction along the axis > 0)."""
    c, s = math.cos(box[6]), math.sin(box[6])
    rel = origin - box[:3]
    o = (c * rel[0] + s * rel[1], -s * rel[0] + c * rel[1], rel[2])
    d = (c * dirs[:, 0] + s * dirs[:, 1], -s * dirs[:, 0] + c * dirs[:, 1],
         dirs[:, 2])
    t_in = np.full(len(dirs), -np.inf)
    t_out = np.full(len(dirs), np.inf)
    face = np.zeros(len(dirs), np.int8)
    for ax in range(3):
        da = d[ax]
        inv = 1.0 / np.where(np.abs(da) < 1e-12, 1e-12, da)
        ta = (-box[3 + ax] / 2 - o[ax]) * inv
        tb = (box[3 + ax] / 2 - o[ax]) * inv
        near = np.minimum(ta, tb)
        better = near > t_in
        t_in = np.where(better, near, t_in)
        face = np.where(better, ax + 3 * (da > 0), face)
        np.minimum(t_out, np.maximum(ta, tb), out=t_out)
    hit = (t_out >= t_in) & (t_in > 1e-3)
    return np.where(hit, t_in, np.inf), face


def _face_normals(box: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Global outward normals (R, 3) of the entry faces coded by _ray_box."""
    local = np.zeros((len(face), 3))
    axis = face % 3
    local[np.arange(len(face)), axis] = np.where(face >= 3, -1.0, 1.0)
    return local @ yaw_matrix(box[6]).T


def cast_rays(origin: np.ndarray, dirs: np.ndarray, boxes: np.ndarray,
              max_range: float = np.inf,
              candidates: Optional[list] = None) -> Hits:
    """Casts unit rays ``dirs`` (R, 3) from ``origin`` against the ground
    plane z = 0 and ``boxes`` (B, 7). ``candidates``: optional per box index
    array of the rays that can hit it (a cull)."""
    n = len(dirs)
    with np.errstate(divide='ignore', invalid='ignore'):
        t_ground = np.where(dirs[:, 2] < -1e-6, -origin[2] / dirs[:, 2],
                            np.inf)
    t = np.where(t_ground <= max_range, t_ground, np.inf)
    target = np.where(np.isfinite(t), -1, -2)
    normal = np.zeros((n, 3))
    normal[:, 2] = 1.0
    total = np.zeros(len(boxes), np.int64)
    for k, box in enumerate(boxes):
        idx = candidates[k] if candidates is not None else np.arange(n)
        if len(idx) == 0:
            continue
        tk, face = _ray_box(origin, dirs[idx], box)
        tk[tk > max_range] = np.inf
        total[k] = np.isfinite(tk).sum()
        closer = tk < t[idx]
        if not closer.any():
            continue
        rows = idx[closer]
        t[rows] = tk[closer]
        target[rows] = k
        normal[rows] = _face_normals(box, face[closer])
    return Hits(t, target, normal, total)


# -------------------------------------------------------------- heading cue
#: share of a cued box's length, at its front, that carries the cue
FRONT_SHARE = 1.0 / 3.0
#: LiDAR intensity added to hits on the front part (retro-reflective band)
FRONT_INTENSITY = 40.0
#: camera colour of the front part, mixed with the box colour
FRONT_RGB = np.array([20.0, 210.0, 230.0], np.float32)
FRONT_MIX = 0.7


def front_hits(points: np.ndarray, boxes: np.ndarray, target: np.ndarray,
               cued: Optional[np.ndarray] = None) -> np.ndarray:
    """Which hits lie on the front part of their box.

    Args:
        points: (R, 3) global hit points.
        boxes: (B, 7) boxes (cx, cy, cz, l, w, h, yaw); the front is at
            +l/2 along the yaw.
        target: (R,) hit box index (< 0: no box).
        cued: (B,) bool, the boxes that carry the cue (None: all).

    Returns:
        (R,) bool: the hit's coordinate along the box heading is in the
        front ``FRONT_SHARE`` of the box length.
    """
    out = np.zeros(len(points), bool)
    obj = target >= 0
    if cued is not None:
        obj &= np.asarray(cued, bool)[np.maximum(target, 0)]
    if not obj.any():
        return out
    b = boxes[target[obj]]
    along = ((points[obj, 0] - b[:, 0]) * np.cos(b[:, 6])
             + (points[obj, 1] - b[:, 1]) * np.sin(b[:, 6]))
    out[obj] = along > b[:, 3] * (0.5 - FRONT_SHARE)
    return out


# -------------------------------------------------------------------- LiDAR
#: mean LiDAR intensity per ground class (terrain, carpark, walkway,
#: asphalt, ped crossing, stop line, lane divider, road divider): paint is
#: only slightly brighter
GROUND_INTENSITY = np.array([14.0, 9.0, 11.0, 7.0, 15.0, 15.0, 15.0, 15.0])
BUILDING_INTENSITY = 12.0


@dataclass(frozen=True)
class SensorProfile:
    """How strongly each sensor sees what: the knobs of the test bed.

    Attributes:
        ground_intensity: (8,) mean LiDAR intensity per ground class, in
            ``GROUND_INTENSITY``'s order; how well the LiDAR alone sees the
            map layers.
        intensity_noise: standard deviation of the per-point intensity
            noise (speckle, incidence angle, wet patches).
    """
    ground_intensity: Tuple[float, ...] = tuple(GROUND_INTENSITY)
    intensity_noise: float = 5.0


#: ``--sensor-profile`` of tools/make_synthetic_nuscenes.py:
#: ``v2`` the bed of generator version 2, where LiDAR intensity separates
#: road surfaces nearly as well as colour does; ``nuscenes`` road surfaces
#: that differ in LiDAR intensity by less than the noise, as asphalt,
#: concrete and paint largely do for a spinning LiDAR, so that the map is
#: mostly a camera cue as on nuScenes (docs/data.md, "Sensor profiles").
SENSOR_PROFILES: Dict[str, SensorProfile] = {
    'v2': SensorProfile(),
    'nuscenes': SensorProfile(
        ground_intensity=(11.0, 10.0, 10.5, 9.5, 12.0, 12.0, 12.0, 12.0),
        intensity_noise=8.0),
}


def scan_lidar(world: World, lidar2global: np.ndarray, boxes: np.ndarray,
               reflectivity: np.ndarray, rng: np.random.Generator,
               azimuths: int = 1024,
               cued: Optional[np.ndarray] = None,
               profile: SensorProfile = SensorProfile()
               ) -> Tuple[np.ndarray, np.ndarray]:
    """One LiDAR sweep.

    Args:
        lidar2global: (4, 4) pose of the sensor.
        boxes: (B, 7) boxes in the global frame (agents first, then
            buildings); ``reflectivity`` (B,) their mean intensities.
        cued: (B,) bool, boxes whose front part reflects ``FRONT_INTENSITY``
            more (None: none).
        profile: the ground's intensities and the intensity noise.
    Returns:
        points (P, 5) float32 in the LiDAR frame (x, y, z, intensity, ring)
        and the hit box index of every point (-1 for ground).
    """
    az = np.linspace(-math.pi, math.pi, azimuths, endpoint=False)
    el, az = np.meshgrid(LIDAR_ELEVATIONS, az, indexing='ij')
    ring = np.broadcast_to(np.arange(len(LIDAR_ELEVATIONS))[:, None],
                           el.shape).ravel()
    d_local = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az),
                        np.sin(el)], -1).reshape(-1, 3)
    rot, origin = lidar2global[:3, :3], lidar2global[:3, 3]
    dirs = d_local @ rot.T
    near = np.hypot(*(boxes[:, :2] - origin[:2]).T) < LIDAR_MAX_RANGE + 30
    g2l = np.linalg.inv(lidar2global)
    cands = [_azimuth_columns(_corners(b) @ g2l[:3, :3].T + g2l[:3, 3],
                              azimuths, len(LIDAR_ELEVATIONS))
             for b in boxes[near]]
    hits = cast_rays(origin, dirs, boxes[near], LIDAR_MAX_RANGE, cands)
    target = np.where(hits.target >= 0, np.flatnonzero(near)[
        np.maximum(hits.target, 0)], hits.target)
    keep = np.isfinite(hits.t)
    r = hits.t[keep]
    keep_idx = np.flatnonzero(keep)
    drop = rng.random(len(r)) < 0.02 + 0.25 * (r / LIDAR_MAX_RANGE) ** 2
    keep_idx, r = keep_idx[~drop], r[~drop]
    tgt = target[keep_idx]
    r_noisy = r + rng.normal(0.0, 0.02, len(r))
    pts_global = origin + dirs[keep_idx] * r[:, None]
    intensity = np.empty(len(r))
    ground = tgt < 0
    cls = world.ground_class(pts_global[ground, :2])
    intensity[ground] = np.asarray(profile.ground_intensity)[cls]
    intensity[~ground] = reflectivity[tgt[~ground]]
    if cued is not None:
        intensity[front_hits(pts_global, boxes, tgt, cued)] += FRONT_INTENSITY
    intensity += rng.normal(0.0, profile.intensity_noise, len(r))
    intensity *= 1.0 - 0.35 * r / LIDAR_MAX_RANGE
    intensity = np.clip(np.round(intensity), 0, 255)
    xyz = d_local[keep_idx] * r_noisy[:, None]
    pts = np.concatenate([xyz, intensity[:, None], ring[keep_idx, None]], 1)
    return pts.astype(np.float32), tgt


def _azimuth_columns(corners: np.ndarray, azimuths: int,
                     rings: int) -> np.ndarray:
    """Indices of the (ring, column) rays whose azimuth falls within the
    horizontal extent of a box given by its corners in the sensor frame."""
    az = np.arctan2(corners[:, 1], corners[:, 0])
    mid = math.atan2(corners[:, 1].mean(), corners[:, 0].mean())
    rel = (az - mid + math.pi) % (2 * math.pi) - math.pi
    step = 2 * math.pi / azimuths
    if rel.max() - rel.min() > math.pi:  # around the sensor: every column
        cols = np.arange(azimuths)
    else:
        j0 = math.floor((mid + rel.min() + math.pi) / step)
        j1 = math.ceil((mid + rel.max() + math.pi) / step)
        cols = np.arange(j0, j1 + 1) % azimuths
    return (np.arange(rings)[:, None] * azimuths + cols[None]).ravel()


# ------------------------------------------------------------------- camera
GROUND_RGB = np.array([
    (88, 112, 66),  # terrain
    (108, 102, 96),  # carpark_area
    (165, 162, 155),  # walkway
    (62, 62, 66),  # drivable (asphalt)
    (228, 228, 225),  # ped_crossing
    (236, 236, 236),  # stop_line
    (222, 222, 222),  # lane_divider
    (236, 196, 40),  # road_divider
], np.float32)
SUN = np.array([0.35, 0.45, 0.82]) / np.linalg.norm([0.35, 0.45, 0.82])
HAZE_RGB = np.array([190.0, 205.0, 220.0], np.float32)


def render_camera(world: World, cam2global: np.ndarray, intrinsics: np.ndarray,
                  size: Tuple[int, int], boxes: np.ndarray,
                  colors: np.ndarray, cued: Optional[np.ndarray] = None
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renders one RGB image (H, W, 3) uint8 of the world.

    ``cued`` (B,) bool: boxes whose front part is painted ``FRONT_RGB``
    (mixed with their colour; None: none).

    Returns the image and, per box, the pixels where it is visible and the
    pixels it covers ignoring occlusion (for nuScenes' visibility levels).
    """
    width, height = size
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], 1)
    d_cam = pix @ np.linalg.inv(intrinsics).T
    d_cam /= np.linalg.norm(d_cam, axis=1, keepdims=True)
    rot, origin = cam2global[:3, :3], cam2global[:3, 3]
    dirs = d_cam @ rot.T
    # Cull: only the pixels inside a box's projected rectangle can hit it.
    g2c = np.linalg.inv(cam2global)
    rects = [_pixel_rect(_corners(b) @ g2c[:3, :3].T + g2c[:3, 3], intrinsics,
                         width, height) for b in boxes]
    hits = cast_rays(origin, dirs, boxes, candidates=rects)
    rgb = np.empty((len(dirs), 3), np.float32)
    # Sky.
    sky = hits.target == -2
    elev = np.clip(dirs[sky, 2], 0, 1)[:, None]
    rgb[sky] = (1 - elev) * HAZE_RGB + elev * np.array([110.0, 160.0, 225.0])
    # Ground.
    gnd = hits.target == -1
    pts = origin + dirs[gnd] * hits.t[gnd, None]
    cls = world.ground_class(pts[:, :2])
    rgb[gnd] = GROUND_RGB[cls] + world.ground_texture(pts[:, :2])[:, None]
    # Boxes.
    obj = hits.target >= 0
    shade = 0.45 + 0.55 * np.clip(hits.normal[obj] @ SUN, 0, 1)
    base = colors[hits.target[obj]]
    if cued is not None:
        front = front_hits(origin + dirs[obj] * hits.t[obj, None], boxes,
                           hits.target[obj], cued)
        base[front] = (1 - FRONT_MIX) * base[front] + FRONT_MIX * FRONT_RGB
    rgb[obj] = base * shade[:, None]
    # Haze with distance.
    far = ~sky
    fog = 1.0 - np.exp(-hits.t[far] / 300.0)
    rgb[far] = rgb[far] * (1 - fog[:, None]) + HAZE_RGB * fog[:, None]
    img = np.clip(rgb, 0, 255).astype(np.uint8).reshape(height, width, 3)
    visible = np.bincount(hits.target[obj], minlength=len(boxes))
    return img, visible, hits.total


_EDGES = [(a, a ^ bit) for a in range(8) for bit in (1, 2, 4) if a < a ^ bit]


def _pixel_rect(corners: np.ndarray, intrinsics: np.ndarray, width: int,
                height: int, near: float = 0.05) -> np.ndarray:
    """Flat pixel indices of the image rectangle that bounds a box's
    projection (corners in the camera frame), clipped at the near plane."""
    front = corners[:, 2] >= near
    if not front.any():
        return np.zeros(0, np.int64)
    pts = [corners[front]]
    for a, b in _EDGES:
        if front[a] != front[b]:
            w = (near - corners[a, 2]) / (corners[b, 2] - corners[a, 2])
            pts.append(corners[a] + w * (corners[b] - corners[a]))
    pts = np.vstack(pts)
    uv = pts[:, :2] / pts[:, 2:] * np.diag(intrinsics)[:2] + intrinsics[:2, 2]
    u0, v0 = np.maximum(np.floor(uv.min(0)).astype(int), 0)
    u1 = min(int(np.ceil(uv[:, 0].max())), width)
    v1 = min(int(np.ceil(uv[:, 1].max())), height)
    if u0 >= u1 or v0 >= v1:
        return np.zeros(0, np.int64)
    vv, uu = np.meshgrid(np.arange(v0, v1), np.arange(u0, u1), indexing='ij')
    return (vv * width + uu).ravel()


def _corners(box: np.ndarray) -> np.ndarray:
    """(8, 3) corners of a (cx, cy, cz, l, w, h, yaw) box."""
    signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1)
                      for k in (-1, 1)], float)
    local = signs * box[3:6] / 2
    return local @ yaw_matrix(box[6]).T + box[:3]


def pose_matrix(rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    mat = np.eye(4)
    mat[:3, :3], mat[:3, 3] = rot, trans
    return mat


def visibility_level(visible: int, total: int) -> str:
    """nuScenes visibility token ('1'..'4') from the visible pixel share."""
    frac = visible / total if total else 0.0
    return '1' if frac < 0.4 else '2' if frac < 0.6 else '3' if frac < 0.8 \
        else '4'
