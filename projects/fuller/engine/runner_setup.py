"""Config loading and pre-flight checks shared by tools/train.py and tools/test.py.

Every check fails with :class:`UserInputError`, a one-line message that names
the problem and the fix; the tools turn it into ``prog: error: ...`` and exit 2
instead of a deep traceback.
"""
import difflib
import inspect
import os
import os.path as osp
from typing import Any, Iterable, List, Optional

import torch
from mmengine.config import Config, DictAction  # noqa: F401 (re-export)


class UserInputError(Exception):
    """A problem in what the user passed (paths, config keys, flags)."""


# Each AMP flavour an optimizer wrapper type switches to under ``--amp``.
AMP_WRAPPERS = {
    'FullerOptimWrapper': 'FullerAmpOptimWrapper',
    'OptimWrapper': 'AmpOptimWrapper',
}


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Load a config file and merge ``--cfg-options`` into it.

    Raises:
        UserInputError: the file is missing, or an option's top-level key is
            neither in the config nor a Runner argument (a likely typo; close
            matches are suggested).
    """
    if not osp.isfile(path):
        raise UserInputError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(path)
    except (SyntaxError, TypeError, KeyError, ValueError, FileNotFoundError,
            ImportError) as err:
        # mmengine's own message names the clash; the traceback adds nothing.
        raise UserInputError(f'cannot load config {path}: '
                             f'{type(err).__name__}: {err}') from err
    if cfg_options:
        from mmengine.runner import Runner
        known = set(cfg.keys()) | set(inspect.signature(Runner.__init__).parameters)
        for key in cfg_options:
            top = key.split('.', 1)[0]
            if top not in known:
                close = difflib.get_close_matches(top, sorted(known), n=3)
                hint = f' (did you mean {", ".join(close)}?)' if close else ''
                raise UserInputError(
                    f'--cfg-options key "{key}": "{top}" is neither a key of '
                    f'{path} nor a Runner argument{hint}')
        cfg.merge_from_dict(cfg_options)
    return cfg


def _dataset_cfgs(dataset: dict) -> Iterable[dict]:
    """Yield a dataset config and those it wraps (RepeatDataset, CBGS...)."""
    yield dataset
    inner = dataset.get('dataset')
    if isinstance(inner, dict):
        yield from _dataset_cfgs(inner)
    for inner in dataset.get('datasets', []) or []:
        yield from _dataset_cfgs(inner)


def check_data_paths(cfg: Config, loaders: List[str]) -> None:
    """Make sure each named dataloader's ``data_root`` and ``ann_file`` exist.

    Raises:
        UserInputError: naming the missing path, the config key it came from
            and how to create the data.
    """
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg or not isinstance(loader_cfg.get('dataset'), dict):
            continue
        for ds in _dataset_cfgs(loader_cfg['dataset']):
            root = ds.get('data_root')
            if root is None:
                continue
            if not osp.isdir(root):
                raise UserInputError(
                    f'data root not found: {root} ({loader}.dataset.data_root). '
                    'Prepare it as README "Data preparation" says (synthetic: '
                    '`make data`; nuScenes: tools/create_data.py) or point it '
                    'elsewhere with --cfg-options')
            ann = ds.get('ann_file')
            if ann and not osp.isfile(osp.join(root, ann)) and not osp.isfile(ann):
                raise UserInputError(
                    f'annotation file not found: {osp.join(root, ann)} '
                    f'({loader}.dataset.ann_file). Build the info files with '
                    f'`python tools/create_data.py nuscenes --root-path {root}`')
            for step in ds.get('pipeline') or []:
                db = step.get('db_sampler') if isinstance(step, dict) else None
                info = db.get('info_path') if isinstance(db, dict) else None
                if not info or osp.isfile(info):
                    continue
                path = osp.join(db.get('data_root') or '', info)
                if not osp.isfile(path):
                    raise UserInputError(
                        f'GT database not found: {path} ({loader} ObjectSample '
                        f'db_sampler.info_path). Write it with `python '
                        f'tools/create_data.py nuscenes --root-path '
                        f'{db.get("data_root")}`')


def check_fresh_work_dir(work_dir: str) -> None:
    """Refuse to start a new run on top of another run's checkpoints.

    mmengine would silently overwrite ``epoch_N.pth`` of the earlier run.
    """
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        raise UserInputError(
            f'work dir {work_dir} already holds checkpoints of an earlier run: '
            'pass --resume to continue it, or choose another --work-dir')


def apply_amp(cfg: Config) -> None:
    """Switch the config's optimizer wrapper to its mixed-precision flavour."""
    wrapper = cfg.optim_wrapper
    kind = wrapper.get('type', 'OptimWrapper')
    if kind in AMP_WRAPPERS.values():
        return
    if kind not in AMP_WRAPPERS:
        raise UserInputError(
            f'--amp: no mixed-precision flavour known for optim_wrapper type '
            f'{kind!r}; use one of {sorted(AMP_WRAPPERS)}')
    if kind == 'OptimWrapper' and not torch.cuda.is_available():
        raise UserInputError(
            '--amp on CPU needs optim_wrapper type FullerOptimWrapper (its AMP '
            'flavour runs bfloat16 autocast on CPU); mmengine\'s '
            'AmpOptimWrapper requires CUDA')
    wrapper.type = AMP_WRAPPERS[kind]
    if kind == 'OptimWrapper':
        wrapper.setdefault('loss_scale', 'dynamic')


