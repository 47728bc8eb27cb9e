"""BatchNorm running statistics kept per branch for a backbone that two branches share.

SAGNet's lower and upper branches run the same convolutions and BatchNorm weights on different inputs
(the image, and its ×s upsampled copy). One set of running statistics would average the two input
distributions, and in eval mode both branches would normalise with statistics that match neither.
`BranchStatistics` holds a second running mean, variance and batch count for every BatchNorm the upper
branch runs through; inside `upper()` those buffers stand in for the module's own, so train mode updates
them from the upper branch only and eval mode normalises the upper branch with them. Weights stay
shared and train-mode outputs (batch statistics) are unchanged.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

STAT_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
# Where SAGNet keeps them, and the shared backbone they mirror, in its state dict.
BRANCH_STATS_PREFIX = "branch_stats."
BACKBONE_PREFIX = "backbone."


def shared_statistic_key(key: str, prefix: str = "") -> str | None:
    """The backbone key a per-branch statistic starts from when a checkpoint lacks it, e.g.
    "branch_stats.layer1.0.bn1.running_mean" -> "backbone.layer1.0.bn1.running_mean"; None for other keys."""
    head = prefix + BRANCH_STATS_PREFIX
    return prefix + BACKBONE_PREFIX + key[len(head):] if key.startswith(head) else None


class _RunningStats(nn.Module):
    """The running mean, variance and batch count of one BatchNorm (buffers only, no weights)."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        for name in STAT_BUFFERS:
            self.register_buffer(name, getattr(bn, name).detach().clone())


class BranchStatistics(nn.Module):
    """Upper-branch copies of the running statistics of the BatchNorm layers of `root` found in `modules`.

    The state-dict keys mirror the BatchNorm's own path in `root`: `layer1.0.bn1.running_mean` here stands
    beside `layer1.0.bn1.running_mean` of the backbone. BatchNorm layers without running statistics
    (`track_running_stats=False`) are skipped: they always use batch statistics.
    """

    def __init__(self, root: nn.Module, modules: Iterable[nn.Module]):
        super().__init__()
        used = {id(m) for module in modules for m in module.modules()}
        pairs = []
        for path, bn in root.named_modules():
            if (id(bn) in used and isinstance(bn, nn.modules.batchnorm._BatchNorm)
                    and bn.running_mean is not None):
                pairs.append((bn, self._add(path, _RunningStats(bn))))
        # Plain attribute, not registered: these BatchNorm modules belong to `root`.
        self.__dict__["_pairs"] = pairs

    def _add(self, path: str, stats: _RunningStats) -> _RunningStats:
        parent: nn.Module = self
        *folders, leaf = path.split(".")
        for name in folders:
            if name not in parent._modules:
                parent.add_module(name, nn.Module())
            parent = parent._modules[name]
        parent.add_module(leaf, stats)
        return stats

    def __len__(self) -> int:
        return len(self._pairs)

    def rebind(self, replaced: dict) -> None:
        """Follow BatchNorm modules that were replaced in `root` (``{id(old module): new module}``, e.g. by
        SyncBatchNorm conversion), so that `upper()` swaps the statistics of the modules that now run."""
        self.__dict__["_pairs"] = [(replaced.get(id(bn), bn), stats) for bn, stats in self._pairs]

    @torch.no_grad()
    def copy_from_shared(self) -> None:
        """Set every upper-branch statistic to the BatchNorm's own (e.g. after loading backbone weights)."""
        for bn, stats in self._pairs:
            for name in STAT_BUFFERS:
                getattr(stats, name).copy_(getattr(bn, name))

    def _swap(self) -> None:
        for bn, stats in self._pairs:
            for name in STAT_BUFFERS:
                bn._buffers[name], stats._buffers[name] = stats._buffers[name], bn._buffers[name]

    @contextmanager
    def upper(self) -> Iterator[None]:
        """While inside, each BatchNorm reads and updates the upper branch's statistics instead of its own."""
        self._swap()
        try:
            yield
        finally:
            self._swap()
