import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, DistributedSampler, RandomSampler

from detframe.data import SampleKey, TrainBatchSampler, VOCDetection, build_dataloader, set_epoch, set_skip
from detframe.data.samplers import InferenceSampler
from detframe.data.synthetic import SHAPES_CLASSES
from detframe.data.transforms import build_pipeline
from detframe.engine import PipelineSwitchHook
from detframe.errors import ConfigError

YOLO_LIKE = [{"type": "Resize", "size": 96, "keep_ratio": True}, {"type": "Mosaic", "size": 96},
             {"type": "RandomAffine", "size": 96, "degrees": 5}, {"type": "MixUp", "p": 0.5},
             {"type": "Albu", "transform": "HueSaturationValue", "p": 1.0}, {"type": "RandomHorizontalFlip"},
             {"type": "Letterbox", "size": 96}]


def shapes(root, pipeline=None, split="train"):
    return VOCDetection(str(root), split, class_names=SHAPES_CLASSES, transforms=build_pipeline(pipeline))


def test_training_order_is_randomsampler_s():
    """The keyed sampler shuffles exactly as DataLoader(shuffle=True) did: same batches for the same seed."""
    for seed in (0, 5):
        g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        expected = list(BatchSampler(RandomSampler(range(23), generator=g1), 4, drop_last=True))
        keys = list(TrainBatchSampler(23, 4, g2, drop_last=True))
        assert [[k.index for k in batch] for batch in keys] == expected
        assert len({k.seed for batch in keys for k in batch}) == 20  # a seed per sample


def test_order_depends_only_on_the_seed_and_epoch():
    g = torch.Generator().manual_seed(7)
    sampler = TrainBatchSampler(23, 4, g)
    first = list(sampler)
    torch.randint(0, 10, (5,), generator=g)  # what DataLoader draws when it starts workers
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_a_resumed_epoch_sees_the_same_batches_with_persistent_workers(tiny_shapes):
    dataset = shapes(tiny_shapes, YOLO_LIKE)

    def run(epochs):
        loader = build_dataloader(dataset, 4, 2, train=True, size_divisor=32, seed=0)
        for epoch in epochs:
            loader.generator.manual_seed(epoch)  # as the runner does
            batches = [(b.image_ids, b.images) for b in loader]
        return batches

    whole, resumed = run([0, 1]), run([1])
    assert all(a[0] == b[0] and torch.equal(a[1], b[1]) for a, b in zip(whole, resumed))


def test_augmentation_is_the_same_for_any_number_of_workers(tiny_shapes):
    dataset = shapes(tiny_shapes, YOLO_LIKE)

    def epoch(workers):
        loader = build_dataloader(dataset, 4, workers, train=True, size_divisor=32, seed=3)
        loader.generator.manual_seed(3000)  # what the runner does at the start of each epoch
        return [b.images for b in loader]

    serial, parallel = epoch(0), epoch(2)
    assert len(serial) == 2 and all(torch.equal(a, b) for a, b in zip(serial, parallel))
    assert not torch.equal(serial[0][0], serial[0][1])


def test_aspect_ratio_grouping_and_multi_scale():
    g = torch.Generator().manual_seed(0)
    groups = np.array([0, 1] * 10 + [0] * 5)
    sampler = TrainBatchSampler(25, 4, g, drop_last=True, group_ids=groups, multi_scale=(100, 200))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 6
    mixed = [b for b in batches if len({groups[k.index] for k in b}) > 1]
    assert len(mixed) <= 1  # only the batch of leftovers mixes groups
    sizes = {k.size for b in batches for k in b}
    assert sizes <= {128, 160, 192} and all(len({k.size for k in b}) == 1 for b in batches)


def test_multi_scale_reaches_the_images(tiny_shapes):
    dataset = shapes(tiny_shapes, [{"type": "Letterbox", "size": 96}])
    loader = build_dataloader(dataset, 4, 0, train=True, size_divisor=32, multi_scale=[64, 128])
    for batch in loader:
        size = batch.image_sizes[0][0]
        assert size in (64, 96, 128) and batch.images.shape[-2:] == (size, size)
        assert all(float(t.boxes.max()) <= size for t in batch.targets if len(t))


