"""Builds the info files of the multi-task nuScenes pipeline.

    python tools/create_data.py nuscenes --root-path data/nuscenes \
        --version v1.0-trainval [--out-dir DIR] [--extra-tag nuscenes] \
        [--max-sweeps 10] [--no-gt-database]

Runs MMDetection3D's own nuScenes converter (shipped in the mmdet3d wheel under
``mmdet3d/.mim/tools/dataset_converters``: v1 infos, then the v2 update), then
adds what the multi-task pipeline needs to every sample: ``map_location``
(scene -> log -> location, for the map labels) and ``scene_token``. Output:
``<out-dir>/<extra-tag>_infos_{train,val}.pkl`` (``_test`` for v1.0-test).
Then, as MMDetection3D's own nuScenes preparation, the GT database of GT-paste
(``ObjectSample``, the LiDAR stage of the BEVFusion recipe) from the train
split, with mmdet3d's writer: ``<root-path>/<extra-tag>_dbinfos_train.pkl`` and
``<root-path>/<extra-tag>_gt_database/*.bin`` (``--no-gt-database`` skips it).
Works unchanged on real nuScenes (v1.0-trainval/-mini/-test) and on the
synthetic set of tools/make_synthetic_nuscenes.py.
"""
import argparse
import os.path as osp
import sys

from fuller.datasets.info_files import (create_gt_database,
                                        create_nuscenes_infos)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dataset', choices=['nuscenes'],
                        help='dataset kind (only nuscenes)')
    parser.add_argument('--root-path', required=True,
                        help='nuScenes root (holds v1.0-*/, samples/, maps/)')
    parser.add_argument('--version', default='v1.0-trainval',
                        choices=['v1.0-trainval', 'v1.0-mini', 'v1.0-test'])
    parser.add_argument('--out-dir', default=None,
                        help='where the .pkl files go (default: root path)')
    parser.add_argument('--extra-tag', default='nuscenes',
                        help='file name prefix of the info files')
    parser.add_argument('--max-sweeps', type=int, default=10,
                        help='LiDAR sweeps recorded per key frame')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace info files that already exist '
                        '(default: refuse)')
    parser.add_argument('--no-gt-database', action='store_true',
                        help='skip the GT database (GT-paste) of the train '
                        'split')
    return parser.parse_args(argv)


def existing_outputs(args) -> list:
    """Info files and GT database this run would write that are already
    there (mmdet3d's converter writes its v1 files into the root path first)."""
    splits = ['test'] if args.version == 'v1.0-test' else ['train', 'val']
    folders = {args.root_path, args.out_dir or args.root_path}
    paths = [osp.join(d, f'{args.extra_tag}_infos_{s}.pkl')
             for d in folders for s in splits]
    if 'train' in splits and not args.no_gt_database:
        paths += [osp.join(args.root_path, f'{args.extra_tag}_dbinfos_train.pkl'),
                  osp.join(args.root_path, f'{args.extra_tag}_gt_database')]
    return sorted(p for p in paths if osp.exists(p))


def main(argv=None):
    args = parse_args(argv)
    found = existing_outputs(args)
    if found and not args.overwrite:
        sys.exit(f'tools/create_data.py: error: {", ".join(found)} already '
                 'exist: pass --overwrite to rebuild them, or --out-dir / '
                 '--extra-tag to write new ones elsewhere')
    paths = create_nuscenes_infos(args.root_path, args.version,
                                  out_dir=args.out_dir,
                                  info_prefix=args.extra_tag,
                                  max_sweeps=args.max_sweeps)
    for path in paths:
        print(f'[create_data] wrote {path}')
    train = [p for p in paths if p.endswith('_infos_train.pkl')]
    if train and not args.no_gt_database:
        db = create_gt_database(args.root_path, train[0], args.extra_tag)
        print(f'[create_data] wrote {db}')


if __name__ == '__main__':
    main()
