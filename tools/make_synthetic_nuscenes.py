"""Writes a small synthetic dataset in the exact nuScenes on-disk format.

    python tools/make_synthetic_nuscenes.py --out data/nuscenes-synth \
        [--scenes 12 --val-scenes 4 --samples-per-scene 10 --seed 0 \
         --image-size 480 270 --lidar-sweeps 1 --camera-sweeps 1]

The tables load with ``nuscenes.NuScenes(version, dataroot)``, the maps with
``NuScenesMap(dataroot, location)``; then build the info files with
``python tools/create_data.py nuscenes --root-path <out> --version <version>``
(the version is printed: v1.0-mini for at most 8 train / 2 val scenes,
v1.0-trainval otherwise, as the default set). See docs/data.md.
"""
import argparse
import json
import os
import os.path as osp
import sys

from fuller.datasets.synthetic import (DEFAULT_SET, SENSOR_PROFILES,
                                       SyntheticNuScenes)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='data/nuscenes-synth',
                   help='dataset root to write')
    p.add_argument('--scenes', type=int, default=DEFAULT_SET['num_scenes'],
                   help='number of scenes')
    p.add_argument('--val-scenes', type=int, default=None,
                   help='how many of them are val scenes (default: '
                   f"{DEFAULT_SET['num_val_scenes']} of the default "
                   f"{DEFAULT_SET['num_scenes']}, else 20%% as nuScenes-mini; "
                   '0: 20%%)')
    p.add_argument('--samples-per-scene', type=int,
                   default=DEFAULT_SET['samples_per_scene'],
                   help='2 Hz key frames per scene')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--image-size', type=int, nargs=2, default=(480, 270),
                   metavar=('W', 'H'), help='camera image size')
    p.add_argument('--lidar-sweeps', type=int, default=1,
                   help='20 Hz LiDAR sweeps before every key frame')
    p.add_argument('--camera-sweeps', type=int, default=1,
                   help='12 Hz camera sweeps before every key frame')
    p.add_argument('--azimuths', type=int, default=1024,
                   help='LiDAR columns per revolution (32 rings)')
    p.add_argument('--sensor-profile', default='v2',
                   choices=sorted(SENSOR_PROFILES),
                   help='what each sensor sees how well (docs/data.md, '
                   '"Sensor profiles"); v2: the earlier bed')
    p.add_argument('--quiet', action='store_true')
    p.add_argument('--overwrite', action='store_true',
                   help='write into an --out folder that is not empty '
                   '(default: refuse; files of the same name are replaced)')
    return p.parse_args(argv)


def default_val_scenes(scenes, val_scenes):
    """The val scenes asked for: the default set's split for the default
    number of scenes, None (20%, as nuScenes-mini) for any other number or
    for 0."""
    if val_scenes is None and scenes == DEFAULT_SET['num_scenes']:
        return DEFAULT_SET['num_val_scenes']
    return val_scenes or None


def main(argv=None):
    a = parse_args(argv)
    if osp.isdir(a.out) and os.listdir(a.out) and not a.overwrite:
        sys.exit(f'tools/make_synthetic_nuscenes.py: error: {a.out} is not '
                 'empty: choose a new --out folder, or pass --overwrite to '
                 'replace the files the generator writes there')
    try:  # argument checks happen here, before anything is written
        gen = SyntheticNuScenes(a.out, num_scenes=a.scenes,
                                num_val_scenes=default_val_scenes(
                                    a.scenes, a.val_scenes),
                                samples_per_scene=a.samples_per_scene,
                                seed=a.seed, image_size=tuple(a.image_size),
                                lidar_sweeps=a.lidar_sweeps,
                                camera_sweeps=a.camera_sweeps,
                                azimuths=a.azimuths,
                                sensor_profile=a.sensor_profile,
                                verbose=not a.quiet)
    except ValueError as err:
        sys.exit(f'tools/make_synthetic_nuscenes.py: error: {err}')
    summary = gen.run()
    summary['megabytes'] = round(summary.pop('bytes') / 2**20, 1)
    print(json.dumps(summary))
    print(f'next: python tools/create_data.py nuscenes --root-path {a.out} '
          f'--version {summary["version"]}')


if __name__ == '__main__':
    main()
