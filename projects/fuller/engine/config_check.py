"""Checks of ``--cfg-options`` keys and values against the config tree.

A key such as ``train_cfg.max_epoch`` is looked up node by node. Where the
node it lands in is built from a registered ``type`` (or is a training /
evaluation loop), the key must be a config entry or an argument of that
type's constructor (following ``**kwargs`` up the base classes; a class
whose chain ends in an open ``**kwargs`` accepts anything). Plain dicts
accept new keys, except the few whose keys a component checks itself.
Values that replace a number or a bool must be one.
"""
import difflib
import inspect
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

_MISSING = object()

#: Registry (mmdet3d name) searched first for a ``type`` under each
#: top-level key; every other registry is searched after it.
_REGISTRY_OF_TOP_KEY = {
    'model': 'MODELS',
    'train_cfg': 'LOOPS',
    'val_cfg': 'LOOPS',
    'test_cfg': 'LOOPS',
    'optim_wrapper': 'OPTIM_WRAPPERS',
    'param_scheduler': 'PARAM_SCHEDULERS',
    'train_dataloader': 'DATASETS',
    'val_dataloader': 'DATASETS',
    'test_dataloader': 'DATASETS',
    'val_evaluator': 'METRICS',
    'test_evaluator': 'METRICS',
    'default_hooks': 'HOOKS',
    'custom_hooks': 'HOOKS',
    'visualizer': 'VISUALIZERS',
    'vis_backends': 'VISBACKENDS',
    'log_processor': 'LOG_PROCESSORS',
    'model_wrapper_cfg': 'MODEL_WRAPPERS',
}
_ALL_REGISTRIES = (
    'MODELS', 'LOOPS', 'OPTIM_WRAPPERS', 'OPTIMIZERS', 'PARAM_SCHEDULERS',
    'DATASETS', 'TRANSFORMS', 'DATA_SAMPLERS', 'METRICS', 'HOOKS',
    'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'MODEL_WRAPPERS',
    'TASK_UTILS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'RUNNERS')
#: Loops the Runner picks itself when a loop config has no ``type``.
_DEFAULT_LOOPS = {'val_cfg': 'ValLoop', 'test_cfg': 'TestLoop'}
#: Keys read by the registry's builder, not by the constructor.
_BUILDER_KEYS = {'type', '_scope_'}
#: Keys the Runner takes out of a component's config before building it.
_RUNNER_POPPED_KEYS = {
    'optim_wrapper': {'constructor', 'paramwise_cfg'},
    'default_hooks': {'priority'},
    'custom_hooks': {'priority'},
}


#: Top-level keys mmengine (0.10.7) reads from a config that are no
#: parameter of ``Runner.__init__``, so its signature cannot show them: the
#: Runner reads them from ``self.cfg`` (``__init__``: ``model_wrapper_cfg``;
#: ``wrap_model``: ``sync_bn``, ``find_unused_parameters``; ``train``:
#: ``activation_checkpointing``, ``efficient_conv_bn_eval`` and, through
#: ``_maybe_compile``, ``compile``), and the runner builder (mmengine's
#: ``build_runner_from_cfg``, our ``runner_setup.build_runner``) reads
#: ``runner_type`` before any Runner exists.
RUNNER_CFG_ONLY_KEYS = frozenset({
    'model_wrapper_cfg', 'sync_bn', 'find_unused_parameters', 'compile',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'runner_type'})


def runner_signature_keys() -> Set[str]:
    """The config keys ``Runner.from_cfg`` passes on: the parameter names of
    ``Runner.__init__`` (without ``self`` and ``cfg``, the whole config).

    Read from the installed mmengine's public signature, so the list follows
    it (a test checks the keys the configs rely on are still there).
    """
    from mmengine.runner import Runner
    params = inspect.signature(Runner.__init__).parameters
    return {name for name, param in params.items()
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
            } - {'self', 'cfg'}


def runner_keys(cfg: Optional[dict] = None) -> Set[str]:
    """Every top-level key mmengine's Runner reads from a config.

    :func:`runner_signature_keys` plus :data:`RUNNER_CFG_ONLY_KEYS`, and,
    when ``cfg`` is given, the config's own top-level keys (a config may
    carry entries of its own, e.g. ``map_classes``, that its components use).
    """
    keys = runner_signature_keys() | RUNNER_CFG_ONLY_KEYS
    if cfg is not None:
        keys |= set(cfg.keys())
    return keys


def _registry(name: str):
    import mmdet3d.registry as mmdet3d_registry
    return getattr(mmdet3d_registry, name, None)


def resolve_type(type_: Any, top_key: str) -> Optional[type]:
    """The class a config ``type`` names (None when it cannot be found)."""
    if inspect.isclass(type_):
        return type_
    if not isinstance(type_, str):
        return None
    first = _REGISTRY_OF_TOP_KEY.get(top_key)
    order = ([first] if first else []) + [r for r in _ALL_REGISTRIES if r != first]
    if top_key == 'optim_wrapper' and type_ in _calibrator_names():
        order.insert(0, None)
    for name in order:
        if name is None:
            from ..registry import CALIBRATORS
            found = CALIBRATORS.get(type_)
        else:
            registry = _registry(name)
            found = registry.get(type_) if registry is not None else None
        if inspect.isclass(found):
            return found
    return None


def _calibrator_names() -> Set[str]:
    from ..registry import CALIBRATORS
    return set(CALIBRATORS.module_dict)


def constructor_args(cls: type) -> Tuple[Dict[str, Any], bool]:
    """(argument name -> default, open) of a class's constructor.

    ``**kwargs`` is followed up the method resolution order (the usual
    ``super().__init__(**kwargs)`` chain); ``open`` is True when the chain
    ends in a ``**kwargs`` nobody names (then any key is accepted).
    """
    args: Dict[str, Any] = {}
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        if klass is object:
            return args, True
        try:
            params = inspect.signature(vars(klass)['__init__']).parameters
        except (TypeError, ValueError):
            return args, True
        var_kw = False
        for i, (name, param) in enumerate(params.items()):
            if i == 0 and name == 'self':
                continue
            if param.kind == param.VAR_KEYWORD:
                var_kw = True
            elif param.kind != param.VAR_POSITIONAL:
                args.setdefault(name, param.default)
        if not var_kw:
            return args, False
    return args, True


def _child(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return node.get(key, _MISSING)
    if isinstance(node, (list, tuple)) and key.isdigit():
        return node[int(key)] if int(key) < len(node) else _MISSING
    return _MISSING


def _loop_type(path: Sequence[str], node: dict) -> Optional[str]:
    """The loop class the Runner builds for a train/val/test_cfg without
    ``type``."""
    if len(path) != 1 or 'type' in node:
        return None
    if path[0] == 'train_cfg':
        by_epoch = node.get('by_epoch', 'max_epochs' in node)
        return 'EpochBasedTrainLoop' if by_epoch else 'IterBasedTrainLoop'
    return _DEFAULT_LOOPS.get(path[0])


def _closed_keys(path: Sequence[str]) -> Optional[Set[str]]:
    """Keys of untyped dicts that a component validates itself."""
    if list(path[-1:]) == ['calibration'] and path[0] == 'optim_wrapper':
        from .optim_wrapper import DEFAULT_CALIBRATION
        return set(DEFAULT_CALIBRATION)
    return None


def _type_name(value: Any) -> Optional[str]:
    """'an integer' / 'a number' / 'a bool' for values whose type matters."""
    if isinstance(value, bool):
        return 'a bool (True/False)'
    if isinstance(value, int):
        return 'an integer'
    if isinstance(value, float):
        return 'a number'
    return None


def _fits(expected: Any, value: Any) -> bool:
    if value is None or expected is None:
        return True
    if isinstance(expected, bool):
        return isinstance(value, bool)
    if isinstance(expected, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(expected, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def check_option(root: dict, key: str, value: Any,
                 new_types: Optional[Dict[str, Any]] = None) -> Optional[str]:
    """Problem with one ``--cfg-options`` entry against the config tree
    ``root`` (before the options are merged), or None.

    ``new_types``: node path -> the ``type`` other options give that node
    (``train_cfg.type=IterBasedTrainLoop train_cfg.max_iters=9``).
    """
    parts = key.split('.')
    node: Any = root
    for depth, part in enumerate(parts):
        path = parts[:depth]
        child = _child(node, part)
        is_last = depth == len(parts) - 1
        if child is _MISSING:
            if not isinstance(node, dict) or depth == 0:
                return None
            known = set(node)
            cls = None
            type_ = (new_types or {}).get('.'.join(path)) or node.get(
                'type') or _loop_type(path, node)
            default = _MISSING
            if type_ is not None:
                cls = resolve_type(type_, parts[0])
                if cls is None:
                    return None
                args, is_open = constructor_args(cls)
                if part in _RUNNER_POPPED_KEYS.get(parts[0], ()):
                    return None
                if part in args:
                    default = args[part]
                elif not is_open:
                    known |= set(args) | _BUILDER_KEYS
                    return _unknown(key, part, path, known,
                                    f'{getattr(cls, "__name__", type_)} takes')
            else:
                closed = _closed_keys(path)
                if closed is not None and part not in closed:
                    return _unknown(key, part, path, closed | known, 'it takes')
            if is_last and default is not _MISSING and default is not \
                    inspect.Parameter.empty:
                return _check_value(key, default, value, 'the default is')
            return None
        if is_last:
            if part == 'type' and isinstance(value, str):
                return _check_type_name(key, value, parts[0])
            return _check_value(key, child, value, 'the config has')
        node = child
    return None


def _check_type_name(key: str, name: str, top_key: str) -> Optional[str]:
    """A ``type`` given on the command line must be registered."""
    if resolve_type(name, top_key) is not None or '.' in name:
        return None  # scoped names ('mmdet.X') are left to the builder
    first = _REGISTRY_OF_TOP_KEY.get(top_key)
    registry = _registry(first) if first else None
    names = set()
    while registry is not None:
        names |= set(registry.module_dict)
        registry = registry.parent
    if top_key == 'optim_wrapper':
        names |= _calibrator_names()
    close = difflib.get_close_matches(name, sorted(names), n=3)
    hint = f'did you mean {", ".join(close)}?' if close else \
        'no registered type of that name'
    return f'--cfg-options {key}={name}: unknown type ({hint})'


def _unknown(key: str, part: str, path: Sequence[str], known: Set[str],
             what: str) -> str:
    close = difflib.get_close_matches(part, sorted(known), n=3)
    hint = (f'did you mean {".".join([*path, close[0]])}?' if close else
            f'{what}: {", ".join(sorted(known - _BUILDER_KEYS))}')
    return f'--cfg-options key "{key}": {".".join(path)} has no "{part}" ({hint})'


def _check_value(key: str, expected: Any, value: Any, where: str) -> Optional[str]:
    if _fits(expected, value):
        return None
    return (f'--cfg-options {key}={value!r}: expects {_type_name(expected)} '
            f'({where} {expected!r}), got {type(value).__name__} {value!r}')


def check_options(root: dict, options: dict) -> List[str]:
    """Problems of all ``--cfg-options`` entries (empty when all fit)."""
    problems = []
    new_types = {k[:-len('.type')]: v for k, v in options.items()
                 if k.endswith('.type')}
    for key, value in options.items():
        problem = check_option(root, key, value, new_types)
        if problem:
            problems.append(problem)
    return problems
