"""LSS geometry on the real nuScenes keyframe in ../shared/data/nuscenes-demo.

Checks the calibration chain the view transform relies on: LiDAR points
projected with the sample's lidar2img land inside the images, every camera's
frustum lands in the BEV sector that camera faces, and LiDAR points seen by a
camera fall in BEV cells that camera's frustum reaches.
"""
import math

import numpy as np
import pytest
import torch
from mmdet3d.structures import Det3DDataSample

from model_test_utils import (DEMO_CAMS, DEMO_NET_HW, DEMO_ORIG_HW,
                              load_demo_sample)
from fuller.models import LSSTransform

CAMS, ORIG_HW, NET_HW = DEMO_CAMS, DEMO_ORIG_HW, DEMO_NET_HW


@pytest.fixture(scope='module')
def sample():
    return load_demo_sample()


def _project(points, lidar2img, img_aug=None):
    """(P, 3) -> per camera (N, P, 2) pixels and (N, P) depths."""
    hom = torch.cat([points, torch.ones_like(points[:, :1])], dim=1)
    cam = torch.einsum('nij,pj->npi', lidar2img, hom)
    depth = cam[..., 2]
    pix = torch.cat([cam[..., :2] / depth[..., None].clamp(min=1e-6),
                     depth[..., None], torch.ones_like(depth[..., None])], -1)
    if img_aug is not None:
        pix = torch.einsum('nij,npj->npi', img_aug, pix)
    return pix[..., :2], depth


def _inside(pix, depth, hw):
    return (depth > 1.0) & (pix[..., 0] >= 0) & (pix[..., 0] < hw[1]) & \
        (pix[..., 1] >= 0) & (pix[..., 1] < hw[0])


def _angle_diff(a, b):
    return torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi


def _half_fov(sample, n):
    """Horizontal half field of view of camera n (radians)."""
    intr = sample['lidar2img'][n] @ torch.inverse(sample['lidar2cam'][n])
    return math.atan(ORIG_HW[1] / 2 / float(intr[0, 0]))


