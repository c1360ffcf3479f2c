"""The multi-task camera + LiDAR BEVFusion detector of FULLER-3D."""
import math
from typing import Dict, List, Optional, Tuple

import torch
from mmdet3d.models.detectors import Base3DDetector
from torch import Tensor

from ..calibration import ModalityJunction, TaskJunction
from ..registry import MODELS


#: the modalities a fused model can be run without (``drop_modality``)
MODALITIES = ('camera', 'lidar')
#: the parts of each sensor's branch, up to its BEV feature
BRANCH_MODULES = dict(
    camera=('img_backbone', 'img_neck', 'view_transform'),
    lidar=('pts_voxel_encoder', 'pts_middle_encoder'))


def configured_modalities(model_cfg: dict) -> Tuple[str, ...]:
    """The sensors a ``FullerBEVFusion`` config has a branch for, in
    ``MODALITIES`` order: a branch exists when its first module is set."""
    return tuple(m for m in MODALITIES
                 if model_cfg.get(BRANCH_MODULES[m][0]))


def _build(cfg: Optional[dict]):
    """Build a part from its config; None (switched off) stays None."""
    return MODELS.build(cfg) if cfg else None


def _setting(module) -> str:
    """``Type (config entry)`` of a module that reports ``bev_shape``."""
    what = getattr(module, 'bev_shape_setting', None)
    return f'{type(module).__name__} ({what})' if what else \
        type(module).__name__


def _channels_mismatch(what: str, got, where: str, want) -> ValueError:
    return ValueError(f'channel mismatch: {what} is {got} but {where} is '
                      f'{want}; make them equal in the model config.')


def _decoder_scale(pts_backbone: dict,
                    pts_neck: Optional[dict]) -> Optional[Tuple[float, str]]:
    """(scale, how) of the decoder's output grid against the BEV grid for a
    SECOND-style backbone (``layer_strides``) and a SECONDFPN-style neck
    (``upsample_strides``: every level is brought to level 0's stride
    divided by its first entry); None for decoders without them."""
    strides = (pts_backbone or {}).get('layer_strides')
    if not strides:
        return None
    if not pts_neck:  # the last level is read
        return 1 / math.prod(strides), \
            f'pts_backbone.layer_strides={list(strides)}'
    ups = pts_neck.get('upsample_strides')
    if not ups:
        return None
    return ups[0] / strides[0], (f'pts_backbone.layer_strides[0]='
                                 f'{strides[0]}, pts_neck.upsample_strides'
                                 f'[0]={ups[0]}')


