"""Depth-aware LSS and the LSS-FPN neck (issue 13, item 6), with the depth
image checked on the real nuScenes keyframe of ../shared/data/nuscenes-demo:
every LiDAR point lands, in the depth image, at the pixel it projects to, in
the depth bin the LSS lifting gives that pixel, under image and BEV
augmentation."""
import math

import numpy as np
import pytest
import torch
from mmdet3d.structures import Det3DDataSample

from model_test_utils import DEMO_NET_HW, DEMO_SCALE, load_demo_sample
from fuller.models import DepthLSSTransform, GeneralizedLSSFPN

NET_HW, SCALE = DEMO_NET_HW, DEMO_SCALE
DBOUND = [1.0, 60.0, 0.5]


def _transform(**kw):
    args = dict(in_channels=8, out_channels=8, image_size=list(NET_HW),
                feature_size=[32, 88], xbound=[-54.0, 54.0, 0.3],
                ybound=[-54.0, 54.0, 0.3], zbound=[-10.0, 10.0, 20.0],
                dbound=DBOUND, downsample=2)
    args.update(kw)
    return DepthLSSTransform(**args).eval()


@pytest.fixture(scope='module')
def demo():
    sample = load_demo_sample()
    # BEV augmentation: 30 deg rotation, x1.05, a shift
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    lidar_aug = np.eye(4)
    lidar_aug[:3, :3] = 1.05 * np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    lidar_aug[:3, 3] = [0.4, -0.3, 0.1]
    aug = torch.tensor(lidar_aug)
    aug_points = sample['points'] @ aug[:3, :3].T + aug[:3, 3]
    return dict(points=aug_points.float(),
                lidar2img=sample['lidar2img'].float(),
                img_aug=sample['img_aug'].float(),
                lidar_aug=aug.float())


def _lift(vt, uvd, cam, demo):
    """LiDAR-frame xyz (M, 3) of pixels (u, v) at depth d of one camera,
    through the view transform's own geometry."""
    saved = vt.frustum
    vt.frustum = uvd.view(-1, 1, 1, 3)
    try:
        geom = vt.get_geometry(demo['lidar2img'][None], demo['img_aug'][None],
                               demo['lidar_aug'][None])
    finally:
        vt.frustum = saved
    return geom[0, cam, :, 0, 0]


def _project(demo):
    """Our own projection of every scan point (float64): per camera the
    pixel (col, row) of the augmented network image and the depth."""
    aug = demo['lidar_aug'].double()
    pts = (demo['points'].double() - aug[:3, 3]) @ torch.inverse(
        aug[:3, :3]).T  # back to the sensor frame
    hom = torch.cat([pts, torch.ones_like(pts[:, :1])], 1)
    cam = torch.einsum('nij,pj->npi', demo['lidar2img'].double(), hom)
    depth = cam[..., 2]
    uvd1 = torch.stack([cam[..., 0] / depth, cam[..., 1] / depth, depth,
                        torch.ones_like(depth)], -1)
    pix = torch.einsum('nij,npj->npi', demo['img_aug'].double(), uvd1)
    return pix[..., 0], pix[..., 1], depth


