"""The data position of a run: which batches an epoch yields, from where, with which random numbers.

Two things the runner needs from a train loader, whatever sampler the data code gave it:

- `skip_batches`: the rest of an epoch after `k` batches, without loading the first `k` (mid-epoch
  resume). The loader's own batch sampler is iterated, so the order is exactly the one the straight
  run sees; only the indices of the skipped batches are drawn, no image is read.
- `deterministic_loader` (`runtime.deterministic=true`): the same loader over a sampler whose order
  depends only on (seed, epoch), split by rank like DistributedSampler, and a dataset wrapper that
  seeds `random`, `numpy` and `torch` from (seed, epoch, sample index) before each sample's
  transforms. Augmentation then no longer depends on the number of loader workers, on which worker
  got a sample, on the number of processes, or on where a run was interrupted: resumed and
  uninterrupted runs, and 1- and N-process runs with the same total batch, see identical batches.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, get_worker_info

# DataLoader arguments carried over when a loader is rebuilt around another sampler.
_LOADER_ARGS = ("num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn", "multiprocessing_context",
                "generator", "prefetch_factor", "persistent_workers", "pin_memory_device", "in_order")


def _loader_kwargs(loader: DataLoader) -> dict[str, Any]:
    kwargs = {k: getattr(loader, k) for k in _LOADER_ARGS if hasattr(loader, k)}
    if kwargs.get("num_workers", 0) == 0:
        kwargs.pop("prefetch_factor", None)
        kwargs["persistent_workers"] = False
    return kwargs


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


def skip_batches(loader: DataLoader, skip: int) -> DataLoader:
    """A one-epoch loader yielding `loader`'s current epoch from batch `skip` on.

    Call after the epoch's `set_epoch`; the shared generator keeps random draws in the same order as a
    full pass of `loader` would make them.
    """
    if skip <= 0:
        return loader
    kwargs = _loader_kwargs(loader)
    kwargs["persistent_workers"] = False  # used for one partial epoch only
    return DataLoader(loader.dataset, batch_sampler=_SkipBatches(loader.batch_sampler, skip), **kwargs)


class EpochSampler(DistributedSampler):
    """DistributedSampler yielding `(index, epoch)`: the epoch travels with each index into the workers."""

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((int(i), epoch) for i in super().__iter__())


class SeededDataset(Dataset):
    """Reads `dataset[index]` with every RNG seeded from (seed, epoch, index).

    In the main process (num_workers=0) the RNG states are restored afterwards, so the model's own
    random numbers do not depend on data loading.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, epoch = key
        sample_seed = int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])
        if get_worker_info() is not None:  # a worker process: its generators are ours to reset
            _seed_all(sample_seed)
            return self.dataset[index]
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            _seed_all(sample_seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)

    def __getattr__(self, name: str) -> Any:  # dataset attributes (class_names, ...) stay reachable
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def deterministic_loader(loader: DataLoader, seed: int, rank: int, world_size: int) -> DataLoader:
    """`loader` rebuilt over an `EpochSampler` and a `SeededDataset` (same batch size, workers, collate).

    Batches are per process: with world size W and batch size B, the W processes' batches at step k
    together hold the samples that one process with batch W x B gets at step k.
    """
    dataset = loader.dataset
    sampler = EpochSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)  # type: ignore[arg-type]
    batch_size = loader.batch_size if loader.batch_size is not None else len(next(iter(loader.batch_sampler)))
    drop_last = loader.drop_last if loader.batch_size is not None else isinstance(loader.batch_sampler, BatchSampler) and loader.batch_sampler.drop_last
    kwargs = _loader_kwargs(loader)
    kwargs.pop("generator", None)  # the order comes from the sampler's (seed, epoch), augmentation from SeededDataset
    return DataLoader(SeededDataset(dataset, seed), batch_size=batch_size, sampler=sampler, drop_last=drop_last, **kwargs)
