"""tools/train.py repeats itself: two runs of one seed on one machine end
with the same weights, with loader workers that augment (numpy and torch
random draws in the workers, re-created every epoch), and another seed
ends elsewhere. Toy config, CPU."""
import torch

from fuller.testing.tools import TOY_CONFIG

#: 2 loader workers (not persistent: re-created each epoch), augmentation on
AUGMENTED = ('train_dataloader.num_workers=2', 'train_dataloader.persistent_workers=False',
             'train_dataloader.dataset.augment=0.5')


def _train(tool, work, seed):
    tool('tools/train.py', TOY_CONFIG, '--work-dir', work, '--seed', str(seed),
         '--cfg-options', *AUGMENTED, timeout=600)
    import fuller  # noqa: F401 (registers mmengine's checkpoint types as safe)
    return torch.load(work / 'params_rank0.pth', map_location='cpu')


def test_same_seed_same_weights(tool, tmp_path):
    first = _train(tool, tmp_path / 'a', seed=3)
    again = _train(tool, tmp_path / 'b', seed=3)
    other = _train(tool, tmp_path / 'c', seed=4)
    assert first.keys() == again.keys()
    differ = [k for k in first if not torch.equal(first[k], again[k])]
    assert not differ, f'same seed, different weights: {differ}'
    assert any(not torch.equal(first[k], other[k]) for k in first), \
        'another seed gave the same weights: the seed does not reach the run'
