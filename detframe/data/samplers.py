"""Samplers: which images make each batch, the per-sample facts that must be decided in the main
process to survive persistent workers and resumes, and the rest of an epoch after a resume.

The training batch sampler yields `SampleKey`s rather than bare indices. Each key carries the
sample's random seed, a function of (seed, epoch, dataset index) alone, so augmentation is the same
for any number of workers, with or without persistent workers, for 1 or N processes with the same
total batch, and after a resume. This is the one mechanism of per-sample determinism: a
`DetectionDataset` reads its keys under `seeded(key.seed)`; any other dataset is wrapped in
`KeyedDataset`, which does the same. A key also carries the batch's input size (multi-scale training)
and the names of transforms to skip (`PipelineSwitchHook` turns mosaic off for the last epochs;
workers learn it from the keys).
"""
from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info


class SampleKey(NamedTuple):
    """What `DetectionDataset.__getitem__` receives from the training sampler."""

    index: int
    seed: int | None = None
    # rescale the sample so its longer side is this (multi-scale); None: as the pipeline made it
    size: int | None = None
    skip: tuple[str, ...] = ()  # names of transforms to leave out


class TrainBatchSampler(Sampler[list[SampleKey]]):
    """Shuffled batches of `SampleKey`s.

    Args:
        num_samples: the dataset's length.
        batch_size: images per batch (per process when distributed).
        generator: the DataLoader's generator: the permutation (as RandomSampler draws it from a freshly
            seeded generator), the seeds and the multi-scale sizes all come from its seed and the epoch.
        drop_last: drop the last incomplete batch.
        sampler: an index sampler to take the order from instead (a DistributedSampler).
        group_ids: [num_samples] group of each image (aspect ratio: 0 landscape, 1 portrait); batches
            are then formed within a group as far as possible (torchvision's GroupedBatchSampler, whose
            leftovers are batched together at the end so the number of batches does not change).
        multi_scale: (min, max): each batch gets a random size in this range, a multiple of `step`.
        step: the multi-scale size step.
        rank: this process's rank.
    """

    def __init__(self, num_samples: int, batch_size: int, generator: torch.Generator, drop_last: bool = True,
                 sampler: Sampler[int] | None = None, group_ids: Sequence[int] | None = None,
                 multi_scale: Sequence[int] | None = None, step: int = 32, rank: int = 0) -> None:
        self.num_samples, self.batch_size, self.generator = num_samples, batch_size, generator
        self.drop_last, self.sampler, self.rank = drop_last, sampler, rank
        self.group_ids = None if group_ids is None else np.asarray(group_ids)
        self.sizes = None
        if multi_scale is not None:
            lo, hi = int(multi_scale[0]), int(multi_scale[1])
            self.sizes = list(range(math.ceil(lo / step) * step, hi + 1, step)) or [lo]
        self.epoch = 0
        self.skip: tuple[str, ...] = ()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _count(self) -> int:
        return len(self.sampler) if self.sampler is not None else self.num_samples

    def __len__(self) -> int:
        n = self._count()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        # A private generator from the seed last given to the loader's one (the runner reseeds it from
        # (seed, epoch) every epoch) and the epoch of set_epoch: the draws the DataLoader itself makes from
        # its generator (a worker seed, only when it starts workers) then cannot shift the order, so a
        # resumed run with persistent workers sees the same order as an uninterrupted one.
        # The permutation is the one DistributedSampler draws (randperm from a generator seeded with seed +
        # epoch); the sample seeds and sizes come after it from a second such generator, so that they do not
        # depend on whether this process drew the permutation itself: every rank gets the same `base`.
        seed = self.generator.initial_seed() + self.epoch
        if self.sampler is not None:
            indices = list(self.sampler)
        else:
            indices = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(seed)).tolist()
        generator = torch.Generator().manual_seed(seed)
        base = int(torch.randint(0, 2**62, (1,), generator=generator))
        batches = self._batches(indices)
        sizes = [None] * len(batches)
        if self.sizes is not None:
            picks = torch.randint(0, len(self.sizes), (len(batches),), generator=generator).tolist()
            sizes = [self.sizes[p] for p in picks]
        # Each sample's seed is a function of (seed, epoch, dataset index): N processes with batch B see the
        # same augmented samples as one process with batch N x B (DistributedSampler splits the same
        # permutation), which is what makes a 2-process run reproduce a 1-process one.
        for batch, size in zip(batches, sizes):
            seeds = [int(np.random.SeedSequence([base, self.epoch, int(i)]).generate_state(1)[0])
                     for i in batch]
            yield [SampleKey(int(i), s, size, self.skip) for i, s in zip(batch, seeds)]

    def _batches(self, indices: list[int]) -> list[list[int]]:
        bs = self.batch_size
        if self.group_ids is None:
            batches = [indices[i:i + bs] for i in range(0, len(indices), bs)]
        else:
            batches, buckets = [], {}
            for i in indices:
                bucket = buckets.setdefault(int(self.group_ids[i]), [])
                bucket.append(i)
                if len(bucket) == bs:
                    batches.append(bucket)
                    buckets[int(self.group_ids[i])] = []
            rest = [i for bucket in buckets.values() for i in bucket]
            batches += [rest[i:i + bs] for i in range(0, len(rest), bs)]
        if self.drop_last and batches and len(batches[-1]) < bs:
            batches.pop()
        return batches


