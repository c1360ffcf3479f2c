"""FullerOptimWrapper and GradientCalibrationHook in real mmengine Runner
training runs of the toy two-modality, two-task model."""
import json
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.runner import Runner

import fuller  # noqa: F401  (registers everything)
import fuller.testing  # noqa: F401
from fuller.engine import FullerAmpOptimWrapper, FullerOptimWrapper
from fuller.engine.optim_wrapper import model_device_type
from fuller.engine.runner_setup import process_group_closed_at_end
from fuller.testing.processes import cpu_ranks_env
from fuller.testing.tools import free_port
from fuller.testing.toy import ToyFusionModel

REPO = Path(__file__).resolve().parents[2]
TOY = REPO / 'configs' / 'toy' / 'toy_fuller.py'
COMBOS = {
    'off': dict(inter=None, intra=None),
    'inter': dict(inter=dict(type='IMTLG'), intra=None),
    'intra': dict(inter=None, intra=dict(type='EqualNorm')),
    'both': dict(inter=dict(type='IMTLG'), intra=dict(type='EqualNorm')),
    'both_per_sample': dict(inter=dict(type='IMTLG'),
                            intra=dict(type='EqualNorm'), per_sample=True),
}


def _config(work_dir, calibration, epochs=3, wrapper='FullerOptimWrapper',
            hook=None, **wrapper_kwargs):
    cfg = Config.fromfile(str(TOY))
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'toy_{uuid.uuid4().hex[:8]}'
    cfg.visualizer.name = cfg.experiment_name  # one visualiser per run
    cfg.train_cfg.max_epochs = epochs
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=4)
    cfg.optim_wrapper = dict(
        type=wrapper,
        optimizer=dict(type='Adam', lr=0.01),
        clip_grad=dict(max_norm=10.0),
        calibration=calibration,
        **wrapper_kwargs)
    cfg.custom_hooks = [hook or dict(type='GradientCalibrationHook',
                                     interval=4)]
    return cfg


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions: one thread avoids contention on a shared CI box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _dataset_loss(runner):
    """Mean total loss over the whole training set (fixed data)."""
    model = runner.model.module if hasattr(runner.model,
                                           'module') else runner.model
    loader = runner.build_dataloader(runner.cfg.train_dataloader)
    total = []
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            total.append(sum(model(**data, mode='loss').values()).item())
    return sum(total) / len(total)


def _train(cfg):
    """Train; returns the runner and the dataset loss before and after."""
    runner = Runner.from_cfg(cfg)
    before = _dataset_loss(runner)
    runner.train()
    return runner, before, _dataset_loss(runner)


def _history(runner, key):
    return runner.message_hub.get_scalar(key).data[0]


@pytest.mark.parametrize('combo', list(COMBOS))
def test_runner_training_decreases_loss(combo, tmp_path):
    runner, before, after_training = _train(_config(tmp_path, COMBOS[combo]))
    assert isinstance(runner.optim_wrapper, FullerOptimWrapper)
    assert len(_history(runner, 'train/loss')) == 24
    assert after_training < 0.8 * before, (before, after_training)
    # Statistics are published every step, whatever is switched on.
    cos = _history(runner, 'fuller/task_cos')
    assert len(cos) == 24 and ((cos >= -1) & (cos <= 1)).all()
    w_det = _history(runner, 'fuller/weight/det')
    w_seg = _history(runner, 'fuller/weight/seg')
    after = _history(runner, 'fuller/cam_lid_ratio_after')
    before = _history(runner, 'fuller/cam_lid_ratio_before')
    if COMBOS[combo]['inter'] is None:
        assert (w_det == 1).all() and (w_seg == 1).all()
    else:  # IMTLG: weights sum to 1
        assert abs(w_det + w_seg - 1).max() < 1e-6
    # What reaches the shared backbone, per task and in all, from the Gram
    # matrix: |a_t| |g_t|, |g_det + g_seg| and |a_det g_det + a_seg g_seg|.
    n_det = _history(runner, 'fuller/grad_norm/det')
    n_seg = _history(runner, 'fuller/grad_norm/seg')
    for task, w, n in (('det', w_det, n_det), ('seg', w_seg, n_seg)):
        assert np.allclose(_history(runner, f'fuller/grad_norm_after/{task}'),
                           abs(w) * n, rtol=1e-6)
    for key, a, b in (('before', 1, 1), ('after', w_det, w_seg)):
        sq = (a * n_det)**2 + (b * n_seg)**2 + 2 * a * b * cos * n_det * n_seg
        assert np.allclose(_history(runner, f'fuller/shared_norm_{key}'),
                           np.sqrt(sq), rtol=1e-5)
    if COMBOS[combo]['intra'] is None:
        assert (after == before).all() and abs(before - 1).max() > 0.05
    else:  # EqualNorm: equal norms afterwards
        assert abs(after - 1).max() < 1e-5 and abs(before - 1).max() > 0.05
    # The hook wrote the statistics as JSON lines through LocalVisBackend.
    lines = [
        json.loads(line) for path in tmp_path.glob('*/vis_data/scalars.json')
        for line in path.read_text().splitlines()
    ]
    fuller_lines = [ln for ln in lines if 'fuller/task_cos' in ln]
    assert [ln['step'] for ln in fuller_lines] == [4, 8, 12, 16, 20, 24]
    assert fuller_lines[-1]['fuller/task_cos'] == pytest.approx(
        float(cos[-4:].mean()))


