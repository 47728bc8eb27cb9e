"""Feature extraction for evaluation: embeddings of a whole loader, optionally flip-averaged and L2-normalised."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _unwrap(model: nn.Module) -> nn.Module:
    """The wrapped module of DataParallel / DistributedDataParallel, else the model itself."""
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return model.module
    return model


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _as_ids(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"the loader's {name} must be a 1-D batch of integers, got {arr.dtype} {arr.shape}")
    return arr.astype(np.int64)


def extract_features(model: nn.Module, loader, flip: bool = True, normalize: bool = True, device=None,
                     amp: bool = False, channels_last: bool = False, amp_dtype: torch.dtype = torch.float16):
    """Embeddings of every image of ``loader`` -> (features Tensor N x D float32 on CPU, pids, camids ndarrays).

    ``loader`` yields (images B x 3 x H x W, pids, camids, indices). The model runs in eval() mode
    (its own train()/eval() flags, module by module, are restored afterwards) under
    torch.inference_mode; DataParallel/DDP wrappers are unwrapped. ``flip``: the embedding is the mean
    of f(x) and f(x flipped left-right). ``normalize``: rows are then L2-normalised. ``device``: where
    the images go (default: the model's device; a different one moves the model there). ``amp``:
    autocast to ``amp_dtype``: float16 on CUDA only (ignored on the CPU), bfloat16 on CUDA and the CPU.
    ``channels_last``: images are passed in channels-last layout.
    """
    net = _unwrap(model)
    device = _model_device(net) if device is None else torch.device(device)
    if _model_device(net) != device:
        net.to(device)
    flags = [(m, m.training) for m in net.modules()]
    if amp_dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"amp_dtype must be torch.float16 or torch.bfloat16, got {amp_dtype}")
    use_amp = bool(amp) and (device.type == "cuda" or amp_dtype == torch.bfloat16)
    feats, pids, camids = [], [], []
    net.eval()
    try:
        with torch.inference_mode():
            for batch in loader:
                if not isinstance(batch, (tuple, list)) or len(batch) < 3:
                    raise ValueError("the loader must yield (images, pids, camids, indices) tuples")
                images = batch[0].to(device, non_blocking=True)
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                    out = net(images).float().reshape(images.shape[0], -1)
                    if flip:
                        out = (out + net(torch.flip(images, dims=[3])).float().reshape(images.shape[0], -1)) / 2
                if normalize:
                    out = torch.nn.functional.normalize(out, dim=1)
                feats.append(out.cpu())
                pids.append(_as_ids(batch[1], "pids"))
                camids.append(_as_ids(batch[2], "camids"))
    finally:
        for module, flag in flags:
            module.training = flag
    if not feats:
        raise ValueError("the loader yielded no batches")
    return torch.cat(feats), np.concatenate(pids), np.concatenate(camids)