class InferenceSampler(Sampler[int]):
    """This rank's contiguous share of the indices, without padding (DistributedSampler repeats
    images to even out the shards, which would count them twice in an evaluation)."""

    def __init__(self, num_samples: int, rank: int, world_size: int) -> None:
        per_rank = math.ceil(num_samples / world_size)
        self.indices = range(min(rank * per_rank, num_samples), min((rank + 1) * per_rank, num_samples))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


@contextlib.contextmanager
def seeded(seed: int | None, torch_rng: bool = False) -> Iterator[None]:
    """`random` and `numpy.random` (and with `torch_rng` also torch's CPU generator) seeded with `seed`
    inside the block; nothing when `seed` is None.

    A loader worker's generators are ours to reset; in the main process (num_workers=0) the training
    code's own random streams must not depend on data loading, so they are put back afterwards.
    detframe's transforms draw from `random` and `numpy` only (albumentations' generators are reseeded
    from numpy, data/transforms/albu.py), so torch is left alone unless asked: seeding it costs ~85 us a
    sample and saving and restoring its state ~250 us more, 5% of a small model's training step.
    """
    if seed is None:
        yield
        return
    in_worker = get_worker_info() is not None
    saved = None if in_worker else (random.getstate(), np.random.get_state())
    forked = torch.random.fork_rng(devices=[], enabled=torch_rng and not in_worker)
    with forked:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        if torch_rng:
            torch.manual_seed(seed)
        try:
            yield
        finally:
            if saved is not None:
                random.setstate(saved[0])
                np.random.set_state(saved[1])


class KeyedDataset(Dataset):
    """Reads `dataset[key.index]` under `seeded(key.seed, torch_rng=True)`: a dataset that knows nothing
    of `SampleKey`s (your own, which may draw from torch too) gets the same per-sample determinism as a
    DetectionDataset."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey | int) -> Any:
        if not isinstance(key, SampleKey):
            return self.dataset[key]
        with seeded(key.seed, torch_rng=True):
            return self.dataset[key.index]

    def __getattr__(self, name: str) -> Any:  # dataset attributes (class_names, ...) stay reachable
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


# DataLoader arguments carried over when a loader is rebuilt around another sampler.
_LOADER_ARGS = ("num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn",
                "multiprocessing_context", "generator", "prefetch_factor", "pin_memory_device", "in_order")


class _SkipBatches:
    """The batches of `batch_sampler` after the first `skip` (only their indices are drawn)."""

    def __init__(self, batch_sampler: Any, skip: int) -> None:
        self.batch_sampler, self.skip = batch_sampler, skip

    def __iter__(self) -> Iterator[list[Any]]:
        it = iter(self.batch_sampler)
        for _ in range(self.skip):
            next(it, None)
        yield from it

    def __len__(self) -> int:
        return max(0, len(self.batch_sampler) - self.skip)


def skip_batches(loader: Iterable, skip: int) -> Iterable:
    """The current epoch of `loader` from batch `skip` on (mid-epoch resume).

    For a DataLoader, a one-epoch loader over its own batch sampler with the first `skip` batches'
    indices drawn but no image read, so the order is exactly the one the straight run sees (call after
    the epoch's `set_epoch`). Any other iterable is simply advanced.
    """
    if skip <= 0:
        return loader
    if not isinstance(loader, DataLoader):
        return itertools.islice(loader, skip, None)
    kwargs = {k: getattr(loader, k) for k in _LOADER_ARGS if hasattr(loader, k)}
    if kwargs.get("num_workers", 0) == 0:
        kwargs.pop("prefetch_factor", None)
    return DataLoader(loader.dataset, batch_sampler=_SkipBatches(loader.batch_sampler, skip),
                      persistent_workers=False, **kwargs)  # used for one partial epoch only
