"""ONNX export of a trained model: ``export_onnx(model, path, input_size, opset)`` and ``export_run(run_dir)``.

The graph is the eval-mode ``SAGNet``: input ``images`` N×3×H×W, already normalised with the backbone's
mean and std (stored in the file's metadata), output ``embedding`` N×D, the vector the model gives
the retrieval pipeline (which then flip-averages it when ``flip_eval`` and L2-normalises each row). The
batch axis is dynamic; H and W are fixed to the model's input size.

Exporter: torch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``). Both exporters of
torch 2.14 give outputs within 1e-5 of PyTorch for the models of ``benchmarks/bench_export.py``. The
torch.export-based one (``dynamo=True``, which needs ``onnxscript``) took 2-10× as long per model there,
and it writes no opset below 18: asked for 17, it warns in the log and writes 18. The TorchScript exporter
writes exactly the opset asked for, from 11 to 20. torch marks it deprecated, but torch is pinned
(pyproject.toml), and switching later means passing ``dynamo=True``.
The file is checked before it is put in place: onnxruntime runs it on a batch of another size than the
one traced, and its output must match PyTorch's.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn
from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET

from sagkit.atomic import atomic_write
from sagkit.choices import check_input_size

from sagkit.runs.folder import run_model

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "MAX_OPSET",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "OnnxExport",
    "export_onnx",
    "export_run",
    "default_onnx_path",
    "onnx_session",
    "max_onnx_difference",
]

DEFAULT_OPSET = 17
# The upper branch's bilinear upsampling (align_corners=False) has an ONNX form from opset 11 (Resize).
MIN_OPSET = 11
MAX_OPSET = ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
INPUT_NAME = "images"
OUTPUT_NAME = "embedding"
BATCH_AXIS = "batch"
TRACE_BATCH = 2  # the batch size traced; the check runs another one, so a fixed batch size would show
CHECK_BATCH = 3
# Largest |onnxruntime - PyTorch| accepted, relative to the output's largest magnitude when that is above 1.
TOLERANCE = 1e-4


@dataclass(frozen=True)
class OnnxExport:
    """What ``export_onnx`` wrote: the file, its opset, the input size (H, W), the embedding size and the
    largest |onnxruntime - PyTorch| difference on a batch of ``CHECK_BATCH`` images."""

    path: Path
    opset: int
    input_size: tuple[int, int]
    embedding_dim: int
    max_abs_diff: float


def _check_opset(opset: int) -> int:
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset!r} is not supported: the ONNX exporter used (torch {torch.__version__}, "
                         f"TorchScript-based) writes opsets {MIN_OPSET}..{MAX_OPSET}; bilinear upsampling needs "
                         f"{MIN_OPSET}. Choose one in that range (default {DEFAULT_OPSET})")
    return opset


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence two warnings of every export: torch's deprecation notice of this exporter (chosen on purpose,
    see the module docstring) and the tracer's note that the input-size check and the upsampling size are
    Python numbers (H and W are fixed by design; the batch axis is checked by running another batch)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def onnx_session(path: str | Path, threads: int | None = None) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session of an ONNX file (``threads`` intra-op threads, default torch's count)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_onnx_difference(model: nn.Module, path: str | Path, images: torch.Tensor) -> tuple[float, np.ndarray]:
    """``(max |onnxruntime - PyTorch|, PyTorch's output)`` of the eval-mode ``model`` and the ONNX file at
    ``path`` on ``images`` (N×3×H×W, normalised); the output is N×D."""
    with torch.no_grad():
        expected = model(images.to(_model_device(model))).float().cpu().numpy()
    got = onnx_session(path).run([OUTPUT_NAME], {INPUT_NAME: images.cpu().numpy()})[0]
    if got.shape != expected.shape:
        raise RuntimeError(f"{path}: onnxruntime gave shape {got.shape} where PyTorch gives {expected.shape}")
    return float(np.abs(got - expected).max()), expected


def export_onnx(model: nn.Module, path: str | Path, input_size: tuple[int, int], opset: int = DEFAULT_OPSET,
                metadata: dict[str, str] | None = None) -> OnnxExport:
    """Write the eval-mode ``model`` (N×3×H×W normalised images → N×D embedding, N dynamic) to ``path``.

    ``input_size`` = (H, W), multiples of 32. ``metadata`` entries are added to the file's
    ``metadata_props`` next to the input size, mean and std. A ``model`` in training mode is refused
    (its forward gives identity logits with batch statistics, not the embedding). The file appears only
    once onnxruntime's output on a batch of ``CHECK_BATCH`` matches PyTorch's; nothing is left otherwise.
    """
    if model.training:
        raise ValueError("model is in training mode, where its forward gives identity logits: call model.eval() "
                         "before export_onnx so that the file computes the retrieval embedding")
    opset = _check_opset(opset)
    if Path(path).is_dir():
        raise ValueError(f"{path} is a folder: give the ONNX file to write, e.g. {Path(path) / 'model.onnx'}")
    height, width = (int(s) for s in input_size)
    check_input_size(height, width)
    device = _model_device(model)
    generator = torch.Generator().manual_seed(0)
    trace_images = torch.randn(TRACE_BATCH, 3, height, width, generator=generator)
    check_images = torch.randn(CHECK_BATCH, 3, height, width, generator=generator)
    props = {"input_size": f"{height}x{width}", "input_layout": "NCHW float32, normalised with input_mean/input_std",
             "input_mean": ",".join(f"{v:g}" for v in getattr(model, "input_mean", ())),
             "input_std": ",".join(f"{v:g}" for v in getattr(model, "input_std", ())),
             **(metadata or {})}
    result: dict[str, float | int] = {}  # filled by write()

    def write(tmp: str) -> None:
        with _quiet_export():
            torch.onnx.export(model, (trace_images.to(device),), tmp, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}})
        proto = onnx.load(tmp)
        onnx.helper.set_model_props(proto, props)
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        diff, expected = max_onnx_difference(model, tmp, check_images)
        scale = float(np.abs(expected).max())
        if not diff <= TOLERANCE * max(1.0, scale):
            raise RuntimeError(f"the ONNX graph for {path} differs from PyTorch by up to {diff:.3g} (outputs up to "
                               f"{scale:.3g}) on a batch of {CHECK_BATCH}; nothing was written")
        result.update(diff=diff, dim=expected.shape[1])

    with torch.no_grad():
        written = atomic_write(path, write)
    return OnnxExport(written, opset, (height, width), int(result["dim"]), result["diff"])


def default_onnx_path(run_dir: str | Path, which: str = "best") -> Path:
    """``<run name>.onnx`` (``<run name>-last.onnx`` for the last checkpoint) in the current folder: outside
    the run folder, whose files a retraining replaces."""
    name = Path(run_dir).resolve().name
    return Path(f"{name}.onnx" if which == "best" else f"{name}-{which}.onnx")


def export_run(run_dir: str | Path, out: str | Path | None = None, opset: int = DEFAULT_OPSET,
               which: str = "best") -> OnnxExport:
    """Export the model of a run folder's ``checkpoint_<which>.pt`` (loaded as ``sagkit eval`` loads it) at the
    run's input size to ``out`` (default :func:`default_onnx_path`)."""
    _check_opset(opset)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist (or is not a folder): give a run folder, "
                                "runs/<name>, that sagkit train wrote")
    model, config = run_model(run_dir, which)
    model.eval()
    metadata = {"sagkit_run": run_dir.resolve().name, "sagkit_checkpoint": which,
                "backbone": config.backbone, "depths": ",".join(map(str, config.depths)) or "baseline",
                "flip_eval": str(bool(config.flip_eval)).lower(),
                "retrieval": "L2-normalise each embedding row; sagkit averages the embeddings of the image and "
                             f"its mirror first when flip_eval is true (this run: {config.flip_eval})"}
    return export_onnx(model, out if out is not None else default_onnx_path(run_dir, which),
                       (config.height, config.width), opset, metadata)