def configure_launcher(cfg: Config, launcher: str) -> None:
    """Set the launcher and pick the collective backend for the device:
    nccl on CUDA, gloo on CPU (an explicit non-default choice is kept)."""
    cfg.launcher = launcher
    if launcher == 'none':
        return
    # Config.setdefault hands back detached copies: rebuild and assign.
    env_cfg = dict(cfg.get('env_cfg') or {})
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    if torch.cuda.is_available():
        if dist_cfg.get('backend', 'gloo') == 'gloo':
            dist_cfg['backend'] = 'nccl'
    else:
        dist_cfg['backend'] = 'gloo'
        # DDP on CPU must not be given a CUDA device id.
        wrapper_cfg = dict(cfg.get('model_wrapper_cfg') or
                           dict(type='MMDistributedDataParallel'))
        if 'device_ids' not in wrapper_cfg:
            wrapper_cfg['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper_cfg
    env_cfg['dist_cfg'] = dist_cfg
    cfg.env_cfg = env_cfg
    # torchrun sets LOCAL_RANK; the legacy launcher passes --local-rank.
    os.environ.setdefault('LOCAL_RANK', '0')


def default_work_dir(config_path: str) -> str:
    """``work_dirs/<config file stem>``, as MMDetection3D does."""
    return osp.join('work_dirs', osp.splitext(osp.basename(config_path))[0])


def init_cpu_process_group(launcher: str) -> None:
    """Start the gloo process group ourselves on CPU-only machines.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally,
    which fails on a CPU build of torch; the Runner skips its own
    initialisation when a process group already exists.
    """
    import torch.distributed as dist
    if launcher != 'pytorch' or torch.cuda.is_available() or dist.is_initialized():
        return
    dist.init_process_group(backend='gloo')


def build_runner(cfg: Config):
    """The Runner of a prepared config (``runner_type`` honoured), with the
    process group already started on CPU-only distributed launches."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    init_cpu_process_group(cfg.get('launcher', 'none'))
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def _walk_dicts(node: Any) -> Iterable[dict]:
    """Every dict inside a config tree (dicts and lists)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk_dicts(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _walk_dicts(value)


def set_data_root(cfg: Config, root: str) -> None:
    """Point a config at another copy of its data (``--data-root``).

    Every ``data_root`` (datasets, map-loading transforms, evaluators) becomes
    ``root``; ``ann_file`` paths spelled under an old data root move with it.
    """
    root = root.rstrip('/') + '/'
    nodes = list(_walk_dicts(cfg._cfg_dict))
    old_roots = {n['data_root'] for n in nodes
                 if isinstance(n.get('data_root'), str)}
    for node in nodes:
        if isinstance(node.get('data_root'), str):
            node['data_root'] = root
        ann = node.get('ann_file')
        if isinstance(ann, str):
            for old in old_roots:
                if old and ann.startswith(old):
                    node['ann_file'] = root + ann[len(old):]
                    break
