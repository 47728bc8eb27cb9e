"""``embed(source, images)``: L2-normalised embeddings of any images, from a run folder or an exported ONNX file.

The features come from the evaluation's own code (``extract_split_features`` with ``eval_transform`` and the
run's ``EvalSettings``): the same resize, normalisation, flip averaging and L2 normalisation as the run's
test, so ``embed`` of a test split gives the evaluation's features. An ONNX file is run by onnxruntime
behind a small ``nn.Module``, through the same loader and extraction.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sagkit.atomic import atomic_write
from sagkit.data import ImageRecord
from sagkit.data.records import IMAGE_EXTENSIONS
from sagkit.engine.device import place_model, resolve_device, run_device
from sagkit.engine.retrieval import EvalSettings, eval_transform, extract_split_features
from sagkit.evaluation.threads import torch_threads
from sagkit.runs.folder import run_model

__all__ = ["Embeddings", "collect_images", "embed", "load_source"]

ImagesArg = Union[str, Path, Sequence[Union[str, Path]]]
CHUNK_BATCHES = 8  # batches per progress-bar step (each step starts the loader's workers again)
FORMAT = "sagkit-embeddings-1"


@dataclass
class Embeddings:
    """``vectors`` (N x D float32, unit rows) of the images ``paths``, made by ``model`` with ``settings``
    (source, input size, flip, mean, std); ``images_per_s`` the measured extraction speed."""

    paths: list[str]
    vectors: np.ndarray
    model: str
    settings: dict = field(default_factory=dict)
    images_per_s: float = float("nan")

    def __len__(self) -> int:
        return len(self.paths)

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` (paths, embeddings, model, settings as JSON) atomically; returns its path."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"--out {path}: embeddings are written as .npz; give a file name ending in .npz")

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, format=np.array(FORMAT), paths=np.array(self.paths, dtype=str),
                         embeddings=self.vectors.astype(np.float32), model=np.array(self.model),
                         settings=np.array(json.dumps(self.settings, sort_keys=True)),
                         images_per_s=np.array(self.images_per_s))

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> "Embeddings":
        """Read a file written by :meth:`save`; ValueError naming the file when it is not one."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"embeddings file {str(path)!r} does not exist: write it with sagkit embed")
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT:
                    raise ValueError(f"format {str(data['format'])!r}")
                return cls([str(p) for p in data["paths"]], np.asarray(data["embeddings"], dtype=np.float32),
                           str(data["model"]), json.loads(str(data["settings"])), float(data["images_per_s"]))
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{str(path)!r} is not a sagkit embeddings file ({err}): write it with sagkit embed")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def collect_images(images: ImagesArg) -> list[str]:
    """Image paths from files, folders (searched recursively, sorted) and glob patterns, each once, in order.

    Every item must give at least one image: a missing path or an empty folder raises naming it."""
    items = [images] if isinstance(images, (str, Path)) else list(images)
    if not items:
        raise ValueError("no images given: pass image files, folders or glob patterns")
    out: dict[str, None] = {}
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _is_image(p) and p.is_file())
        elif path.is_file():
            if not _is_image(path):
                raise ValueError(f"{str(path)!r} is not an image ({', '.join(IMAGE_EXTENSIONS)})")
            found = [path]
        elif glob.has_magic(str(item)):
            found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if _is_image(Path(p)))
        else:
            raise FileNotFoundError(f"image path {str(item)!r} does not exist")
        if not found:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {str(item)!r}")
        out.update((str(p), None) for p in found)
    return list(out)


