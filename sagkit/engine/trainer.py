"""One training epoch (:func:`train_one_epoch`) and :class:`TrainingDiverged`, the error it raises when the loss
stops being finite. The session around it (set-up, resume, checkpoints) is ``sagkit.engine.session``; the run
folder's life cycle is ``sagkit.runs.training``."""

from __future__ import annotations

import time
from typing import Callable, Optional

import torch
from torch import nn

from sagkit.engine.device import Precision, autocast
from sagkit.engine.distributed import DistInfo, all_reduce_min
from sagkit.engine.optim import current_lrs

__all__ = ["NONFINITE_CHECK_EVERY", "TrainingDiverged", "progress_bar", "train_one_epoch"]

NONFINITE_CHECK_EVERY = 25  # steps between reads of the non-finite-loss flag on a GPU


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run stops, its last good checkpoint stays on disk."""

    def __init__(self, epoch: int, batch: int, lr: float, loss: float, checkpoint: Optional[str] = None):
        self.epoch, self.batch, self.lr, self.loss, self.checkpoint = epoch, batch, lr, loss, checkpoint
        kept = (
            f"The last good checkpoint is kept at {checkpoint}."
            if checkpoint
            else "No checkpoint had been saved yet."
        )
        super().__init__(
            f"training diverged: the loss is {loss} at epoch {epoch}, batch {batch} (learning rate {lr:g}). "
            f"Lower the learning rate (lr_new / lr_pretrained) and train again (retrain=True). {kept}"
        )


def progress_bar(iterable, enabled: bool, **kwargs):
    """A tqdm bar over ``iterable``, shown only when ``enabled`` (rank 0 with progress on)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled, dynamic_ncols=True, **kwargs)


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader,
    device: torch.device,
    epoch: int,
    *,
    precision: Optional[Precision] = None,
    scaler: Optional[torch.amp.GradScaler] = None,
    channels_last: bool = False,
    max_batches: Optional[int] = None,
    progress: bool = True,
    dist_info: Optional[DistInfo] = None,
    on_step: Optional[Callable[[], None]] = None,
    check_every: Optional[int] = None,
) -> dict:
    """One pass over ``loader`` (items ``(images N×3×H×W, pids N, camids N, index N)``).

    ``criterion(model output, pids)`` gives ``(loss, {name: value})`` (``sagkit.losses.Criterion``); the
    model's training output has ``logits`` (``sagkit.models.TrainOutput``).
    Returns ``{"loss", "acc" (percent), "parts" ({loss name: mean value}), "img_per_s", "images",
    "batches", "time_s"}`` over all ranks.
    Raises :class:`TrainingDiverged` (on every rank) when a loss is NaN or infinite, naming the first such
    batch. ``check_every`` steps between those checks (default: 1 on the CPU, where reading the loss costs
    nothing; :data:`NONFINITE_CHECK_EVERY` on a GPU, where each check waits for the device and, under DDP,
    all-reduces): between checks a flag stays on the device, and the steps after a bad loss still run.
    """
    info = dist_info or DistInfo()
    precision = precision or Precision(device.type, None, False)
    model.train()
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    if total == 0:
        raise ValueError(
            "the training loader yields no batch: batch_size is larger than the training set "
            f"({len(getattr(loader, 'dataset', []))} images); lower batch_size"
        )
    every = int(check_every or (1 if device.type == "cpu" else NONFINITE_CHECK_EVERY))
    first_bad = torch.full((), -1, dtype=torch.long, device=device)  # batch index of the first bad loss
    bad_loss = torch.zeros((), dtype=torch.float64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    part_sums: dict[str, torch.Tensor] = {}
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    start = time.perf_counter()
    bar = progress_bar(loader, progress and info.is_main, total=total, desc=f"epoch {epoch}", leave=False)
    for index, batch in enumerate(bar):
        if index >= total:
            break
        images, targets = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(precision):
            output = model(images)
            loss, parts = criterion(output, targets)
        if every == 1:
            finite = bool(torch.isfinite(loss).item())
            if not all_reduce_min(finite, info):
                bar.close()
                raise TrainingDiverged(epoch, index + 1, max(current_lrs(optimizer)), float(loss.item()))
        else:
            first = ~torch.isfinite(loss.detach()) & (first_bad < 0)
            first_bad = torch.where(first, index, first_bad)
            bad_loss = torch.where(first, loss.detach().double(), bad_loss)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        n = images.shape[0]
        seen += n
        loss_sum += loss.detach().double() * n
        for name, value in parts.items():
            part_sums[name] = part_sums.get(name, 0.0) + value.double() * n
        correct += (output.logits.detach().argmax(dim=1) == targets).sum()
        if every > 1 and ((index + 1) % every == 0 or index == total - 1):
            bad = int(first_bad.item())
            if not all_reduce_min(bad < 0, info):
                bar.close()
                # another rank's loss was bad: this one reports the batch of the check
                batch, value = (bad + 1, float(bad_loss.item())) if bad >= 0 else (index + 1, float("nan"))
                raise TrainingDiverged(epoch, batch, max(current_lrs(optimizer)), value)
        if info.is_main and progress and (index % (5 if every == 1 else every) == 0 or index == total - 1):
            elapsed = max(time.perf_counter() - start, 1e-9)
            shown = {name: f"{value.item() / seen:.3f}" for name, value in part_sums.items()} if len(parts) > 1 else {}
            bar.set_postfix(
                loss=f"{loss_sum.item() / seen:.3f}",
                **shown,
                acc=f"{100.0 * correct.item() / seen:.1f}",
                img_s=f"{seen * info.world_size / elapsed:.0f}",
            )
        if on_step is not None:
            on_step()
    bar.close()
    elapsed = time.perf_counter() - start
    names = sorted(part_sums)
    totals = torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), device=device, dtype=torch.float64),
                          *(part_sums[name] for name in names)])
    if info.is_distributed:
        totals = _all_reduce_sum(totals)
    loss_total, correct_total, seen_total, *part_totals = (float(v) for v in totals.tolist())
    return {
        "loss": loss_total / seen_total,
        "acc": 100.0 * correct_total / seen_total,
        "parts": {name: value / seen_total for name, value in zip(names, part_totals)},
        "img_per_s": seen_total / max(elapsed, 1e-9),
        "images": int(seen_total),
        "batches": total,
        "time_s": elapsed,
    }


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    comm = tensor if dist.get_backend() == "nccl" else tensor.cpu()
    dist.all_reduce(comm)
    return comm
