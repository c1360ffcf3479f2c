"""Config loading and Runner set-up shared by tools/train.py and tools/test.py
(their pre-flight checks are in :mod:`fuller.engine.preflight`).

Every check fails with :class:`UserInputError`, a one-line message that names
the problem and the fix; the tools turn it into ``prog: error: ...`` and exit 1
instead of a deep traceback.
"""
import contextlib
import difflib
import logging
import os
import os.path as osp
from typing import Any, Iterable, Iterator, List, Optional

import torch
from mmengine.config import Config, DictAction  # noqa: F401 (re-export)


class UserInputError(Exception):
    """A problem in what the user passed (paths, config keys, flags)."""


# Each AMP flavour an optimizer wrapper type switches to under ``--amp``.
AMP_WRAPPERS = {
    'FullerOptimWrapper': 'FullerAmpOptimWrapper',
    'OptimWrapper': 'AmpOptimWrapper',
}


#: ``env_cfg.float32_matmul_precision`` values, as
#: ``torch.set_float32_matmul_precision`` takes them: 'highest' keeps float32
#: matrix products in full float32; 'high' lets CUDA run them on TF32 tensor
#: cores (10-bit mantissa inputs, float32 accumulation), which PyTorch already
#: does for float32 convolutions (``torch.backends.cudnn.allow_tf32``);
#: 'medium' allows bfloat16 inputs as well.
MATMUL_PRECISIONS = ('highest', 'high', 'medium')


def matmul_precision(env_cfg: Optional[dict]) -> Optional[str]:
    """``env_cfg.float32_matmul_precision``, checked; None when the config
    leaves torch's default ('highest') alone."""
    value = (env_cfg or {}).get('float32_matmul_precision')
    if value is None:
        return None
    if value not in MATMUL_PRECISIONS:
        raise UserInputError(
            f'env_cfg.float32_matmul_precision={value!r} is not one of '
            f'{", ".join(MATMUL_PRECISIONS)}: set \'highest\' for plain '
            'float32 matrix products or \'high\' for TF32 tensor cores on '
            'CUDA')
    return value


def apply_backend_settings(env_cfg: Optional[dict]) -> None:
    """The process-wide numeric settings of ``env_cfg``, as a run of the
    config gets them: ``cudnn_benchmark`` (which mmengine's Runner applies
    itself) and ``float32_matmul_precision`` (which it ignores). Called by
    the plugin's Runner and by tools that build a model without a Runner
    (the benchmarks)."""
    env_cfg = env_cfg or {}
    precision = matmul_precision(env_cfg)
    if precision is not None:
        torch.set_float32_matmul_precision(precision)
    if 'cudnn_benchmark' in env_cfg:
        torch.backends.cudnn.benchmark = bool(env_cfg['cudnn_benchmark'])


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
        from .config_check import check_options, runner_keys
        known = set(cfg.keys()) | runner_keys()
        for key in cfg_options:
            top = key.split('.', 1)[0]
            if top not in known:
                close = difflib.get_close_matches(top, sorted(known), n=3)
                hint = f' (did you mean {", ".join(close)}?)' if close else ''
                raise UserInputError(
                    f'--cfg-options key "{key}": "{top}" is neither a key of '
                    f'{path} nor a key the Runner reads{hint}')
        problems = check_options(cfg._cfg_dict, cfg_options)
        if problems:
            raise UserInputError(problems[0])
        cfg.merge_from_dict(cfg_options)
    from .preflight import normalize_calibration
    normalize_calibration(cfg)
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
                    '`make data`; nuScenes: put it there, then `python '
                    f'tools/create_data.py nuscenes --root-path {root} '
                    '--version v1.0-trainval` (or v1.0-mini)), or point at '
                    'another copy with --data-root')
            ann = ds.get('ann_file')
            if ann and not osp.isfile(osp.join(root, ann)) and not osp.isfile(ann):
                from .preflight import create_data_hint
                raise UserInputError(
                    f'annotation file not found: {osp.join(root, ann)} '
                    f'({loader}.dataset.ann_file): {create_data_hint(root)}')
            for step in ds.get('pipeline') or []:
                db = step.get('db_sampler') if isinstance(step, dict) else None
                info = db.get('info_path') if isinstance(db, dict) else None
                if not info or osp.isfile(info):
                    continue
                path = osp.join(db.get('data_root') or '', info)
                if not osp.isfile(path):
                    from .preflight import create_data_hint
                    raise UserInputError(
                        f'GT database not found: {path} ({loader} ObjectSample '
                        'db_sampler.info_path). create_data.py writes it with '
                        'the info files (add --overwrite where they exist): '
                        f'{create_data_hint(db.get("data_root") or root)}')


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