@MODELS.register_module()
class FullerBEVFusion(Base3DDetector):
    """BEVFusion with a detection head and a BEV map segmentation head.

    Data flow (shapes for batch B, N cameras)::

        imgs (B,N,3,H,W) -> img_backbone -> img_neck -> view_transform
                                                     -> F_cam (B,Cc,X,Y)
        voxels -> pts_voxel_encoder -> pts_middle_encoder -> F_lid (B,Cl,X,Y)
        modality_junction([F_cam, F_lid]) -> fusion_layer -> pts_backbone
            -> pts_neck -> Z (B,C,X',Y')
        task_junction(Z) -> {'det': Z -> bbox_head, 'seg': Z -> seg_head}

    Either modality (``img_backbone``+``view_transform`` or
    ``pts_voxel_encoder``+``pts_middle_encoder``) and either task
    (``bbox_head``, ``seg_head``) may be ``None``. The junctions are identity
    in the forward pass; ``FullerOptimWrapper`` arms them to calibrate the
    gradients in the backward pass. Losses come back prefixed by task
    (``det.loss_*``, ``seg.loss_*``).

    Missing sensors. ``drop_modality`` ('camera' or 'lidar') runs a fused
    model without one sensor, as the robustness benchmarks' "missing camera
    / missing LiDAR" case: that branch does not run (its inputs are never
    read) and the fuser receives zeros in place of its BEV feature.
    ``modality_dropout`` is the training-time counterpart (robust fusion
    training): each sample's camera feature is zeroed with probability
    ``camera``, else its LiDAR feature with probability ``lidar``, never
    both.

    Args:
        img_neck_level: which neck output level feeds the view transform.
        use_junctions: place the junctions (default); False gives a plain
            network that no calibration can reach.
        drop_modality: None (both sensors), 'camera' or 'lidar': the sensor
            the model runs without, in training and inference.
        modality_dropout: ``dict(camera=p_c, lidar=p_l)``, per-sample
            probabilities (``p_c + p_l <= 1``) of zeroing a branch's
            feature in training; None: off.
        frozen_branch: ``dict(checkpoint=PATH)``: the unimodal probe. The
            branch of this (single-sensor) model is loaded from another
            model's checkpoint in ``init_weights`` and frozen (no gradient,
            BatchNorm statistics fixed), so only the decoder and heads
            train on what that branch learned.
    """

    def __init__(self,
                 data_preprocessor: Optional[dict] = None,
                 img_backbone: Optional[dict] = None,
                 img_neck: Optional[dict] = None,
                 view_transform: Optional[dict] = None,
                 pts_voxel_encoder: Optional[dict] = None,
                 pts_middle_encoder: Optional[dict] = None,
                 fusion_layer: Optional[dict] = None,
                 pts_backbone: Optional[dict] = None,
                 pts_neck: Optional[dict] = None,
                 bbox_head: Optional[dict] = None,
                 seg_head: Optional[dict] = None,
                 img_neck_level: int = 0,
                 use_junctions: bool = True,
                 drop_modality: Optional[str] = None,
                 modality_dropout: Optional[Dict[str, float]] = None,
                 frozen_branch: Optional[dict] = None,
                 init_cfg=None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self._check_config(img_backbone, view_transform, pts_voxel_encoder,
                           pts_middle_encoder, fusion_layer, pts_backbone,
                           pts_neck, bbox_head, seg_head)
        self.img_backbone = _build(img_backbone)
        self.img_neck = _build(img_neck)
        self.view_transform = _build(view_transform)
        self.pts_voxel_encoder = _build(pts_voxel_encoder)
        self.pts_middle_encoder = _build(pts_middle_encoder)
        self.fusion_layer = _build(fusion_layer)
        self.pts_backbone = _build(pts_backbone)
        self.pts_neck = _build(pts_neck)
        self.bbox_head = _build(bbox_head)
        self.seg_head = _build(seg_head)
        self.img_neck_level = img_neck_level
        self.modalities = tuple(
            m for m, on in (('camera', self.with_camera),
                            ('lidar', self.with_lidar)) if on)
        self.tasks = tuple(t for t, head in (('det', self.bbox_head),
                                             ('seg', self.seg_head)) if head)
        self.modality_junction = (ModalityJunction(self.modalities)
                                  if use_junctions else None)
        self.task_junction = TaskJunction(self.tasks) if use_junctions \
            else None
        self._check_bev_grids()
        self._check_head_grids(_decoder_scale(pts_backbone, pts_neck))
        self.drop_modality = drop_modality
        self.modality_dropout = self._checked_dropout(modality_dropout)
        self.frozen_branch = dict(frozen_branch) if frozen_branch else None
        for module in self._frozen_modules():
            module.requires_grad_(False)

    # ------------------------------------------------------ unimodal probe
    def _frozen_modules(self) -> List:
        """The built branch modules ``frozen_branch`` freezes."""
        if not getattr(self, 'frozen_branch', None):
            return []
        names = [n for m in self.modalities for n in BRANCH_MODULES[m]]
        return [getattr(self, n) for n in names
                if getattr(self, n) is not None]

    def init_weights(self) -> None:
        super().init_weights()
        if not self.frozen_branch:
            return
        path = self.frozen_branch.get('checkpoint')
        if not path:
            raise ValueError(
                'frozen_branch.checkpoint is not set: pass the trained '
                'model\'s checkpoint, e.g. --cfg-options '
                'model.frozen_branch.checkpoint=work_dirs/naive/epoch_12.pth')
        from mmengine.runner import CheckpointLoader
        state = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        state = state.get('state_dict', state)
        for modality in self.modalities:
            for name in BRANCH_MODULES[modality]:
                module = getattr(self, name)
                if module is None or not module.state_dict():
                    continue  # e.g. a pillar scatter: nothing to load
                prefix = f'{name}.'
                part = {k[len(prefix):]: v for k, v in state.items()
                        if k.startswith(prefix)}
                if not part:
                    raise ValueError(
                        f'frozen_branch.checkpoint {path} has no {name} '
                        f'weights: give a checkpoint of a model with the '
                        f'{modality} branch.')
                module.load_state_dict(part, strict=True)

    def train(self, mode: bool = True):
        """As ``nn.Module.train``; a frozen branch stays in eval mode."""
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    @property
    def drop_modality(self) -> Optional[str]:
        """The sensor the model runs without (None: both run)."""
        return self._drop_modality

    @drop_modality.setter
    def drop_modality(self, modality: Optional[str]) -> None:
        if modality is not None:
            self._check_fused('drop_modality', modality)
        self._drop_modality = modality

    def _check_fused(self, option: str, modality: str) -> None:
        """A sensor can only be taken away from a model that fuses two."""
        if modality not in MODALITIES:
            raise ValueError(f'{option}={modality!r}: name one of '
                             f'{", ".join(MODALITIES)}.')
        if len(self.modalities) < 2:
            raise ValueError(
                f'{option}={modality!r} needs a camera + LiDAR model, but '
                f'this one has only the {self.modalities[0]} branch: use a '
                'fused config (e.g. configs/fuller/fuller_cpu_naive.py).')

    def _checked_dropout(self, dropout: Optional[Dict[str, float]]
                         ) -> Optional[Dict[str, float]]:
        if not dropout:
            return None
        for modality in dropout:
            self._check_fused('modality_dropout', modality)
        probs = {m: float(dropout.get(m, 0.0)) for m in MODALITIES}
        if min(probs.values()) < 0 or sum(probs.values()) > 1:
            raise ValueError(
                f'modality_dropout={dict(dropout)}: probabilities must be '
                '>= 0 and sum to at most 1 (a sample keeps at least one '
                'sensor).')
        return probs

    # ------------------------------------------------------------- checks
    @staticmethod
    def _check_config(img_backbone, view_transform, pts_voxel_encoder,
                      pts_middle_encoder, fusion_layer, pts_backbone,
                      pts_neck, bbox_head, seg_head) -> None:
        """Fail early, with the fix in the message, on an unusable config."""
        if bool(img_backbone) != bool(view_transform):
            raise ValueError('camera branch incomplete: set both img_backbone '
                             'and view_transform, or neither (LiDAR-only).')
        if bool(pts_voxel_encoder) != bool(pts_middle_encoder):
            raise ValueError('LiDAR branch incomplete: set both '
                             'pts_voxel_encoder and pts_middle_encoder, or '
                             'neither (camera-only).')
        if not img_backbone and not pts_voxel_encoder:
            raise ValueError('no input modality: configure the camera branch '
                             '(img_backbone, view_transform) and/or the LiDAR '
                             'branch (pts_voxel_encoder, pts_middle_encoder).')
        if not bbox_head and not seg_head:
            raise ValueError('missing head: set bbox_head (3D detection) '
                             'and/or seg_head (BEV map segmentation).')
        if not pts_backbone:
            raise ValueError('missing pts_backbone: the BEV decoder (e.g. '
                             'SECOND) after the fuser is required.')
        both = bool(img_backbone) and bool(pts_voxel_encoder)
        if both and not fusion_layer:
            raise ValueError('two modalities need a fusion_layer (e.g. '
                             'ConvFuser) to merge their BEV features.')
        branch = []  # output channels of each branch (None: unknown)
        if img_backbone:
            branch.append(view_transform.get('out_channels'))
        if pts_middle_encoder:
            # a pillar scatter outputs its input channels
            branch.append(pts_middle_encoder.get('in_channels') if 'Scatter'
                          in str(pts_middle_encoder.get('type')) else None)
        if fusion_layer:
            fuse_in = list(fusion_layer.get('in_channels', []))
            if len(fuse_in) != len(branch) or any(
                    b is not None and b != f for b, f in zip(branch, fuse_in)):
                raise _channels_mismatch(
                    'fusion_layer.in_channels', fuse_in,
                    'the branch outputs [camera, lidar]', branch)
            bev_channels = ('fusion_layer.out_channels',
                            fusion_layer.get('out_channels'))
        else:
            bev_channels = ('the branch output channels', branch[0])
        name, ch = bev_channels
        if ch is not None and pts_backbone.get('in_channels', ch) != ch:
            raise _channels_mismatch('pts_backbone.in_channels',
                                     pts_backbone.get('in_channels'), name,
                                     ch)
        if pts_neck:
            shared = ('sum(pts_neck.out_channels)',
                      sum(pts_neck.get('out_channels', [])))
        else:
            shared = ('pts_backbone.out_channels[-1]',
                      list(pts_backbone.get('out_channels', [None]))[-1])
        for head_name, head in (('bbox_head', bbox_head),
                                ('seg_head', seg_head)):
            if head and shared[1] and 'in_channels' in head and \
                    head['in_channels'] != shared[1]:
                raise _channels_mismatch(f'{head_name}.in_channels',
                                         head['in_channels'], *shared)

    def _check_bev_grids(self) -> None:
        """The camera and LiDAR BEV features must share one (X, Y) grid (the
        fuser concatenates them): compare the grids the built branches report
        (``bev_shape``, computed from their configs) and fail at build time,
        naming both shapes and the settings behind them."""
        if not (self.with_camera and self.with_lidar):
            return
        cam, lid = self.view_transform, self.pts_middle_encoder
        if not (hasattr(cam, 'bev_shape') and hasattr(lid, 'bev_shape')):
            return  # a custom branch that does not report its grid
        cam_shape, lid_shape = tuple(cam.bev_shape), tuple(lid.bev_shape)
        if cam_shape != lid_shape:
            raise ValueError(
                f'BEV grids differ: camera branch {cam_shape} (X, Y) from '
                f'{_setting(cam)}, LiDAR branch {lid_shape} from '
                f'{_setting(lid)}; change one of them so both grids are '
                'equal.')
        lid_ch = getattr(lid, 'out_channels', None)
        fuse_in = getattr(self.fusion_layer, 'in_channels', None)
        if lid_ch is not None and fuse_in is not None and \
                list(fuse_in)[-1] != lid_ch:
            raise _channels_mismatch('fusion_layer.in_channels[1] (LiDAR)',
                                     list(fuse_in)[-1],
                                     'the LiDAR branch output', lid_ch)

    def _check_head_grids(self, decoder: Optional[Tuple[float, str]]) -> None:
        """Each head must be configured for the grid the BEV decoder feeds
        it: the box coder's cells (or CenterHead's grid) and the seg head's
        input bounds describe the feature's grid, and a mismatch would not
        fail at run time but put every box and map cell at the wrong place.
        ``decoder`` = (output cells per BEV cell, the settings behind it);
        None: a decoder whose strides we cannot read."""
        branch = self.view_transform if self.with_camera else \
            self.pts_middle_encoder
        if decoder is None or not hasattr(branch, 'bev_shape'):
            return
        scale, how = decoder
        bev = tuple(branch.bev_shape)
        decoded = tuple(n * scale for n in bev)
        if any(abs(n - round(n)) > 1e-6 for n in decoded):
            raise ValueError(
                f'the BEV decoder cannot keep the grid {bev} (X, Y) whole: '
                f'{how} scale it by {scale:g}; change the strides or the '
                'grid.')
        decoded = tuple(int(round(n)) for n in decoded)
        for name, head in (('bbox_head', self.bbox_head),
                           ('seg_head', self.seg_head)):
            grid = getattr(head, 'input_grid', None)
            if grid is not None and tuple(grid) != decoded:
                raise ValueError(
                    f'{name} is configured for a {tuple(grid)} (X, Y) '
                    f'feature grid ({head.input_grid_setting}) but the '
                    f'decoder outputs {decoded} (the BEV grid {bev} with '
                    f'{how}); make the head match the decoder, or the '
                    'strides the head.')

    @property
    def with_camera(self) -> bool:
        return self.img_backbone is not None

    @property
    def with_lidar(self) -> bool:
        return self.pts_voxel_encoder is not None

    # ------------------------------------------------------------ features
    def extract_img_feat(self, imgs: Tensor, data_samples: List,
                         points: Optional[List[Tensor]] = None) -> Tensor:
        """(B, N, 3, H, W) images -> (B, Cc, X, Y) camera BEV feature
        (``points``: for a depth-aware view transform)."""
        if imgs.dim() != 5:
            raise ValueError('imgs must be (B, N_cam, 3, H, W), got shape '
                             f'{tuple(imgs.shape)}.')
        b, n = imgs.shape[:2]
        x = self.img_backbone(imgs.flatten(0, 1))
        if self.img_neck is not None:
            x = self.img_neck(x)
        x = x[self.img_neck_level] if isinstance(x, (list, tuple)) else x
        feats = x.view(b, n, *x.shape[1:])
        if getattr(self.view_transform, 'needs_points', False):
            return self.view_transform(feats, data_samples, points=points)
        return self.view_transform(feats, data_samples)

    def extract_pts_feat(self, voxels: Dict[str, Tensor],
                         batch_size: int) -> Tensor:
        """Voxelised points -> (B, Cl, X, Y) LiDAR BEV feature."""
        feats = self.pts_voxel_encoder(voxels['voxels'], voxels['num_points'],
                                       voxels['coors'])
        return self.pts_middle_encoder(feats, voxels['coors'], batch_size)

    def extract_feat(self, batch_inputs_dict: Dict,
                     batch_data_samples: List) -> Tensor:
        """Inputs -> Z (B, C, X', Y'), the shared BEV feature."""
        run_camera = self.with_camera and self.drop_modality != 'camera'
        run_lidar = self.with_lidar and self.drop_modality != 'lidar'
        bev = {}
        if run_camera:
            if 'imgs' not in batch_inputs_dict:
                raise KeyError('the camera branch is configured but the '
                               "inputs have no 'imgs'; load the images in "
                               'the pipeline or drop img_backbone.')
            points = batch_inputs_dict.get('points')
            if points is not None and not run_lidar:
                points = [p[:0] for p in points]  # the LiDAR is absent
            bev['camera'] = self.extract_img_feat(
                batch_inputs_dict['imgs'], batch_data_samples, points)
        if run_lidar:
            if 'voxels' not in batch_inputs_dict:
                raise KeyError('the LiDAR branch is configured but the inputs '
                               "have no 'voxels'; set voxel=True (and "
                               'voxel_layer) in data_preprocessor.')
            bev['lidar'] = self.extract_pts_feat(batch_inputs_dict['voxels'],
                                                 len(batch_data_samples))
        bev = self._absent_as_zeros(bev)
        if self.training and self.modality_dropout:
            bev = self._drop_per_sample(bev)
        if self.modality_junction is not None:
            bev = self.modality_junction(bev)
        x = self.fusion_layer(bev) if self.fusion_layer is not None \
            else bev[0]
        x = self.pts_backbone(x)
        if self.pts_neck is not None:
            x = self.pts_neck(x)
        return x[0] if isinstance(x, (list, tuple)) else x

    def _absent_as_zeros(self, bev: Dict[str, Tensor]) -> List[Tensor]:
        """The branch features in ``self.modalities`` order, zeros (B, C, X,
        Y) for the dropped sensor: its channels as the fuser expects them,
        the grid and dtype of the branch that ran."""
        present = next(iter(bev.values()))
        out = []
        for i, modality in enumerate(self.modalities):
            if modality in bev:
                out.append(bev[modality])
            else:
                channels = list(self.fusion_layer.in_channels)[i]
                out.append(present.new_zeros(present.shape[0], channels,
                                             *present.shape[2:]))
        return out

    def _drop_per_sample(self, bev: List[Tensor]) -> List[Tensor]:
        """Modality dropout: one uniform draw per sample picks which branch
        feature (if any) is zeroed; the graph stays whole, so every
        parameter still gets a (for that sample zero) gradient."""
        u = torch.rand(bev[0].shape[0], device=bev[0].device)
        low = 0.0
        out = []
        for feat, modality in zip(bev, self.modalities):
            high = low + self.modality_dropout[modality]
            keep = ~((u >= low) & (u < high))
            out.append(feat * keep.to(feat.dtype).view(-1, 1, 1, 1))
            low = high
        return out

    def _task_feats(self, batch_inputs_dict: Dict,
                    batch_data_samples: List) -> Dict[str, Tensor]:
        z = self.extract_feat(batch_inputs_dict, batch_data_samples)
        if self.task_junction is None:
            return {t: z for t in self.tasks}
        return self.task_junction(z)

    # ------------------------------------------------------- loss/predict
    def loss(self, batch_inputs_dict: Dict,
             batch_data_samples: List) -> Dict[str, Tensor]:
        """Losses of both tasks, keys prefixed ``det.`` / ``seg.``."""
        feats = self._task_feats(batch_inputs_dict, batch_data_samples)
        losses = {}
        for task, head in (('det', self.bbox_head), ('seg', self.seg_head)):
            if head is not None:
                for k, v in head.loss(feats[task], batch_data_samples).items():
                    losses[f'{task}.{k}'] = v
        return losses

    def predict(self, batch_inputs_dict: Dict,
                batch_data_samples: List) -> List:
        """Fill ``pred_instances_3d`` (detection) and ``pred_masks_bev``
        ((C_map, X, Y) probabilities) of every data sample."""
        feats = self._task_feats(batch_inputs_dict, batch_data_samples)
        if self.bbox_head is not None:
            dets = self.bbox_head.predict(feats['det'], batch_data_samples)
            self.add_pred_to_datasample(batch_data_samples, dets)
        if self.seg_head is not None:
            masks = self.seg_head.predict(feats['seg'], batch_data_samples)
            for ds, mask in zip(batch_data_samples, masks):
                ds.pred_masks_bev = mask
        return batch_data_samples

    def _forward(self, batch_inputs_dict: Dict,
                 batch_data_samples: Optional[List] = None) -> Tuple:
        """Raw head outputs ``(det_out or None, seg_logits or None)``."""
        feats = self._task_feats(batch_inputs_dict, batch_data_samples or [])
        return (self.bbox_head(feats['det']) if self.bbox_head else None,
                self.seg_head(feats['seg']) if self.seg_head else None)