def _lss(dbound=(1.0, 60.0, 1.0)):
    return LSSTransform(
        in_channels=4, out_channels=2, image_size=NET_HW,
        feature_size=(NET_HW[0] // 8, NET_HW[1] // 8),
        xbound=[-54.0, 54.0, 0.6], ybound=[-54.0, 54.0, 0.6],
        zbound=[-10.0, 10.0, 20.0], dbound=list(dbound))


def test_lidar_points_land_inside_the_images(sample):
    pix, depth = _project(sample['points'], sample['lidar2img'])
    inside = _inside(pix, depth, ORIG_HW)
    per_cam = inside.sum(dim=1)
    assert (per_cam > 500).all(), dict(zip(CAMS, per_cam.tolist()))
    # the six cameras see all around: points 5-50 m away near the horizon
    # are inside at least one image
    p = sample['points']
    rng = p[:, :2].norm(dim=1)
    elev = torch.atan2(p[:, 2] + 0.33, rng)  # cameras ~0.33 m below LiDAR
    ring = (rng > 5) & (rng < 50) & (elev.abs() < math.radians(10))
    seen = inside.any(dim=0)
    assert seen[ring].double().mean() > 0.97
    # and a point far behind a camera never lands in its image
    assert not (inside & (depth <= 0)).any()


def test_cameras_face_their_nominal_directions(sample):
    # optical axis (camera +z) in the ego frame via lidar2ego
    cam2lidar = torch.inverse(sample['lidar2cam'])
    axis = torch.einsum('ij,nj->ni', sample['lidar2ego'][:3, :3],
                        cam2lidar[:, :3, 2])
    yaw = torch.rad2deg(torch.atan2(axis[:, 1], axis[:, 0]))
    nominal = torch.tensor([0.0, -55.0, 55.0, 180.0, 110.0, -110.0],
                           dtype=yaw.dtype)
    err = torch.rad2deg(_angle_diff(torch.deg2rad(yaw),
                                    torch.deg2rad(nominal))).abs()
    assert (err < 10).all(), dict(zip(CAMS, yaw.tolist()))


def test_frustum_lands_in_the_sector_each_camera_faces(sample):
    lss = _lss()
    geom = lss.get_geometry(sample['lidar2img'][None].float(),
                            sample['img_aug'][None].float(),
                            torch.eye(4)[None])[0]  # (N, D, fH, fW, 3)
    cam2lidar = torch.inverse(sample['lidar2cam']).float()
    for n, cam in enumerate(CAMS):
        axis = cam2lidar[n, :2, 2]
        cam_yaw = torch.atan2(axis[1], axis[0])
        half_fov = _half_fov(sample, n)
        rel = geom[n, ..., :2] - cam2lidar[n, :2, 3]
        az = torch.atan2(rel[..., 1], rel[..., 0])
        dev = _angle_diff(az, cam_yaw).abs()
        assert dev.max() < half_fov + math.radians(3), cam
        # the far end of the frustum is far: the depth range maps through
        dist = rel.norm(dim=-1)
        assert dist.max() > 50 and dist.min() < 2, cam


def test_visible_lidar_points_fall_in_their_cameras_frustum_cells(sample):
    lss = _lss(dbound=(1.0, 60.0, 0.5))
    geom = lss.get_geometry(sample['lidar2img'][None].float(),
                            sample['img_aug'][None].float(),
                            torch.eye(4)[None])
    pix, depth = _project(sample['points'], sample['lidar2img'],
                          sample['img_aug'])
    visible = _inside(pix, depth, NET_HW) & (depth < 59)
    nx = lss.grid_shape[1]
    for n, cam in enumerate(CAMS):
        coords, keep = lss.voxel_indices(geom[:, n:n + 1])
        cells = set((coords[keep, 1] * nx + coords[keep, 2]).tolist())
        pts = sample['points'][visible[n]].float()
        idx = torch.floor((pts[:, :2] + 54.0) / 0.6).long()
        ok = (idx >= 0).all(1) & (idx < nx).all(1)
        hit = [int(i) * nx + int(j) in cells for i, j in idx[ok]]
        assert len(hit) > 300, cam
        assert np.mean(hit) > 0.95, (cam, np.mean(hit))


def test_forward_puts_a_cameras_features_only_in_its_sector(sample):
    lss = _lss().eval()
    with torch.no_grad():
        lss.depthnet.weight.zero_()
        lss.depthnet.bias.zero_()  # uniform depth distribution
        lss.depthnet.weight[lss.num_depth, 0] = 1.0  # ctx 0 <- input 0
    fh, fw = lss.feature_size
    cam2lidar = torch.inverse(sample['lidar2cam']).float()
    centres = torch.arange(-54.0 + 0.3, 54.0, 0.6)
    gx, gy = torch.meshgrid(centres, centres, indexing='ij')
    ds = Det3DDataSample()
    ds.set_metainfo(dict(lidar2img=sample['lidar2img'].float().numpy(),
                         img_aug_matrix=sample['img_aug'].float().numpy(),
                         lidar_aug_matrix=np.eye(4, dtype=np.float32)))
    for n in (0, 3, 4):  # front, back, back-left
        feats = torch.zeros(1, len(CAMS), 4, fh, fw)
        feats[0, n, 0] = 1.0
        with torch.no_grad():
            bev = lss(feats, [ds])[0, 0]  # (X, Y): ctx channel 0, z slice
        occupied = bev > 0
        assert occupied.sum() > 100
        axis = cam2lidar[n, :2, 2]
        rel_x, rel_y = gx - cam2lidar[n, 0, 3], gy - cam2lidar[n, 1, 3]
        az = torch.atan2(rel_y, rel_x)
        dev = _angle_diff(az, torch.atan2(axis[1], axis[0])).abs()
        # cells beyond 3 m (closer ones span a wide angle themselves)
        far = occupied & (torch.hypot(rel_x, rel_y) > 3.0)
        assert dev[far].max() < _half_fov(sample, n) + math.radians(8), \
            CAMS[n]
        # and the opposite half-plane stays empty
        assert not (occupied & (dev > math.pi / 2 + 0.2)).any(), CAMS[n]
        # the mass (sum over cells) equals the number of frustum points in
        # the grid: nothing is lost or duplicated by the pooling
        geom = lss.get_geometry(
            sample['lidar2img'][None].float(),
            sample['img_aug'][None].float(), torch.eye(4)[None])
        _, keep = lss.voxel_indices(geom[:, n:n + 1])
        expected = keep.sum() / lss.num_depth
        torch.testing.assert_close(bev.sum(), expected.float(), rtol=1e-4,
                                   atol=1e-3)
