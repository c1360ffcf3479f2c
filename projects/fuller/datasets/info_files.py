"""Info files (MMDetection3D v2 format) for the multi-task nuScenes pipeline.

MMDetection3D's own converter does the heavy lifting; it lives in the mmdet3d
wheel as ``mmdet3d/.mim/tools/dataset_converters`` (not an importable
package), so its two modules are loaded from there by file path.
"""
import importlib.util
import os
import os.path as osp
from typing import Dict, List, Optional

import mmengine

NUSCENES_VERSIONS = ('v1.0-trainval', 'v1.0-mini', 'v1.0-test')


def _converter_module(name: str):
    """Loads ``<mmdet3d>/.mim/tools/dataset_converters/<name>.py``."""
    import mmdet3d
    path = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'tools',
                    'dataset_converters', f'{name}.py')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'mmdet3d converter {path} not found: this needs the mmdet3d '
            f'1.4.0 wheel, which ships its tools under mmdet3d/.mim/tools '
            f'(re-run tools/install.sh)')
    spec = importlib.util.spec_from_file_location(f'_mmdet3d_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_locations(nusc) -> Dict[str, Dict[str, str]]:
    """sample token -> dict(map_location, scene_token), via scene -> log."""
    out = {}
    for sample in nusc.sample:
        scene = nusc.get('scene', sample['scene_token'])
        log = nusc.get('log', scene['log_token'])
        out[sample['token']] = dict(map_location=log['location'],
                                    scene_token=scene['token'])
    return out


def create_nuscenes_infos(root_path: str, version: str = 'v1.0-trainval',
                          out_dir: Optional[str] = None,
                          info_prefix: str = 'nuscenes',
                          max_sweeps: int = 10) -> List[str]:
    """Writes ``<info_prefix>_infos_{train,val}.pkl`` (or ``_test``) and
    returns their paths.

    Every ``data_list`` entry is mmdet3d's v2 info plus ``map_location`` and
    ``scene_token``; ``metainfo`` gains ``map_locations`` (sorted set).
    """
    from nuscenes.nuscenes import NuScenes
    if version not in NUSCENES_VERSIONS:
        raise ValueError(f'version must be one of {NUSCENES_VERSIONS}, got '
                         f'{version!r}')
    table_dir = osp.join(root_path, version)
    if not osp.isdir(table_dir):
        raise FileNotFoundError(
            f'no nuScenes tables at {table_dir}: pass the dataset root that '
            f'holds {version}/ (for a synthetic set run '
            f'tools/make_synthetic_nuscenes.py first)')
    out_dir = out_dir or root_path
    os.makedirs(out_dir, exist_ok=True)
    converter = _converter_module('nuscenes_converter')
    updater = _converter_module('update_infos_to_v2')
    # v1 infos go next to the data (mmdet3d writes them into root_path).
    converter.create_nuscenes_infos(root_path, info_prefix, version=version,
                                    max_sweeps=max_sweeps)
    nusc = NuScenes(version=version, dataroot=root_path, verbose=False)

    # The v2 update opens the database at './data/nuscenes' whatever the
    # root; hand it the one already loaded.
    def _loaded(version=None, dataroot=None, verbose=True):
        return nusc

    updater.NuScenes = _loaded
    splits = ['test'] if version == 'v1.0-test' else ['train', 'val']
    locations = sample_locations(nusc)
    paths = []
    for split in splits:
        v1_path = osp.join(root_path, f'{info_prefix}_infos_{split}.pkl')
        updater.update_nuscenes_infos(pkl_path=v1_path, out_dir=out_dir)
        path = osp.join(out_dir, f'{info_prefix}_infos_{split}.pkl')
        infos = mmengine.load(path)
        for info in infos['data_list']:
            info.update(locations[info['token']])
        infos['metainfo']['map_locations'] = sorted(
            {info['map_location'] for info in infos['data_list']})
        mmengine.dump(infos, path)
        paths.append(path)
    return paths


def create_gt_database(root_path: str, info_path: str,
                       info_prefix: str = 'nuscenes') -> str:
    """Writes the GT database of GT-paste (``ObjectSample``) with
    MMDetection3D 1.4's own writer (``create_groundtruth_database`` of the
    wheel's dataset converters), exactly as its nuScenes data preparation:
    every annotated object of the train split (points of the key frame and
    its sweeps inside the box, relative to the box's bottom centre) goes to
    ``<root>/<prefix>_gt_database/<sample>_<class>_<i>.bin``, and
    ``<root>/<prefix>_dbinfos_train.pkl`` lists them per class (name, path,
    box, number of points, difficulty, group id). Returns the pkl path.
    """
    from mmdet3d.utils import register_all_modules

    # its dataset/pipeline configs are spelled in mmdet3d's scope
    register_all_modules(init_default_scope=True)
    writer = _converter_module('create_gt_database')
    writer.create_groundtruth_database('NuScenesDataset', root_path,
                                       info_prefix,
                                       osp.abspath(info_path))
    return osp.join(root_path, f'{info_prefix}_dbinfos_train.pkl')
