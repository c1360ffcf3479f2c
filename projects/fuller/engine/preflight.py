"""Pre-flight checks that tools/train.py and tools/test.py run before the
Runner starts any long work (building datasets, training, inference).

Each check raises :class:`~fuller.engine.runner_setup.UserInputError` with a
one-line message naming the problem and its fix. They read only small things:
the config tree, directory listings, file sizes, the metainfo of the info
files and the tensor shapes of a checkpoint (memory-mapped).
"""
import glob
import os
import os.path as osp
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from ..calibration import normalize_calibrator_cfg
from .runner_setup import UserInputError, _dataset_cfgs, matmul_precision

# ------------------------------------------------------------------ config
#: Calibrators that leave a single branch untouched (harmless with one
#: task head / one modality); every other one needs two or more.
_PASS_THROUGH = {'inter': 'Sum', 'intra': 'Identity'}
#: Metric type -> the model head whose predictions it scores.
_METRIC_HEADS = {'NuScenesMetric': 'bbox_head',
                 'EmptySafeNuScenesMetric': 'bbox_head',
                 'BEVSegMetric': 'seg_head'}
#: Metric types that run nuscenes-devkit on the tables under their data_root.
_DEVKIT_METRICS = ('NuScenesMetric', 'EmptySafeNuScenesMetric')
_HEAD_TASKS = {'bbox_head': '3D detection', 'seg_head': 'BEV map segmentation'}


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def normalize_calibration(cfg: Config) -> None:
    """Turn bare calibrator names (``inter='IMTLG'``) into
    ``dict(type=...)`` in ``cfg.optim_wrapper.calibration``.

    Raises:
        UserInputError: an unknown calibrator name (registered ones listed).
    """
    wrapper = cfg.get('optim_wrapper')
    calibration = wrapper.get('calibration') if isinstance(wrapper, dict) else None
    if not isinstance(calibration, dict):
        return
    for level in ('inter', 'intra'):
        if level not in calibration:
            continue
        try:
            calibration[level] = normalize_calibrator_cfg(calibration[level], level)
        except ValueError as err:
            raise UserInputError(f'optim_wrapper.calibration.{level}: {err}') from err


def check_model_tasks(cfg: Config, evaluators: Sequence[str]) -> None:
    """Calibration levels and metrics must match the heads and modalities
    the model has (FULLER models: ``bbox_head`` / ``seg_head`` keys).

    Raises:
        UserInputError: task calibration with fewer than two task heads,
            modality calibration with one modality, or a metric whose head
            is switched off.
    """
    model = cfg.get('model') or {}
    if not ('bbox_head' in model or 'seg_head' in model):
        return
    heads = [h for h in ('bbox_head', 'seg_head') if model.get(h)]
    modalities = [m for m, key in (('camera', 'img_backbone'),
                                   ('LiDAR', 'pts_voxel_encoder'))
                  if model.get(key)]
    wrapper = cfg.get('optim_wrapper') or {}
    calibration = None
    if isinstance(wrapper, dict) and wrapper.get('type') in (
            'FullerOptimWrapper', 'FullerAmpOptimWrapper'):
        from .optim_wrapper import DEFAULT_CALIBRATION
        # levels missing from the config take the wrapper's defaults
        calibration = {**DEFAULT_CALIBRATION, **(wrapper.get('calibration') or {})}
    off = [h for h in ('bbox_head', 'seg_head') if not model.get(h)]
    for level, have, what, fix in (
            ('inter', heads, 'task heads',
             f'model.{off[0] if off else "seg_head"}'),
            ('intra', modalities, 'input modalities', 'the model')):
        if not isinstance(calibration, dict):
            break
        level_cfg = calibration.get(level)
        name = level_cfg.get('type') if isinstance(level_cfg, dict) else None
        if name is None or name == _PASS_THROUGH[level]:
            continue
        if model.get('use_junctions', True) is False:
            raise UserInputError(
                f'optim_wrapper.calibration.{level}={name} is on, but '
                'model.use_junctions=False leaves nothing to calibrate: set '
                f'optim_wrapper.calibration.{level}=None')
        if len(have) < 2:
            raise UserInputError(
                f'optim_wrapper.calibration.{level}={name} calibrates across '
                f'{what}, but the model has only {", ".join(have) or "none"}'
                f': set optim_wrapper.calibration.{level}=None (or '
                f'{_PASS_THROUGH[level]}), or give {fix} back')
    for key in evaluators:
        for metric in _as_list(cfg.get(key)):
            head = _METRIC_HEADS.get(metric.get('type')) if isinstance(
                metric, dict) else None
            if head and not model.get(head):
                raise UserInputError(
                    f'{key} has {metric["type"]}, which scores '
                    f'model.{head} ({_HEAD_TASKS[head]}), but model.{head} is '
                    'None: start from a single-task config '
                    '(configs/fuller/*_det_only.py / *_seg_only.py), whose '
                    'metrics match its head')


