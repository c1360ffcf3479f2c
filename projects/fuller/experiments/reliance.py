"""How much a trained camera + LiDAR model relies on each sensor.

Two measurements per sensor, both tasks each:

* **sensor drop** (what the network uses): the model evaluated with one
  sensor absent (``tools/test.py --drop-modality``): its branch does not
  run and the fuser receives zeros in its place;
* **unimodal probe** (what a branch learned): the trained model's camera
  (or LiDAR) branch frozen, a fresh fuser-free decoder and heads trained on
  that branch's BEV feature alone for a fixed schedule, then evaluated
  (``configs/fuller/fuller_cpu_probe_<sensor>.py``).

Every step runs the real tools as child processes (:mod:`.processes`) and
keeps its result file in the run's work dir, so a report resumes where it
stopped and never trains a finished probe again.
"""
import json
import os
import os.path as osp
import sys
from typing import Callable, Dict, List, Optional

from ..models.fuller_bevfusion import MODALITIES, configured_modalities

#: the metrics a reliance column reports, as :func:`summarise` names them
TASK_METRICS = ('mAP', 'mIoU')
PROBE_CONFIG = 'configs/fuller/fuller_cpu_probe_{}.py'

#: ``run(cmd, log_file, env)`` of the caller (it sets the working directory)
Runner = Callable[[List[str], Optional[str], Optional[dict]], None]


def _find(metrics: Dict[str, float], suffix: str) -> Optional[float]:
    for key, value in metrics.items():
        if key == suffix or key.endswith('/' + suffix):
            return value
    return None


def summarise(metrics: Dict[str, float]) -> Dict[str, float]:
    """The experiments' columns out of the evaluators' metric names: mAP,
    NDS, mIoU, per-class map IoU and nuScenes' true-positive errors."""
    row = {'mAP': _find(metrics, 'mAP'), 'NDS': _find(metrics, 'NDS'),
           'mIoU': _find(metrics, 'mIoU')}
    for key, value in metrics.items():
        name = key.rsplit('/', 1)[-1]
        if name.startswith('IoU.') and '@' not in name:
            row[name] = value
    for err in ('mATE', 'mASE', 'mAOE', 'mAVE', 'mAAE'):
        value = _find(metrics, err)
        if value is not None:
            row[err] = value
    return row


def fused_config(config: str) -> bool:
    """Whether the config's model has both a camera and a LiDAR branch."""
    from mmengine.config import Config
    return configured_modalities(Config.fromfile(config).model) == MODALITIES


def _metrics(path: str) -> Dict[str, float]:
    with open(path) as f:
        return summarise(json.load(f)['metrics'])


def _task_columns(prefix: str, row: Dict[str, float]) -> Dict[str, float]:
    return {f'{prefix}.{k}': row.get(k) for k in TASK_METRICS}


def sensor_drop_rows(config: str, checkpoint: str, work: str,
                     options: List[str], run: Runner,
                     env: Optional[dict] = None) -> Dict[str, float]:
    """``drop_<sensor>.mAP`` / ``.mIoU`` of a trained fused model, each
    sensor dropped in turn (``options``: e.g. ``--data-root DIR``)."""
    row = {}
    for sensor in MODALITIES:
        out = osp.join(work, f'test_metrics_drop_{sensor}.json')
        if not osp.isfile(out):
            run([sys.executable, 'tools/test.py', config, checkpoint,
                 '--work-dir', work, '--drop-modality', sensor,
                 '--metrics-out', out, *options],
                osp.join(work, f'test_drop_{sensor}.log'), env)
        row.update(_task_columns(f'drop_{sensor}', _metrics(out)))
    return row


def last_checkpoint(work: str) -> str:
    """The checkpoint a training run's work dir names as its last."""
    with open(osp.join(work, 'last_checkpoint')) as f:
        return f.read().strip()


def probe_rows(checkpoint: str, work: str, seed: int, options: List[str],
               schedule_options: List[str], run: Runner,
               env: Optional[dict] = None,
               probe_config: str = PROBE_CONFIG) -> Dict[str, float]:
    """``probe_<sensor>.mAP`` / ``.mIoU``: each branch of the trained model
    at ``checkpoint`` frozen under a fresh decoder and heads, trained with
    ``schedule_options`` (``--cfg-options`` entries) and evaluated. The
    probes' runs live in ``<work>/probe_<sensor>``."""
    row = {}
    for sensor in MODALITIES:
        config = probe_config.format(sensor)
        probe = osp.join(work, f'probe_{sensor}')
        out = osp.join(probe, 'test_metrics.json')
        if not osp.isfile(out):
            os.makedirs(probe, exist_ok=True)
            cmd = [sys.executable, 'tools/train.py', config, '--work-dir',
                   probe, '--seed', str(seed), *options, '--cfg-options',
                   f'model.frozen_branch.checkpoint={osp.abspath(checkpoint)}',
                   *schedule_options]
            if osp.isfile(osp.join(probe, 'last_checkpoint')):
                cmd.append('--resume')
            run(cmd, osp.join(probe, 'train.log'), env)
            run([sys.executable, 'tools/test.py', config,
                 last_checkpoint(probe), '--work-dir', probe,
                 '--metrics-out', out, *options],
                osp.join(probe, 'test.log'), env)
        row.update(_task_columns(f'probe_{sensor}', _metrics(out)))
    return row


#: the reliance columns of the result tables, in order, with their headers
RELIANCE_COLUMNS = [
    ('drop_lidar', 'LiDAR dropped'), ('drop_camera', 'camera dropped'),
    ('probe_camera', 'camera probe'), ('probe_lidar', 'LiDAR probe')]


def reliance_table(rows: Dict[str, Dict[str, Optional[float]]]) -> str:
    """A markdown table, one line per model: both sensors, each sensor
    dropped, each probe (mAP / mIoU in %); '–' where not measured."""
    def cell(row, prefix):
        values = [row.get(f'{prefix}.{k}' if prefix else k)
                  for k in TASK_METRICS]
        return ' / '.join('–' if v is None else f'{v * 100:.1f}'
                          for v in values)

    cols = [('', 'both sensors')] + RELIANCE_COLUMNS
    lines = ['| model | ' + ' | '.join(f'{h} (mAP / mIoU)' for _, h in cols)
             + ' |', '|---|' + '---|' * len(cols)]
    for name, row in rows.items():
        lines.append(f'| {name} | ' + ' | '.join(cell(row, p)
                                                for p, _ in cols) + ' |')
    return '\n'.join(lines) + '\n'