#: Messages the Runner logs at start-up that go to the log file only (the
#: environment and config dumps, ~1,300 lines, and the hook table).
_FILE_ONLY_PREFIXES = ('\n' + '-' * 60 + '\nSystem environment:', 'Config:\n',
                       'Hooks will be executed in the following order')


class _FileOnlyStartupDump(logging.Filter):
    """Console filter: drops the Runner's start-up dumps (kept in the log
    file), every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg if isinstance(record.msg, str) else ''
        return not msg.startswith(_FILE_ONLY_PREFIXES)


def stop_loader_workers(runner) -> None:
    """Stop the worker processes of the runner's built data loaders now.

    A persistent loader (``persistent_workers=True``, every nus config) keeps
    its workers after the last batch. Left to interpreter exit, they are
    killed by multiprocessing's exit handler, and torch's SIGCHLD handler
    then prints "DataLoader worker (pid N) is killed by signal: Terminated"
    with a traceback after a run that succeeded.
    """
    for loop in (runner._train_loop, runner._val_loop, runner._test_loop):
        loader = getattr(loop, 'dataloader', None)  # None: loop not built
        workers = getattr(loader, '_iterator', None)
        if workers is not None and hasattr(workers, '_shutdown_workers'):
            workers._shutdown_workers()
            loader._iterator = None


def _runner_class(base: type, dump_name: str, dump_in_log_dir: bool) -> type:
    """``base`` with the plugin's start-up manners:

    * the environment/config/hooks dumps go to the log file only; the
      console gets one line saying where they are;
    * ``train()`` and ``test()`` stop the data loaders' workers when they
      end (:func:`stop_loader_workers`);
    * ``env_cfg.float32_matmul_precision`` is applied with the rest of
      ``env_cfg`` (mmengine's Runner knows only ``cudnn_benchmark``);
    * the config dump never replaces a file: it is written as
      ``<work_dir>/<dump_name>`` when that name is free, else (and always
      with ``dump_in_log_dir``) into the run's timestamped log folder.
    """

    class FullerRunner(base):

        def train(self):
            try:
                return super().train()
            finally:
                stop_loader_workers(self)

        def test(self):
            try:
                return super().test()
            finally:
                stop_loader_workers(self)

        def setup_env(self, env_cfg: dict) -> None:
            super().setup_env(env_cfg)
            apply_backend_settings(env_cfg)

        def build_logger(self, *args, **kwargs):
            logger = super().build_logger(*args, **kwargs)
            consoles = [h for h in logger.handlers
                        if isinstance(h, logging.StreamHandler)
                        and not isinstance(h, logging.FileHandler)]
            for handler in consoles:
                if not any(isinstance(f, _FileOnlyStartupDump)
                           for f in handler.filters):
                    handler.addFilter(_FileOnlyStartupDump())
            if consoles:
                files = [h.baseFilename for h in logger.handlers
                         if isinstance(h, logging.FileHandler)]
                if files:
                    logger.info(f'environment, config and hooks: see {files[0]}')
            return logger

        def dump_config(self) -> None:
            path = osp.join(self.work_dir, dump_name)
            if dump_in_log_dir or osp.exists(path):
                path = osp.join(self.log_dir, dump_name)
            self.cfg.dump(path)

    FullerRunner.__name__ = FullerRunner.__qualname__ = f'Fuller{base.__name__}'
    return FullerRunner


@contextlib.contextmanager
def process_group_closed_at_end() -> Iterator[None]:
    """Close a distributed run so that gloo does not abort a rank at exit.

    A rank that leaves while its peers still work (rank 0 writing the last
    checkpoint), or that leaves the DDP model and its gloo work objects to
    interpreter finalisation, can die in gloo's threads after a successful
    run: "terminate called without an active exception" (SIGABRT, sometimes
    SIGSEGV), and torchrun then fails the whole job (pytorch issues 190489,
    179291). Measured with 2 gloo DDP ranks and a rank 0 that ends 50 ms
    later: 5 of 20 runs aborted without ``destroy_process_group``, 4 of 40
    with it alone, none of 20 with the steps below and none of 20 with each
    of its two steps alone. The caller drops its Runner inside the block.

    After a normal end: collect the garbage (the DDP reducer goes while the
    interpreter is whole), wait for every rank, destroy the process groups.
    After a stop every rank agreed on (a ``SystemExit`` such as the graceful
    stop, which has its own barrier): collect and destroy. After any other
    error a rank must not wait on peers that may never come: the process
    exit is left to clean up.
    """
    import gc

    import torch.distributed as dist

    def close(wait_for_peers: bool) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            return
        gc.collect()
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()

    try:
        yield
    except SystemExit:
        close(wait_for_peers=False)
        raise
    close(wait_for_peers=True)


def build_runner(cfg: Config, mode: str = 'train'):
    """The Runner of a prepared config (``runner_type`` honoured), with the
    process group already started on CPU-only distributed launches.

    ``mode`` 'test' names the config dump ``test_<config>.py`` (in the run's
    log folder) so that it never replaces the training run's dump.
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    init_cpu_process_group(cfg.get('launcher', 'none'))
    base = RUNNERS.get(cfg.runner_type) if 'runner_type' in cfg else Runner
    name = osp.basename(cfg.filename) if cfg.filename else 'config.py'
    if mode == 'test':
        name = f'test_{name}'
    return _runner_class(base, name, mode == 'test').from_cfg(cfg)


def drop_modality(cfg: Config, modality: str) -> None:
    """Evaluate the config's camera + LiDAR model without ``modality``
    (``tools/test.py --drop-modality``): the model skips that branch and
    feeds the fuser zeros; without the LiDAR the data preprocessor does not
    voxelise either.

    Raises:
        UserInputError: the model does not have both branches.
    """
    from ..models.fuller_bevfusion import (BRANCH_MODULES, MODALITIES,
                                           configured_modalities)
    if modality not in MODALITIES:
        raise UserInputError(f'--drop-modality {modality}: name one of '
                             f'{", ".join(MODALITIES)}')
    model = cfg.model
    missing = [m for m in MODALITIES
               if m not in configured_modalities(model)]
    if missing:
        raise UserInputError(
            f'--drop-modality {modality}: the model of {cfg.filename} has no '
            f'{missing[0]} branch ({BRANCH_MODULES[missing[0]][0]} is None), '
            'so there is no second sensor to fall back on; evaluate a camera '
            '+ LiDAR config')
    model.drop_modality = modality
    preprocessor = model.get('data_preprocessor')
    if modality == 'lidar' and isinstance(preprocessor, dict) and \
            'voxel' in preprocessor:
        preprocessor['voxel'] = False


def add_prediction_dump(cfg: Config, path: str) -> None:
    """Dump every prediction to ``path`` (``tools/test.py --out``), with
    mmengine's DumpResults metric next to the config's evaluators."""
    if not path.endswith(('.pkl', '.pickle')):
        raise UserInputError(
            f'--out {path}: the predictions are dumped as a pickle, so name a '
            '.pkl or .pickle file (the metrics JSON goes to --metrics-out)')
    evaluators = cfg.test_evaluator
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    cfg.test_evaluator = [*evaluators,
                          dict(type='DumpResults', out_file_path=path)]


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
