"""P x K identity sampler: batches of P identities with K images each (for metric losses)."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from torch.utils.data import Sampler

from sagkit.data.records import ImageRecord


class IdentitySampler(Sampler[int]):
    """Indices forming batches of ``batch_size // num_instances`` distinct ids x ``num_instances`` images.

    Per epoch each identity's images are shuffled and cut into groups of K (identities with
    fewer than K images are sampled with replacement to K; leftovers beyond a multiple of K
    are dropped); batches take P identities at random among those with groups left, until
    fewer than P remain.  Use with ``DataLoader(batch_size=batch_size, drop_last=True)``.

    Deterministic per ``(seed, epoch)``.  The epoch advances by one at every ``iter()``;
    ``set_epoch(e)`` sets it (as with DistributedSampler).  Distributed: every rank builds
    the same batch list and takes every ``num_replicas``-th batch from ``rank``, each
    rank getting the same number of batches.
    """

    def __init__(self, records: Sequence[ImageRecord], batch_size: int, num_instances: int = 4, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ValueError(f"batch_size ({batch_size}) must be a positive multiple of num_instances "
                             f"({num_instances})")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in 0..{num_replicas - 1}, got {rank}")
        self.batch_size, self.num_instances = batch_size, num_instances
        self.num_pids_per_batch = batch_size // num_instances
        self.seed, self.num_replicas, self.rank = seed, num_replicas, rank
        index = defaultdict(list)
        for i, r in enumerate(records):
            index[r[1]].append(i)
        self.index = {pid: index[pid] for pid in sorted(index)}
        if len(self.index) < self.num_pids_per_batch:
            raise ValueError(f"{len(self.index)} identities cannot fill batches of {self.num_pids_per_batch} "
                             f"distinct identities; lower batch_size or raise num_instances")
        self.epoch = 0
        self._cache: tuple[int, list[int]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _indices(self, epoch: int) -> list[int]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        k = self.num_instances
        groups = {}
        for pid, idx in self.index.items():
            idx = np.asarray(idx)
            idx = rng.choice(idx, size=k, replace=True) if len(idx) < k else rng.permutation(idx)
            n = len(idx) // k
            groups[pid] = [idx[j * k:(j + 1) * k].tolist() for j in range(n)]
        available = [pid for pid in self.index if groups[pid]]
        batches = []
        while len(available) >= self.num_pids_per_batch:
            chosen = rng.choice(len(available), size=self.num_pids_per_batch, replace=False)
            batch = []
            for c in chosen:
                batch += groups[available[c]].pop()
            batches.append(batch)
            available = [pid for pid in available if groups[pid]]
        per_rank = len(batches) // self.num_replicas
        mine = batches[self.rank::self.num_replicas][:per_rank]
        out = [i for b in mine for i in b]
        self._cache = (epoch, out)
        return out

    def __iter__(self):
        indices = self._indices(self.epoch)
        self.epoch += 1
        return iter(indices)

    def __len__(self) -> int:
        return len(self._indices(self.epoch))
