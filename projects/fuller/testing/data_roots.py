"""Tiny stand-ins of a nuScenes data root for the pre-flight tests: the
folders and info files the checks read, none of the data they never open."""
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import mmengine


def write_info_root(root: str, tables: Sequence[str] = ('v1.0-mini',),
                    info_version: Optional[str] = 'v1.0-mini',
                    lidar_files: Optional[Dict[str, int]] = None,
                    splits: Sequence[str] = ('train', 'val')) -> str:
    """Make ``root`` with empty table folders ``tables`` and info files
    ``nuscenes_infos_<split>.pkl`` (metainfo version ``info_version``; no
    info files when it is None), one sample per entry of ``lidar_files``
    (file name under samples/LIDAR_TOP -> its size in bytes)."""
    os.makedirs(root, exist_ok=True)
    for table in tables:
        os.makedirs(osp.join(root, table), exist_ok=True)
    data_list = []
    for name, size in (lidar_files or {}).items():
        path = osp.join(root, 'samples', 'LIDAR_TOP', name)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(b'\0' * size)
        data_list.append(dict(lidar_points=dict(lidar_path=name),
                              lidar_sweeps=[]))
    if info_version is not None:
        for split in splits:
            mmengine.dump(dict(metainfo=dict(version=info_version),
                               data_list=data_list),
                          osp.join(root, f'nuscenes_infos_{split}.pkl'))
    return root