def test_distributed_shards_and_set_epoch():
    dataset = list(range(10))
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        batches = TrainBatchSampler(10, 2, torch.Generator().manual_seed(0), drop_last=False, sampler=sampler,
                                    rank=rank)
        set_epoch(type("L", (), {"batch_sampler": batches, "sampler": None})(), 3)
        assert sampler.epoch == 3
        seen += [k.index for b in batches for k in b]
    assert sorted(seen) == list(range(10))
    shards = [list(InferenceSampler(10, r, 3)) for r in range(3)]
    assert shards == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # no padding: nothing evaluated twice
    with pytest.raises(ConfigError, match="initialised torch.distributed"):
        build_dataloader(dataset, 2, 0, train=True, distributed=True)


class FakeRunner:
    def __init__(self, dataset, loader, max_epochs):
        self.train_loader, self.max_epochs, self.epoch = loader, max_epochs, 0


def test_pipeline_switch_hook_turns_mosaic_off_for_the_last_epochs(tiny_shapes):
    dataset = shapes(tiny_shapes, YOLO_LIKE)
    loader = build_dataloader(dataset, 4, 0, train=True)
    runner = FakeRunner(dataset, loader, max_epochs=5)
    hook = PipelineSwitchHook(num_last_epochs=2, disable=["Mosaic", "RandomAffine", "MixUp"])
    hook.before_train(runner)
    boxes_per_epoch = []
    for runner.epoch in range(5):
        hook.before_epoch(runner)
        keys = [k for b in loader.batch_sampler for k in b]
        assert all(k.skip == (("Mosaic", "RandomAffine", "MixUp") if runner.epoch >= 3 else ()) for k in keys)
        boxes_per_epoch.append(sum(len(dataset[k].boxes) for k in keys))
    # without mosaic each sample holds its own image's boxes only
    own = sum(len(dataset.records[k.index].boxes) for b in loader.batch_sampler for k in b)
    assert boxes_per_epoch[3] == boxes_per_epoch[4] == own and boxes_per_epoch[0] > own
    with pytest.raises(ConfigError, match="'Mosaik' is not in pipeline.train. Did you mean 'Mosaic'"):
        PipelineSwitchHook(disable=["Mosaik"]).before_train(runner)
    set_skip(loader, ())
    assert loader.batch_sampler.skip == ()


def test_keys_and_plain_indices_give_the_same_sample_without_randomness(tiny_shapes):
    dataset = shapes(tiny_shapes, [{"type": "Resize", "size": 64}])
    a, b = dataset[2], dataset[SampleKey(2, 123)]
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.boxes, b.boxes)


def test_keyed_reads_in_the_main_process_leave_its_random_streams_alone(tiny_shapes):
    dataset = shapes(tiny_shapes, [{"type": "RandomHorizontalFlip", "p": 0.5},
                                   {"type": "Resize", "size": 64}])
    np.random.seed(7)
    expected = np.random.random(3)
    np.random.seed(7)
    first = dataset[SampleKey(1, 99)]
    assert np.array_equal(np.random.random(3), expected)  # numpy's stream as if nothing was loaded
    np.testing.assert_array_equal(dataset[SampleKey(1, 99)].image, first.image)  # and the sample reproducible


def test_your_own_dataset_gets_keys_seeded_like_ours():
    """A dataset that knows nothing of SampleKeys is wrapped in KeyedDataset by the training loader: each
    sample is a function of its key's seed (torch's generator included), and the main process's random
    streams are left as they were."""
    from torch.utils.data import Dataset

    from detframe.data import KeyedDataset

    class Noise(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, index):
            return torch.tensor([index, float(np.random.random()), float(torch.rand(()))])

    loader = build_dataloader(Noise(), 2, 0, train=True, seed=3)
    assert isinstance(loader.dataset, KeyedDataset) and len(loader.dataset) == 6
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    first = [loader.dataset[k] for batch in loader.batch_sampler for k in batch]
    assert torch.equal(torch.rand(2), expected)  # torch's stream as if nothing was loaded
    again = [loader.dataset[k] for batch in loader.batch_sampler for k in batch]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert len({float(s[2]) for s in first}) == 6  # different keys, different draws
