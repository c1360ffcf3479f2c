"""A tiny two-modality, two-task model and dataset for engine and tool tests.

The toy mirrors the real network's gradient topology at a few hundred
parameters: two modality branches meet in a :class:`ModalityJunction`, a fuser
and a shared layer produce the shared feature, a :class:`TaskJunction` fans it
out to a "det" and a "seg" head. Targets are fixed random functions of the
inputs, so losses really decrease under training.
"""

import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..calibration import ModalityJunction, TaskJunction
from ..registry import DATASETS, HOOKS, MODELS

#: Input channels of each toy modality.
TOY_MODALITY_CHANNELS = {'camera': 3, 'lidar': 2}
#: Output channels of each toy task head.
TOY_TASK_CHANNELS = {'det': 1, 'seg': 2}


@DATASETS.register_module()
class ToyMultiTaskDataset(Dataset):
    """Random two-modality inputs with targets computed by a fixed teacher.

    The det target depends mostly on the LiDAR input, the seg target mostly on
    the camera input, like the real tasks.

    Args:
        num_samples: dataset length.
        size: spatial side S of every map.
        seed: seed of the inputs and of the teacher.
        augment: standard deviation of a noise added to every item's camera
            input when it is read, drawn from numpy's global generator, and
            a horizontal flip of both inputs and targets with probability
            1/2, drawn from torch's (as mmdet3d's transforms draw); 0: off.
            Lets tests see how loader workers are seeded.

    Item: ``dict(inputs=dict(camera=(3,S,S), lidar=(2,S,S)),
    data_samples=dict(det=(1,S,S), seg=(2,S,S)))``.
    """

    def __init__(self, num_samples: int = 32, size: int = 16,
                 seed: int = 0, augment: float = 0.0) -> None:
        self.augment = augment
        gen = torch.Generator().manual_seed(seed)
        n, s = num_samples, size
        self.camera = torch.randn(n, 3, s, s, generator=gen)
        self.lidar = torch.randn(n, 2, s, s, generator=gen)
        mix_det = torch.randn(1, 5, 1, 1, generator=gen)
        mix_seg = torch.randn(2, 5, 1, 1, generator=gen)
        scale = torch.tensor([0.2, 0.2, 0.2, 1.0, 1.0]).view(1, 5, 1, 1)
        both = torch.cat([self.camera, self.lidar], dim=1)
        self.det = F.conv2d(both * scale, mix_det)
        seg_scale = torch.tensor([1.0, 1.0, 1.0, 0.2, 0.2]).view(1, 5, 1, 1)
        self.seg = (F.conv2d(both * seg_scale, mix_seg) > 0).float()
        # Lets datasets' metainfo consumers (CheckpointHook, visualiser) work.
        self.metainfo = dict(classes=('det', 'seg'))

    def __len__(self) -> int:
        return self.camera.shape[0]

    def __getitem__(self, idx: int) -> dict:
        item = [self.camera[idx], self.lidar[idx], self.det[idx],
                self.seg[idx]]
        if self.augment:
            noise = np.random.normal(0.0, self.augment, item[0].shape)
            item[0] = item[0] + torch.from_numpy(noise).float()
            if torch.rand(()) < 0.5:
                item = [x.flip(-1) for x in item]
        camera, lidar, det, seg = item
        return dict(inputs=dict(camera=camera, lidar=lidar),
                    data_samples=dict(det=det, seg=seg))


@MODELS.register_module()
class ToyFusionModel(BaseModel):
    """Two branches -> modality junction -> fuser -> shared layer -> task
    junction -> two heads.

    Args:
        channels: width C of every hidden layer.
        modalities: subset of ``('camera', 'lidar')``.
        tasks: subset of ``('det', 'seg')``.
        with_junctions: ``False`` builds the same network without junctions
            (to test the optimizer wrapper's error for such models).
    """

    def __init__(self,
                 channels: int = 8,
                 modalities: Sequence[str] = ('camera', 'lidar'),
                 tasks: Sequence[str] = ('det', 'seg'),
                 with_junctions: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.modalities = tuple(modalities)
        self.tasks = tuple(tasks)
        self.branches = nn.ModuleDict({
            m: nn.Conv2d(TOY_MODALITY_CHANNELS[m], channels, 3, padding=1)
            for m in self.modalities
        })
        self.fuser = nn.Conv2d(channels * len(self.modalities), channels, 1)
        self.shared = nn.Conv2d(channels, channels, 3, padding=1)
        self.heads = nn.ModuleDict({
            t: nn.Conv2d(channels, TOY_TASK_CHANNELS[t], 1) for t in self.tasks
        })
        self.modality_junction = (
            ModalityJunction(self.modalities) if with_junctions else None)
        self.task_junction = TaskJunction(self.tasks) if with_junctions else None

    def _shared_feature(self, inputs: Dict[str, Tensor]) -> Tensor:
        feats = [torch.relu(self.branches[m](inputs[m])) for m in self.modalities]
        if self.modality_junction is not None:
            feats = self.modality_junction(feats)
        return torch.relu(self.shared(torch.relu(self.fuser(torch.cat(feats, 1)))))

    def _head_outputs(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        z = self._shared_feature(inputs)
        per_task = (self.task_junction(z) if self.task_junction is not None
                    else {t: z for t in self.tasks})
        return {t: self.heads[t](per_task[t]) for t in self.tasks}

    def forward(self,
                inputs: Dict[str, Tensor],
                data_samples: Optional[Dict[str, Tensor]] = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], List]:
        outs = self._head_outputs(inputs)
        if mode == 'loss':
            losses = {}
            if 'det' in outs:
                losses['det.loss_reg'] = F.mse_loss(outs['det'], data_samples['det'])
            if 'seg' in outs:
                losses['seg.loss_mask'] = F.binary_cross_entropy_with_logits(
                    outs['seg'], data_samples['seg'])
            return losses
        if mode == 'predict':
            batch = next(iter(outs.values())).shape[0]
            return [BaseDataElement(**{t: o[i] for t, o in outs.items()})
                    for i in range(batch)]
        return outs


@HOOKS.register_module()
class DumpParametersHook(Hook):
    """Saves every rank's final parameters to ``<work_dir>/params_rank{R}.pth``
    so tests can check that distributed ranks ended identical."""

    def after_run(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        torch.save(state, osp.join(runner.work_dir, f'params_rank{get_rank()}.pth'))
