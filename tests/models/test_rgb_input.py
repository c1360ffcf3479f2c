"""The image backbone sees RGB: mmcv loads BGR, the data preprocessor of the
model configs flips the channels before the RGB (ImageNet) normalisation
that the pretrained Swin-T expects."""
import glob
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from model_test_utils import build_model, load_cfg

MODEL_CONFIGS = ['configs/_base_/models/bevfusion_nus.py',
                 'configs/_base_/models/bevfusion_cpu.py']


def _backbone_input(paths, model_config):
    """(N, H, W, 3) un-normalised pixels of the tensor the img_backbone gets
    for these image files, through the data pipeline's loading/packing
    transforms and the model's data preprocessor."""
    from fuller.datasets.transforms import (LoadMultiViewImages,
                                            PackMultiTaskInputs)
    cams = [f'CAM_{i}' for i in range(len(paths))]
    results = dict(images={
        c: dict(img_path=p, cam2img=np.eye(3), lidar2cam=np.eye(4))
        for c, p in zip(cams, paths)})
    results = LoadMultiViewImages(cameras=cams)(results)
    packed = PackMultiTaskInputs(keys=['img'])(results)
    pre = build_model(load_cfg(model_config).model.data_preprocessor)
    out = pre(dict(inputs=dict(imgs=[packed['inputs']['imgs']]),
                   data_samples=[packed['data_samples']]), False)
    imgs = out['inputs']['imgs'][0]  # (N, 3, H, W) normalised
    pixels = imgs * pre.std.view(1, 3, 1, 1) + pre.mean.view(1, 3, 1, 1)
    return pixels.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize('model_config', MODEL_CONFIGS)
def test_backbone_sees_rgb_of_a_known_image(tmp_path, model_config):
    h, w = 24, 40
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = 250  # red everywhere, no blue: a swap cannot hide
    rgb[..., 1] = np.arange(w)[None, :] * 6
    rgb[..., 2] = np.arange(h)[:, None] * 2
    path = str(tmp_path / 'red.png')
    Image.fromarray(rgb, 'RGB').save(path)  # PIL writes what it is given
    got = _backbone_input([path], model_config)[0]
    np.testing.assert_allclose(got, rgb.astype(np.float32), atol=1e-3)


def test_backbone_sees_rgb_of_a_real_nuscenes_image(nuscenes_demo):
    paths = sorted(glob.glob(osp.join(nuscenes_demo, '*CAM_FRONT__*.jpg')))
    assert paths, f'no CAM_FRONT image in {nuscenes_demo}'
    got = _backbone_input(paths[:1], MODEL_CONFIGS[0])[0]
    # PIL decodes RGB (its JPEG decoder may differ from OpenCV's by a level)
    ref = np.asarray(Image.open(paths[0]).convert('RGB'), np.float32)
    err = np.abs(got - ref).mean()
    swapped = np.abs(got[..., ::-1] - ref).mean()
    assert err < 1.5 and swapped > 4 * err, (err, swapped)
