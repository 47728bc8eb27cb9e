"""DataLoaders for training (random or P x K identity batches, optionally distributed) and testing."""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from sagkit.choices import SAMPLERS
from sagkit.data.images import ImageDataset
from sagkit.data.records import ImageRecord
from sagkit.data.samplers import IdentitySampler


def default_num_workers() -> int:
    """Worker processes for decoding: one per spare core, at most 4 (0 on a single core)."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)  # workers decode images; leave the cores' threads to the model


def _dataset(records, transform, on_bad_image) -> ImageDataset:
    if isinstance(records, ImageDataset):
        return records
    return ImageDataset(records, transform, on_bad_image=on_bad_image)


def _loader_kwargs(num_workers: int | None, pin_memory: bool | None, persistent: bool) -> dict:
    num_workers = default_num_workers() if num_workers is None else int(num_workers)
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    # The training loader keeps persistent workers: every kept run was trained so, and without them the
    # workers draw other augmentation seeds from the loader's generator (measured: a tiny run with one worker
    # ended at another loss), so the same seed would no longer give the same run. Test loaders have no
    # randomness and are iterated once: keeping their workers alive would only hold memory.
    kw = dict(num_workers=num_workers,
              pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
              persistent_workers=persistent and num_workers > 0)
    if num_workers > 0:
        kw["worker_init_fn"] = _worker_init
    return kw


def _dist_world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    if num_replicas is not None and rank is not None:
        return num_replicas, rank
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("distributed=True needs torch.distributed initialised, or num_replicas= and rank=")
    return dist.get_world_size() if num_replicas is None else num_replicas, dist.get_rank() if rank is None else rank


RANK_SEED_STRIDE = 1_000_003  # rank r > 0 draws its augmentations from seed + 1 + r * this


def augmentation_seed(seed: int, rank: int = 0) -> int:
    """Seed of the loader generator, from which the workers' augmentation RNGs derive: ``seed + 1`` on rank 0
    (a single process, as always), mixed with the rank elsewhere so that ranks crop and erase differently.
    The sampler's seed stays the same on every rank (they must agree on the shuffle)."""
    return seed + 1 if rank == 0 else seed + 1 + RANK_SEED_STRIDE * rank


def build_train_loader(records: Sequence[ImageRecord] | ImageDataset, transform: Callable | None, batch_size: int,
                       sampler: str = "random", num_instances: int = 4, num_workers: int | None = None,
                       seed: int = 0, distributed: bool = False, drop_last: bool = True,
                       on_bad_image: str = "raise", pin_memory: bool | None = None,
                       num_replicas: int | None = None, rank: int | None = None) -> DataLoader:
    """Shuffled training batches ``(images B x 3 x H x W, pids, camids, indices)``.

    ``sampler="random"``: a seeded shuffle every epoch (``DistributedSampler`` when
    ``distributed``; call ``loader.sampler.set_epoch(epoch)`` each epoch then).
    ``sampler="identity"``: :class:`IdentitySampler` P x K batches (``batch_size`` per process,
    a multiple of ``num_instances``), distributed-aware.  ``batch_size`` is per process.
    Augmentation randomness in workers differs per rank (:func:`augmentation_seed`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ds = _dataset(records, transform, on_bad_image)
    replicas, rk = _dist_world(num_replicas, rank) if distributed else (1, 0)
    if sampler == "identity":
        smp = IdentitySampler(ds.records, batch_size, num_instances, seed=seed, num_replicas=replicas, rank=rk)
        drop_last = True
    elif sampler == "random":
        if distributed:
            smp = DistributedSampler(ds, num_replicas=replicas, rank=rk, shuffle=True, seed=seed, drop_last=drop_last)
        else:
            smp = RandomSampler(ds, generator=torch.Generator().manual_seed(seed))
    else:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    gen = torch.Generator().manual_seed(augmentation_seed(seed, rk))  # seeds workers' augmentation RNG
    return DataLoader(ds, batch_size=batch_size, sampler=smp, drop_last=drop_last, generator=gen,
                      **_loader_kwargs(num_workers, pin_memory, persistent=True))


def build_test_loader(records: Sequence[ImageRecord] | ImageDataset, transform: Callable | None, batch_size: int,
                      num_workers: int | None = None, on_bad_image: str = "raise",
                      pin_memory: bool | None = None) -> DataLoader:
    """Batches in record order, nothing dropped, for feature extraction."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ds = _dataset(records, transform, on_bad_image)
    return DataLoader(ds, batch_size=batch_size, shuffle=False, drop_last=False,
                      **_loader_kwargs(num_workers, pin_memory, persistent=False))
