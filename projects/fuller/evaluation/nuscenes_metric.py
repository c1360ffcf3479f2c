"""nuScenes detection metric that also scores a prediction file with no box."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional

from mmdet3d.evaluation.metrics import NuScenesMetric
from mmengine.logging import MMLogger

from ..registry import METRICS

#: How far (metres, in x from the sample's ego pose) the placeholder box lies:
#: far beyond every class range of the nuScenes eval configs (<= 50 m).
PLACEHOLDER_OFFSET = 1e5


def _holds_a_box(result_path: str) -> bool:
    """Whether the nuScenes result json has at least one box. Every box has
    a ``"detection_name"`` key and nothing else in the file does, so the
    file is scanned for that key rather than parsed: with boxes, the first
    one is found near the start of a file that can be a gigabyte."""
    key = b'"detection_name"'
    tail = b''
    with open(result_path, 'rb') as f:
        while chunk := f.read(1 << 20):
            if key in tail + chunk:
                return True
            tail = chunk[-len(key):]
    return False


@METRICS.register_module()
class EmptySafeNuScenesMetric(NuScenesMetric):
    """mmdet3d's ``NuScenesMetric``, which also evaluates a model that
    predicts nothing.

    Why: nuscenes-devkit's ``NuScenesEval`` reads the class field of the
    prediction boxes from the first box it finds; a result file with no box
    in any sample (an untrained or early model, all scores under the head's
    threshold) makes it raise ``Invalid box type: None``, and with it the
    validation at the end of a short training run. nuScenes' protocol gives
    such a submission mAP 0 and NDS 0, which is what this metric reports.

    How: when the formatted file holds no box, the devkit is given a copy
    of it (next to it, so ``metrics_summary.json`` lands where it always
    does) with one placeholder box ``PLACEHOLDER_OFFSET`` metres from the
    ego vehicle. The devkit's range filter drops that box before any
    matching, so the devkit itself computes the numbers of an empty
    submission: every AP 0, TP errors 1 (nan where the devkit leaves a class
    out of a TP metric). The file at ``result_path`` is left as it is (with
    ``jsonfile_prefix`` it is the user's), and the copy is removed after.
    Anything else is ``NuScenesMetric`` unchanged.
    """

    def _evaluate_single(
            self,
            result_path: str,
            classes: Optional[List[str]] = None,
            result_name: str = 'pred_instances_3d') -> Dict[str, float]:
        if _holds_a_box(result_path):
            return super()._evaluate_single(result_path, classes, result_name)
        with open(result_path) as f:
            submission = json.load(f)  # small: no box in it
        per_sample = submission['results']
        if not per_sample:  # no sample at all: the devkit's own error
            return super()._evaluate_single(result_path, classes, result_name)

        MMLogger.get_current_instance().warning(
            f'{result_name}: no detection in any of the {len(per_sample)} '
            'evaluated samples (every score under the head\'s threshold, '
            'e.g. an untrained or early model): mAP and NDS are 0')
        token = next(iter(per_sample))
        submission['results'] = dict(
            per_sample, **{token: [self._placeholder_box(token)]})
        stem = osp.splitext(osp.basename(result_path))[0]
        copy_path = osp.join(osp.dirname(result_path),
                             f'{stem}_empty_placeholder.json')
        with open(copy_path, 'w') as f:
            json.dump(submission, f)
        try:
            return super()._evaluate_single(copy_path, classes, result_name)
        finally:
            os.remove(copy_path)

    def _placeholder_box(self, sample_token: str) -> dict:
        """A valid detection box out of range of every class in the sample
        ``sample_token`` (the ego pose is the one of the info file, which the
        devkit's LIDAR_TOP pose also is)."""
        info = next(i for i in self.data_infos if i['token'] == sample_token)
        x, y, z = (row[3] for row in info['ego2global'][:3])
        return dict(
            sample_token=sample_token,
            translation=[x + PLACEHOLDER_OFFSET, y, z],
            size=[1.0, 1.0, 1.0],
            rotation=[1.0, 0.0, 0.0, 0.0],
            velocity=[0.0, 0.0],
            detection_name=next(iter(self.eval_detection_configs.class_range)),
            detection_score=0.0,
            attribute_name='')