class OnnxEmbedder(nn.Module):
    """An exported model (ONNX, run by onnxruntime on the CPU) as an ``nn.Module``: N x 3 x H x W -> N x D,
    so that the evaluation's extraction (loader, flip averaging, normalisation) runs it unchanged."""

    def __init__(self, path: str | Path):
        super().__init__()
        try:  # onnx and onnxruntime come with the optional [export] extra
            from sagkit.runs.export import INPUT_NAME, OUTPUT_NAME, onnx_session
        except ModuleNotFoundError as err:
            raise ValueError(f"an ONNX source needs the {err.name} package: pip install -e '.[export]'") from None
        self.session = onnx_session(path)
        self._names = INPUT_NAME, OUTPUT_NAME
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            self.input_size = tuple(int(v) for v in props["input_size"].split("x"))
            self.input_mean = tuple(float(v) for v in props["input_mean"].split(","))
            self.input_std = tuple(float(v) for v in props["input_std"].split(","))
        except (KeyError, ValueError):
            raise ValueError(f"{path} lacks sagkit's input_size/input_mean/input_std metadata: export it with "
                             "sagkit export") from None
        self.props = dict(props)
        self.embedding_dim = int(self.session.get_outputs()[0].shape[1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run([self._names[1]], {self._names[0]: images.cpu().numpy()})[0])


def load_source(source: str | Path, which: str = "best", flip: bool | None = None, batch_size: int | None = None,
                device: str = "cpu") -> tuple[nn.Module, object, EvalSettings, dict]:
    """``(model in eval mode on device, test transform, settings, description)`` of a run folder or an ONNX file.

    ``flip`` / ``batch_size`` None: the run's ``flip_eval`` / ``eval_batch_size`` (an ONNX file: its
    ``flip_eval`` metadata, batch 64)."""
    source = Path(source)
    if source.is_dir():
        model, config = run_model(source, which)
        dev = run_device(config, device)  # no CPU notice for a CPU-sized model
        model = place_model(model, config, dev).eval()
        changes = {k: v for k, v in (("flip", flip), ("batch_size", batch_size)) if v is not None}
        settings = EvalSettings.from_config(config, **changes)
        size = (config.height, config.width)
        name, extra = source.resolve().name, {"checkpoint": which, "backbone": config.backbone,
                                              "depths": list(config.depths), "threads": config.num_threads}
    elif source.is_file() and source.suffix == ".onnx":
        if resolve_device(device).type != "cpu":
            raise ValueError("an ONNX source runs on the CPU (onnxruntime): use device='cpu'")
        model = OnnxEmbedder(source)
        if flip is None and "flip_eval" not in model.props:
            raise ValueError(f"{source} does not say whether its run averaged flipped images (an older export): "
                             "pass flip=True or False (--flip / --no-flip)")
        flip = model.props["flip_eval"] == "true" if flip is None else flip
        settings = EvalSettings(flip=flip, batch_size=batch_size or 64)
        size = model.input_size
        name, extra = model.props.get("sagkit_run", source.stem), {"onnx": str(source)}
    else:
        raise FileNotFoundError(f"model source {str(source)!r} is neither a run folder (runs/<name>) nor an "
                                ".onnx file written by sagkit export")
    model.eval()
    description = {"source": str(source), "model": name, "input_size": list(size), "flip": settings.flip,
                   "mean": list(model.input_mean), "std": list(model.input_std), "batch_size": settings.batch_size,
                   "normalised": True, **extra}
    return model, eval_transform(model, size), settings, description


def embed(source, images: ImagesArg, *, which: str = "best", flip: bool | None = None, batch_size: int | None = None,
          device: str = "cpu", progress: bool = True, threads: int | None = None,
          num_workers: int | None = None) -> Embeddings:
    """Embeddings of ``images`` (files, folders, globs) by ``source`` (a run folder's ``which`` checkpoint, or an
    ONNX file from ``sagkit export``), exactly as the run's evaluation makes them (N x D float32, unit rows).

    ``source`` may also be the tuple :func:`load_source` returns, to embed several lists with one model.
    ``threads``: torch CPU threads meanwhile (default: the run's ``num_threads``, else torch's own);
    ``num_workers``: image-decoding processes (default: the run's)."""
    model, transform, settings, description = source if isinstance(source, tuple) else load_source(
        source, which, flip, batch_size, device)
    if num_workers is not None:
        settings = dataclasses.replace(settings, num_workers=num_workers)
    paths = collect_images(images)
    records = [ImageRecord(p, 0, 0) for p in paths]
    dev = resolve_device(device, quiet=True)  # load_source gave the notice, once
    step = settings.batch_size * CHUNK_BATCHES
    parts = []
    start = time.perf_counter()
    with torch_threads(threads or description.get("threads") or torch.get_num_threads()):
        with tqdm(total=len(records), unit="img", disable=not progress, dynamic_ncols=True, desc="embed") as bar:
            for a in range(0, len(records), step):
                chunk = records[a:a + step]
                parts.append(extract_split_features(model, chunk, transform, device=dev, settings=settings))
                bar.update(len(chunk))
    rate = len(records) / max(time.perf_counter() - start, 1e-9)
    return Embeddings(paths, torch.cat(parts).numpy(), description["model"], description, rate)
