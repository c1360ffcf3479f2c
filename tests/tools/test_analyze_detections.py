"""tools/analyze_detections.py on the session's synthetic nuScenes set, with
predictions made from its own ground truth: exact ones must be found and
score AP 1, ones moved beyond the match distance must be found nowhere."""
import json

import pytest

from fuller.testing.tools import load_tool


def _write_predictions(root: str, version: str, split: str, path: str,
                       toward_ego: float = 0.0, name_map=None) -> None:
    """Write a results_nusc.json holding every ground-truth box of the
    split, moved ``toward_ego`` m towards the ego vehicle (the devkit drops
    predictions beyond each class's range, so a small move never leaves
    it), classes renamed by ``name_map``."""
    import numpy as np
    from nuscenes import NuScenes
    from nuscenes.eval.common.loaders import add_center_dist, load_gt
    from nuscenes.eval.detection.data_classes import DetectionBox
    nusc = NuScenes(version, root, verbose=False)
    gt = add_center_dist(nusc, load_gt(nusc, split, DetectionBox,
                                       verbose=False))
    results = {}
    for token in gt.sample_tokens:
        results[token] = []
        for box in gt[token]:
            entry = box.serialize()
            to_box = np.array(box.ego_translation[:2], float)
            dist = np.linalg.norm(to_box)
            assert dist > 0.5  # the ego position is known
            move = -toward_ego * to_box / dist
            entry['translation'] = [box.translation[0] + move[0],
                                    box.translation[1] + move[1],
                                    box.translation[2]]
            name = (name_map or {}).get(box.detection_name,
                                        box.detection_name)
            entry.update(detection_name=name, detection_score=0.9,
                         attribute_name='')
            results[token].append(entry)
    meta = dict(use_camera=True, use_lidar=True, use_radar=False,
                use_map=False, use_external=False)
    with open(path, 'w') as f:
        # numpy scalars in the devkit's boxes -> plain numbers
        json.dump(dict(meta=meta, results=results), f,
                  default=lambda v: v.tolist())


@pytest.fixture(scope='module')
def tool():
    return load_tool('analyze_detections')


def _found_lines(text: str):
    """The share column of the distance and LiDAR-point tables."""
    return [line for line in text.splitlines() if ' = ' in line]


def test_exact_predictions_are_all_found(tool, synthetic_nuscenes, tmp_path,
                                         capsys):
    path = str(tmp_path / 'results_nusc.json')
    _write_predictions(synthetic_nuscenes.root, synthetic_nuscenes.version,
                       'mini_val', path)
    assert tool.main([path, '--data-root', synthetic_nuscenes.root]) == 0
    text = capsys.readouterr().out
    shares = _found_lines(text)
    assert shares and all(line.endswith('= 1.00') for line in shares), text
    ap_lines = [line.split() for line in text.splitlines()
                if line.startswith('  ') and len(line.split()) == 5]
    # every class with boxes in the split scores AP 1 at every threshold
    present = [f for f in ap_lines if f[1:] != ['0.00'] * 4]
    assert present and all(f[1:] == ['1.00'] * 4 for f in present), text


def test_moved_and_renamed_predictions(tool, synthetic_nuscenes, tmp_path,
                                       capsys):
    """Moved within the match distance, every box is found; moved 1 km
    further out, none; renamed, the other class is named at its place."""
    root, version = synthetic_nuscenes.root, synthetic_nuscenes.version
    near = str(tmp_path / 'near.json')
    _write_predictions(root, version, 'mini_val', near, toward_ego=1.5)
    tool.main([near, '--data-root', root, '--match-dist', '2'])
    shares = _found_lines(capsys.readouterr().out)
    assert shares and all(line.endswith('= 1.00') for line in shares)

    far = str(tmp_path / 'far.json')
    _write_predictions(root, version, 'mini_val', far, toward_ego=-1000.0)
    tool.main([far, '--data-root', root])
    text = capsys.readouterr().out
    shares = _found_lines(text)
    assert shares and all(' 0 / ' in line for line in shares), text

    renamed = str(tmp_path / 'renamed.json')
    _write_predictions(root, version, 'mini_val', renamed,
                       name_map=dict(car='truck'))
    tool.main([renamed, '--data-root', root])
    car = [line for line in capsys.readouterr().out.splitlines()
           if line.strip().startswith('car ')][-1]
    assert 'truck' in car and car.split()[1].startswith('0/'), car


def test_bad_input_is_one_line(tool, synthetic_nuscenes, tmp_path):
    with pytest.raises(SystemExit) as exc:
        tool.main([str(tmp_path / 'missing.json'), '--data-root',
                   synthetic_nuscenes.root])
    assert 'jsonfile_prefix' in str(exc.value)
    # predictions of the val split, analysed as the train split
    path = str(tmp_path / 'results_nusc.json')
    _write_predictions(synthetic_nuscenes.root, synthetic_nuscenes.version,
                       'mini_val', path)
    with pytest.raises(SystemExit) as exc:
        tool.main([path, '--data-root', synthetic_nuscenes.root,
                   '--split', 'train'])
    message = str(exc.value)
    assert '--split' in message and '\n' not in message
    with pytest.raises(SystemExit) as exc:
        tool.main([path, '--data-root', str(tmp_path)])
    assert 'table folder' in str(exc.value)