def test_model_without_junction_raises(tmp_path):
    cfg = _config(tmp_path, COMBOS['intra'])
    cfg.model.with_junctions = False
    with pytest.raises(RuntimeError, match='has no ModalityJunction'):
        _train(cfg)
    cfg = _config(tmp_path, COMBOS['off'], epochs=1)
    cfg.model.with_junctions = False
    _train(cfg)  # both levels off: nothing needed


def test_registered_in_mmengine_and_mmdet3d_scopes():
    from mmdet3d.registry import HOOKS as MMDET3D_HOOKS
    from mmdet3d.registry import OPTIM_WRAPPERS as MMDET3D_WRAPPERS
    from mmengine.registry import HOOKS, OPTIM_WRAPPERS
    for name, cls in (('FullerOptimWrapper', FullerOptimWrapper),
                      ('FullerAmpOptimWrapper', FullerAmpOptimWrapper)):
        assert OPTIM_WRAPPERS.module_dict[name] is cls
        assert MMDET3D_WRAPPERS.module_dict[name] is cls
    name = 'GradientCalibrationHook'
    assert HOOKS.module_dict[name] is MMDET3D_HOOKS.module_dict[name]


def test_bad_calibration_config_is_explained():
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=0.1)
    with pytest.raises(KeyError, match='unknown calibration keys'):
        FullerOptimWrapper(opt, calibration=dict(inetr=None))
    with pytest.raises(ValueError, match='exclude each other'):
        FullerOptimWrapper(opt, calibration=dict(per_sample=True, sync=True))
    with pytest.raises(KeyError, match='level'):
        FullerOptimWrapper(opt).set_calibrator('task', None)


def test_backward_outside_optim_context_is_explained():
    model = ToyFusionModel(channels=4)
    wrapper = FullerOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    inputs = dict(camera=torch.randn(2, 3, 8, 8),
                  lidar=torch.randn(2, 2, 8, 8))
    loss = sum(o.sum() for o in model(inputs).values())
    with pytest.raises(RuntimeError, match='optim_context'):
        wrapper.update_params(loss)
    with wrapper.optim_context(model):
        loss = sum(o.sum() for o in model(inputs).values())
    wrapper.update_params(loss)  # armed: fine