# -------------------------------------------------------------- launchers
_LAUNCHER_ENV = {
    'pytorch': (('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                'tools/dist_{kind}.sh CONFIG{ckpt} NGPUS (it runs torchrun)'),
    'slurm': (('SLURM_PROCID', 'SLURM_NTASKS'),
              'tools/slurm_train.sh (it runs srun)'),
}


def check_launcher_env(launcher: str, tool: str = 'train') -> None:
    """``--launcher pytorch|slurm`` needs the variables its launcher sets.

    Raises:
        UserInputError: naming the missing variables and the script to use.
    """
    if launcher not in _LAUNCHER_ENV:
        return
    needed, script = _LAUNCHER_ENV[launcher]
    missing = [v for v in needed if v not in os.environ]
    if missing:
        script = script.format(kind=tool, ckpt=' CKPT' if tool == 'test' else '')
        raise UserInputError(
            f'--launcher {launcher} needs {", ".join(missing)} from its '
            f'launcher, and they are not set: use {script}, or drop '
            '--launcher for one process')


# --------------------------------------------------------------- work dirs
def checkpoints_in(work_dir: str) -> List[str]:
    """Checkpoint files (``*.pth``, ``last_checkpoint``) in a work dir."""
    found = sorted(glob.glob(osp.join(glob.escape(work_dir), '*.pth')))
    last = osp.join(work_dir, 'last_checkpoint')
    return found + ([last] if osp.isfile(last) else [])


def check_work_dir(work_dir: str, resume: Optional[str]) -> None:
    """A new run must not write over checkpoints already in ``work_dir``;
    ``--resume`` (auto) must find one there.

    Raises:
        UserInputError: checkpoints found for a new run, or none to resume.
    """
    found = checkpoints_in(work_dir)
    if resume is None and found:
        names = ', '.join(osp.basename(f) for f in found[:3])
        more = f' and {len(found) - 3} more' if len(found) > 3 else ''
        raise UserInputError(
            f'work dir {work_dir} already holds checkpoints ({names}{more}): '
            'pass --resume to continue that run, or choose another --work-dir')
    if resume == 'auto' and not found:
        where = ('does not exist' if not osp.isdir(work_dir) else
                 'holds no checkpoint')
        raise UserInputError(
            f'--resume: nothing to resume from, {work_dir} {where}: check '
            '--work-dir, pass the checkpoint file (--resume CKPT), or drop '
            '--resume to start a new run')
    if resume == 'auto' and not osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        # mmengine resumes from the file named in last_checkpoint only; without
        # it the run would start over and write over these checkpoints.
        newest = max(found, key=osp.getmtime)
        raise UserInputError(
            f'--resume: {work_dir} has checkpoints but no last_checkpoint '
            f'record: name the one to resume from, e.g. --resume {newest}')


# ------------------------------------------------------------- checkpoints
def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0] if text else ""}'


def checkpoint_shapes(path: str) -> Dict[str, Tuple[int, ...]]:
    """Parameter name -> shape of a checkpoint's ``state_dict``, read with
    the safe unpickler and memory-mapped (nothing is copied into memory).

    Raises:
        UserInputError: the file is not a readable checkpoint.
    """
    from .checkpoint import allow_mmengine_checkpoints
    allow_mmengine_checkpoints()
    try:
        try:
            ckpt = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) format cannot be mapped
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 (any unreadable file)
        raise UserInputError(f'cannot read checkpoint {path} ({_first_line(err)}): '
                             'pass a .pth file written by tools/train.py') from err
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise UserInputError(f'checkpoint {path} holds no state_dict: pass a '
                             '.pth file written by tools/train.py')
    return {re.sub(r'^module\.', '', k): tuple(v.shape)
            for k, v in state.items() if torch.is_tensor(v)}