def test_lidar_points_land_in_the_depth_bins_of_their_pixels(demo):
    vt = _transform()
    depth = vt.depth_image([demo['points']], demo['lidar2img'][None],
                           demo['img_aug'][None], demo['lidar_aug'][None])
    assert depth.shape == (1, 6, 1, *NET_HW) and depth.dtype == torch.float32
    u, v, d = _project(demo)
    h, w = NET_HW
    seen = (d > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    assert int(seen.sum()) > 10000  # most of the ~35k points
    step = DBOUND[2]
    for cam in range(6):
        col, row = u[cam, seen[cam]].floor().long(), v[cam, seen[cam]].floor(
        ).long()
        dc = d[cam, seen[cam]]
        img = depth[0, cam, 0].double()
        # every point is in the depth image at its pixel, which holds the
        # nearest of the points there
        at = img[row, col]
        assert (at > 0).all() and (at <= dc + 1e-3).all()
        key = row * w + col
        nearest = torch.full((h * w, ), float('inf'), dtype=torch.float64)
        nearest.scatter_reduce_(0, key, dc, reduce='amin')
        assert torch.allclose(at, nearest[key], atol=2e-3)
        assert int((img > 0).sum()) == len(torch.unique(key))
        # the LSS lifting of that pixel, in the depth bin of the point's
        # depth, comes back to the point: half a bin along the ray (rays up
        # to ~40 deg off axis: x1.35) plus the pixel centre's offset (< 1
        # net pixel = 1/0.44 original pixels, focal ~1266 px), all scaled by
        # the BEV augmentation (x1.05)
        ok = (dc >= DBOUND[0]) & (dc < DBOUND[1])
        k = ((dc[ok] - DBOUND[0]) / step).floor()
        centre = torch.stack([col[ok] + 0.5, row[ok] + 0.5,
                              DBOUND[0] + (k + 0.5) * step], -1).float()
        lifted = _lift(vt, centre, cam, demo).double()
        dist = (lifted - demo['points'][seen[cam]][ok].double()).norm(dim=1)
        tol = 1.05 * (1.35 * step / 2 + dc[ok] * 2.0 /
                      (SCALE * 1266.0)) + 0.02
        assert (dist <= tol).all(), float((dist - tol).max())


def test_nearest_point_wins_and_points_behind_are_dropped(demo):
    vt = _transform()
    eye = torch.eye(4)
    lidar2img = demo['lidar2img'][:1]
    # a point 10 m in front of the front camera, one 20 m behind it on the
    # same ray, and one behind the camera
    cam2lidar = torch.inverse(lidar2img[0])
    ray = [cam2lidar @ torch.tensor([300.0 * z, 500.0 * z, z, 1.0])
           for z in (10.0, 20.0, -5.0)]
    pts = torch.stack(ray)[:, :3]
    img_aug = demo['img_aug'][:1]
    depth = vt.depth_image([pts], lidar2img[None], img_aug[None], eye[None])
    nz = depth[depth > 0]
    assert nz.numel() == 1 and abs(float(nz) - 10.0) < 1e-3


def test_forward_uses_the_lidar_depth(demo):
    torch.manual_seed(0)
    vt = _transform(dbound=[1.0, 60.0, 2.0])  # fewer bins: a faster test
    feats = torch.randn(1, 6, 8, 32, 88)
    meta = dict(lidar2img=demo['lidar2img'].numpy(),
                img_aug_matrix=demo['img_aug'].numpy(),
                lidar_aug_matrix=demo['lidar_aug'].numpy())
    samples = [Det3DDataSample(metainfo=meta)]
    with torch.no_grad():
        with_pts = vt(feats, samples, points=[demo['points']])
        without = vt(feats, samples, points=[demo['points'][:0]])
    assert with_pts.shape == (1, 8, 180, 180)
    assert not torch.allclose(with_pts, without)
    with pytest.raises(ValueError, match='needs the LiDAR points'):
        vt(feats, samples)


def test_lss_fpn_concatenates_top_down():
    neck = GeneralizedLSSFPN([16, 32, 64], 24, num_outs=3).eval()
    feats = (torch.randn(2, 16, 32, 88), torch.randn(2, 32, 16, 44),
             torch.randn(2, 64, 8, 22))
    out = neck(feats)
    assert [tuple(o.shape) for o in out] == [(2, 24, 32, 88),
                                             (2, 24, 16, 44)]
    # the 1x1 lateral convs see [level, upsampled coarser level]
    assert neck.lateral_convs[1].conv.in_channels == 32 + 64
    assert neck.lateral_convs[0].conv.in_channels == 16 + 24
    # the finest output depends on the coarsest input (top-down path)
    changed = (feats[0], feats[1], feats[2] + 1)
    assert not torch.allclose(neck(changed)[0], out[0])