def test_statistics_for_three_tasks_and_loss_scale():
    wrapper = FullerOptimWrapper(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    gram = torch.tensor([[4.0, 0.0, -2.0], [0.0, 1.0, 0.0], [-2.0, 0.0, 4.0]],
                        dtype=torch.float64)
    wrapper._records = [
        ('', dict(kind='task', names=('a', 'b', 'c'), gram=gram,
                  weights=torch.tensor([0.2, 0.3, 0.5]), finite=True)),
        ('', dict(kind='modality', names=('camera', 'lidar'),
                  norms_before=torch.tensor([1.0, 4.0]),
                  norms_after=torch.tensor([2.5, 2.5]), finite=True)),
        ('', dict(kind='task', names=('a', 'b'), gram=gram[:2, :2] * 0,
                  weights=torch.ones(2), finite=False)),  # skipped
    ]
    stats = wrapper.statistics()
    assert stats['fuller/grad_norm/a'] == pytest.approx(2.0)
    assert stats['fuller/task_cos/a-c'] == pytest.approx(-0.5)
    assert stats['fuller/task_cos/a-b'] == pytest.approx(0.0)
    assert stats['fuller/task_cos'] == pytest.approx(-0.5 / 3)
    assert stats['fuller/weight/c'] == pytest.approx(0.5)
    assert stats['fuller/cam_lid_ratio_before'] == pytest.approx(0.25)
    assert stats['fuller/cam_lid_ratio_after'] == pytest.approx(1.0)
    assert stats['fuller/grad_norm_after/lidar'] == pytest.approx(2.5)
    # each task's share a_t |g_t|, and the whole gradient into the backbone
    assert stats['fuller/grad_norm_after/c'] == pytest.approx(0.5 * 2.0)
    assert stats['fuller/shared_norm_before'] == pytest.approx(5**0.5)
    assert stats['fuller/shared_norm_after'] == pytest.approx(
        (0.04 * 4 + 0.09 + 0.25 * 4 - 2 * 0.2 * 0.5 * 2)**0.5)


def test_hook_due_config_is_resume_safe():
    from fuller.engine import GradientCalibrationHook
    hook = GradientCalibrationHook(switches=[
        dict(iter=10, inter=None), dict(epoch=1, intra=None),
        dict(iter=20, inter=dict(type='MGDA'))])
    hook._initial = dict(inter=dict(type='IMTLG'),
                         intra=dict(type='EqualNorm'))
    assert hook.due_config(9, 0) == hook._initial
    assert hook.due_config(10, 0)['inter'] is None
    assert hook.due_config(15, 1) == dict(inter=None, intra=None)
    assert hook.due_config(500, 3) == dict(inter=dict(type='MGDA'),
                                           intra=None)


def test_warmup_and_accumulation(tmp_path):
    cfg = _config(tmp_path, dict(COMBOS['both'], warmup_iters=6),
                  accumulative_counts=2)
    runner, before, after_training = _train(cfg)
    w_det = _history(runner, 'fuller/weight/det')
    after = _history(runner, 'fuller/cam_lid_ratio_after')
    assert (w_det[:6] == 1).all() and (w_det[6:] < 1).all()
    assert abs(after[:6] - 1).min() > 1e-3 and abs(after[6:] - 1).max() < 1e-5
    assert after_training < 0.9 * before  # 12 optimizer steps only


def test_hook_switches_levels(tmp_path):
    hook = dict(type='GradientCalibrationHook', interval=8, switches=[
        dict(iter=5, inter=None),
        dict(epoch=2, intra=None, inter=dict(type='MGDA')),
    ])
    cfg = _config(tmp_path, COMBOS['both'], hook=hook)
    cfg.visualizer.vis_backends = [dict(type='TensorboardVisBackend')]
    runner = _train(cfg)[0]
    w_det = _history(runner, 'fuller/weight/det')
    after = _history(runner, 'fuller/cam_lid_ratio_after')
    before = _history(runner, 'fuller/cam_lid_ratio_before')
    assert (w_det[:5] < 1).all() and (w_det[5:16] == 1).all()
    assert (w_det[16:] <= 1).all() and (w_det[16:] < 1).any()
    assert abs(after[:16] - 1).max() < 1e-5
    assert (after[16:] == before[16:]).all()
    assert runner.optim_wrapper.calibration_cfg['intra'] is None
    # The hook's scalars reached TensorBoard.
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    events = list(tmp_path.glob('*/vis_data/events.out.tfevents.*'))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    steps = [e.step for e in acc.Scalars('fuller/weight/det')]
    assert steps == [8, 16, 24]
    # With a plain OptimWrapper the hook is idle, unless asked to switch.
    cfg = _config(tmp_path / 'plain', COMBOS['both'], epochs=1,
                  wrapper='OptimWrapper')
    cfg.optim_wrapper.pop('calibration')
    _train(cfg)
    cfg.custom_hooks = [hook]
    with pytest.raises(TypeError, match='FullerOptimWrapper'):
        _train(cfg)
    with pytest.raises(ValueError, match='exactly one of iter/epoch'):
        from fuller.engine import GradientCalibrationHook
        GradientCalibrationHook(switches=[dict(iter=1, epoch=2, inter=None)])


def test_bf16_autocast_on_cpu(tmp_path):
    # No device_type: autocast follows the model (CPU here; on a GPU machine
    # the Runner puts the model on CUDA and the same checks hold there).
    runner, before, after_training = _train(
        _config(tmp_path, COMBOS['both'], wrapper='FullerAmpOptimWrapper',
                dtype='bfloat16'))
    wrapper = runner.optim_wrapper
    assert isinstance(wrapper, FullerAmpOptimWrapper)
    assert wrapper.device_type == model_device_type(runner.model)
    assert wrapper.loss_scaler is None
    loss = torch.as_tensor(_history(runner, 'train/loss'))
    assert torch.isfinite(loss).all()
    assert after_training < 0.8 * before
    ratio = _history(runner, 'fuller/cam_lid_ratio_after')
    assert abs(ratio - 1).max() < 1e-2  # bfloat16 gradients
    # The forward pass really runs in bfloat16 under the wrapper's context.
    model = runner.model
    device = next(model.parameters()).device
    inputs = dict(camera=torch.randn(1, 3, 8, 8, device=device),
                  lidar=torch.randn(1, 2, 8, 8, device=device))
    with wrapper.optim_context(model):
        assert model(inputs)['det'].dtype == torch.bfloat16


def test_autocast_device_follows_the_model(monkeypatch):
    """A CPU model gets CPU autocast even where CUDA is available (the
    wrapper must not ask torch.cuda.is_available())."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    model = ToyFusionModel(channels=4)
    wrapper = FullerAmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert wrapper.device_type is None  # not guessed before the model is seen
    inputs = dict(camera=torch.randn(2, 3, 8, 8),
                  lidar=torch.randn(2, 2, 8, 8))
    with wrapper.optim_context(model):
        out = model(inputs)
    assert wrapper.device_type == 'cpu'
    assert wrapper.cast_dtype == torch.bfloat16 and wrapper.loss_scaler is None
    assert out['det'].dtype == torch.bfloat16
    wrapper.update_params(sum(o.float().pow(2).mean() for o in out.values()))
    # An explicit device that contradicts the model is explained.
    other = FullerAmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        device_type='cuda')
    with pytest.raises(RuntimeError, match='the model is on'):
        with other.optim_context(model):
            pass


def test_fp16_scaler_state_resumes_before_first_step():
    """Resume loads the optimizer state before the model's device is known:
    the loss-scaler state must survive until the scaler exists."""
    def wrapper_for(model):
        return FullerAmpOptimWrapper(
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            dtype='float16', loss_scale=dict(init_scale=512.0))
    model = ToyFusionModel(channels=4)
    saved = wrapper_for(model)
    with saved.optim_context(model):
        out = model(dict(camera=torch.randn(2, 3, 8, 8),
                         lidar=torch.randn(2, 2, 8, 8)))
    saved.update_params(sum(o.float().pow(2).mean() for o in out.values()))
    state = saved.state_dict()
    resumed = wrapper_for(model)
    resumed.load_state_dict(state)
    assert resumed.state_dict()['loss_scaler'] == state['loss_scaler']
    with resumed.optim_context(model):
        pass
    assert resumed.loss_scaler.get_scale() == saved.loss_scaler.get_scale()


def test_fp16_grad_scaler_skips_overflow():
    """float16 + GradScaler: an overflowing gradient passes the junctions
    untouched, the scaler sees it and skips the step."""
    model = ToyFusionModel(channels=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    wrapper = FullerAmpOptimWrapper(
        optimizer=opt, dtype='float16', device_type='cpu',
        loss_scale=dict(init_scale=2.0**60))
    inputs = dict(camera=torch.randn(2, 3, 8, 8),
                  lidar=torch.randn(2, 2, 8, 8))
    before = [p.detach().clone() for p in model.parameters()]
    with wrapper.optim_context(model):
        out = model(inputs)
    loss = sum(o.float().pow(2).mean() for o in out.values())
    wrapper.update_params(loss)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert wrapper.loss_scaler.get_scale() < 2.0**60
    assert 'loss_scaler' in wrapper.state_dict()


def _ddp_worker(rank, port, work_dir, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                      RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2')
    torch.set_num_threads(1)
    torch.distributed.init_process_group('gloo', rank=rank, world_size=2)
    # the closing order of tools/train.py (no rank aborts at exit)
    with process_group_closed_at_end():
        result = {}
        for sync in (True, False):
            cfg = _config(Path(work_dir) / f'sync{sync}', COMBOS['both'],
                          epochs=1)
            cfg.optim_wrapper.calibration['sync'] = sync
            cfg.launcher = 'pytorch'
            # CPU DDP: no device ids (mmengine passes [LOCAL_RANK] otherwise)
            cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                                         device_ids=None)
            cfg.experiment_name = f'ddp_sync{sync}'
            runner = _train(cfg)[0]
            model = runner.model.module
            result[sync] = dict(
                weights=_history(runner, 'fuller/weight/det').tolist(),
                ratio=_history(runner, 'fuller/cam_lid_ratio_before').tolist(),
                params={k: v.clone()
                        for k, v in model.state_dict().items()})
            del runner, model
        torch.save(result, f'{out}_{rank}.pth')


def test_ddp_sync_gives_identical_weights(tmp_path, monkeypatch):
    # Two gloo ranks on CPU, even on a one-GPU machine (the spawned workers
    # read the environment at start).
    for key, value in cpu_ranks_env(2).items():
        monkeypatch.setenv(key, value)
    out = str(tmp_path / 'result')
    mp.spawn(_ddp_worker, args=(free_port(), str(tmp_path), out), nprocs=2)
    r0, r1 = (torch.load(f'{out}_{r}.pth', weights_only=False)
              for r in (0, 1))
    for sync in (True, False):
        for key, value in r0[sync]['params'].items():
            assert torch.equal(value, r1[sync]['params'][key]), key
    # sync=True: every rank calibrates with the same (global) statistics.
    assert r0[True]['weights'] == r1[True]['weights']
    assert r0[True]['ratio'] == r1[True]['ratio']
    # sync=False: each rank calibrates its own micro-batch.
    assert r0[False]['weights'] != r1[False]['weights']