def model_shapes(cfg: Config) -> Dict[str, Tuple[int, ...]]:
    """Parameter name -> shape of the model a config builds (on the CPU,
    without weight initialisation: about 1 s for the paper model; the meta
    device is no shortcut, the view transform computes its geometry from
    real tensors at build time)."""
    from mmengine.registry import init_default_scope
    from mmdet3d.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    model_cfg = cfg.model.copy() if hasattr(cfg.model, 'copy') else dict(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    try:
        model = MODELS.build(model_cfg)
    except (ValueError, TypeError, KeyError, AssertionError) as err:
        # the model's own checks explain a bad config in their first line
        raise UserInputError(f'cannot build the model of '
                             f'{cfg.filename or "the config"}: '
                             f'{_first_line(err)}') from err
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _names(keys: Sequence[str], limit: int = 3) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (', ...' if len(keys) > limit else '')


def check_checkpoint_fits(cfg: Config, path: str,
                          allow_partial: bool = False) -> Optional[str]:
    """Every model weight must be in the checkpoint with its shape.

    Returns:
        None when it fits; with ``allow_partial``, a one-line note of what
        stays at its initial value.

    Raises:
        UserInputError: (without ``allow_partial``) counts and a few names
            of missing, unexpected and differently shaped weights.
    """
    ckpt = checkpoint_shapes(path)
    model = model_shapes(cfg)
    missing = [k for k in model if k not in ckpt]
    unexpected = [k for k in ckpt if k not in model]
    mismatched = [k for k in model if k in ckpt and ckpt[k] != model[k]]
    if not (missing or unexpected or mismatched):
        return None
    shape_note = (f' (e.g. {mismatched[0]}: {list(ckpt[mismatched[0]])} in '
                  f'the checkpoint, {list(model[mismatched[0]])} in the model)'
                  if mismatched else '')
    counts = (f'{len(missing)} model weights missing from it'
              f'{f" ({_names(missing)})" if missing else ""}, '
              f'{len(unexpected)} unexpected'
              f'{f" ({_names(unexpected)})" if unexpected else ""}, '
              f'{len(mismatched)} of another shape{shape_note}')
    config = cfg.filename or 'the config'
    if not allow_partial:
        raise UserInputError(
            f'checkpoint {path} does not fit {config}: {counts}. Evaluate it '
            'with the config it was trained with, or pass --allow-partial '
            'to load the weights that fit and leave the rest at init')
    left = missing + mismatched
    return (f'--allow-partial: {len(left)} of {len(model)} model weights are '
            f'left at init{f" ({_names(left)})" if left else ""}; '
            f'{len(unexpected)} checkpoint weights unused')


# -------------------------------------------------------------------- data
def table_versions(root: str) -> List[str]:
    """nuScenes table versions (``v1.0-*`` folders) under a data root."""
    return sorted(d for d in (os.listdir(root) if osp.isdir(root) else [])
                  if d.startswith('v1.0-') and osp.isdir(osp.join(root, d)))


def create_data_hint(root: str) -> str:
    """The create_data.py command that builds the info files of ``root``."""
    versions = table_versions(root)
    if not versions:
        return (f'{root} holds no nuScenes tables (v1.0-*/): put nuScenes '
                'there, or make a synthetic set with `python '
                f'tools/make_synthetic_nuscenes.py --out {root}`, then build '
                f'the info files with `python tools/create_data.py nuscenes '
                f'--root-path {root} --version VERSION`')
    version = versions[0] if len(versions) == 1 else '{' + '|'.join(versions) + '}'
    return (f'build the info files with `python tools/create_data.py nuscenes '
            f'--root-path {root} --version {version}`')


def _ann_path(ds: dict) -> Optional[str]:
    ann = ds.get('ann_file')
    if not ann:
        return None
    root = ds.get('data_root') or ''
    joined = osp.join(root, ann)
    return joined if osp.isfile(joined) else ann


def _info_metainfo(path: str, cache: Dict[str, dict]) -> dict:
    if path not in cache:
        import mmengine
        try:
            infos = mmengine.load(path)
        except Exception as err:  # noqa: BLE001 (any unreadable file)
            raise UserInputError(f'cannot read info file {path} '
                                 f'({_first_line(err)}): rebuild it with '
                                 'tools/create_data.py') from err
        cache[path] = infos if isinstance(infos, dict) else {}
    return cache[path]


def _evaluator_roots(cfg: Config, evaluators: Sequence[str]) -> List[str]:
    """data roots of the devkit-based metrics (NuScenesMetric and
    EmptySafeNuScenesMetric)."""
    return [m['data_root'] for key in evaluators for m in _as_list(cfg.get(key))
            if isinstance(m, dict) and m.get('type') in _DEVKIT_METRICS
            and m.get('data_root')]


def check_info_files(cfg: Config, loaders: Sequence[str],
                     evaluators: Sequence[str],
                     point_files: bool = True) -> None:
    """The info files must match the data they describe.

    * the nuScenes version they were built for must have its tables under
      the devkit metric's data root (the devkit opens them only after all
      inference otherwise);
    * every LiDAR file they list (key frames and sweeps) must be a whole
      number of points (``load_dim`` float32 values each), and not empty.

    Raises:
        UserInputError: naming the info file or the point file and the fix.
    """
    cache: Dict[str, dict] = {}
    eval_roots = _evaluator_roots(cfg, evaluators)
    for loader in loaders:
        loader_cfg = cfg.get(loader) or {}
        dataset = loader_cfg.get('dataset') if isinstance(loader_cfg, dict) else None
        if not isinstance(dataset, dict):
            continue
        for ds in _dataset_cfgs(dataset):
            ann = _ann_path(ds)
            if not ann or not osp.isfile(ann) or not ann.endswith('.pkl'):
                continue
            infos = _info_metainfo(ann, cache)
            version = (infos.get('metainfo') or {}).get('version')
            for root in eval_roots if version else []:
                if not osp.isdir(osp.join(root, version)):
                    present = table_versions(root)
                    raise UserInputError(
                        f'info file {ann} was built for {version}, but '
                        f'{root} holds {", ".join(present) or "no"} tables: '
                        f'{create_data_hint(root)}, or point data_root at '
                        f'the {version} set')
            if point_files:
                _check_point_files(ds, infos, ann)


def _point_load_dims(pipeline: Iterable) -> Dict[str, int]:
    dims = {}
    for step in pipeline or []:
        if isinstance(step, dict) and 'LoadPointsFrom' in str(step.get('type')):
            kind = 'sweeps' if 'Sweeps' in str(step['type']) else 'points'
            dims[kind] = int(step.get('load_dim', 6 if kind == 'points' else 5))
    return dims


def _check_point_files(ds: dict, infos: dict, ann: str) -> None:
    from ..datasets.point_loading import check_point_file_size
    dims = _point_load_dims(ds.get('pipeline'))
    if not dims:
        return
    root = ds.get('data_root') or ''
    prefix = ds.get('data_prefix') or {}

    def resolve(path: str, key: str) -> str:
        # as mmdet3d's Det3DDataset.parse_data_info: the folder comes from
        # data_prefix (key frames stored as sweeps sit under 'pts')
        return osp.join(root, prefix.get(key, ''), osp.basename(path))

    for info in infos.get('data_list') or []:
        files = []
        lidar = (info.get('lidar_points') or {}).get('lidar_path')
        if lidar and 'points' in dims:
            files.append((resolve(lidar, 'pts'), dims['points']))
        if 'sweeps' in dims:
            for sweep in info.get('lidar_sweeps') or []:
                path = (sweep.get('lidar_points') or {}).get('lidar_path')
                if path:
                    files.append((resolve(path, 'pts' if 'samples' in path
                                          else 'sweeps'), dims['sweeps']))
        for path, load_dim in files:
            if not osp.exists(path):
                raise UserInputError(
                    f'point file {path} listed in {ann} is missing: the info '
                    'file belongs to another copy of the data; point data_root '
                    '(--data-root) at it or rebuild the info files')
            problem = check_point_file_size(path, osp.getsize(path), load_dim)
            if problem:
                raise UserInputError(problem)


# --------------------------------------------------------------- the tools
def validate_train(cfg: Config, resume: Optional[str], launcher: str,
                   check_env: bool = True) -> None:
    """Every pre-flight check of tools/train.py, cheapest first.

    ``resume``: None, 'auto' or a checkpoint path (``--resume``).
    ``check_env``: check the launcher's variables (off for the pre-flight
    run that dist_train.sh makes before torchrun starts the ranks).
    """
    if check_env:
        check_launcher_env(launcher, 'train')
    has_val = bool(cfg.get('val_dataloader') and cfg.get('val_cfg'))
    evaluators = ['val_evaluator'] if has_val else []
    loaders = ['train_dataloader'] + (['val_dataloader'] if has_val else [])
    check_model_tasks(cfg, evaluators)
    matmul_precision(cfg.get('env_cfg'))
    check_work_dir(cfg.work_dir, resume)
    model_shapes(cfg)  # the model builds (its own checks, in one line)
    from .runner_setup import check_data_paths
    check_data_paths(cfg, loaders)
    check_info_files(cfg, loaders, evaluators)


def validate_test(cfg: Config, checkpoint: str, launcher: str,
                  allow_partial: bool = False,
                  check_env: bool = True) -> Optional[str]:
    """Every pre-flight check of tools/test.py; returns the
    ``--allow-partial`` note (None when the checkpoint fits)."""
    if check_env:
        check_launcher_env(launcher, 'test')
    if not osp.isfile(checkpoint):
        raise UserInputError(f'checkpoint not found: {checkpoint}')
    check_model_tasks(cfg, ['test_evaluator'])
    matmul_precision(cfg.get('env_cfg'))
    from .runner_setup import check_data_paths
    check_data_paths(cfg, ['test_dataloader'])
    note = check_checkpoint_fits(cfg, checkpoint, allow_partial)
    check_info_files(cfg, ['test_dataloader'], ['test_evaluator'])
    return note


def fail(tool: str, err: Exception) -> None:
    """Exit (status 1) with ``tool: error: <one line>`` on stderr; when
    several ranks run the same check, rank 0 alone prints it."""
    rank = os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))
    if rank.isdigit() and int(rank) != 0:
        raise SystemExit(1)
    raise SystemExit(f'{tool}: error: {err}')
