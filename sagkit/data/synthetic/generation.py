"""Writing a synthetic set to disk (:func:`make_synthetic_reid`) and loading it (:func:`load_synthetic`).

Generation goes to a temporary folder beside the target, renamed into place only when every file is
written, so a reader never sees half a dataset; a complete folder with the same seed and options is
reused as it is. ``overwrite`` replaces only a set sagkit wrote: its ``manifest.json`` is the marker, and
only the files it lists (and itself) are ever deleted; a folder holding anything else is refused.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sagkit.atomic import make_folder, publish_dir
from sagkit.data.market1501 import GALLERY_DIR, MARKET1501, QUERY_DIR, TRAIN_DIR, load_market_layout
from sagkit.data.records import ReIDDataset, not_a_folder_error
from sagkit.data.synthetic.config import make_config, synthetic_cache_dir
from sagkit.data.synthetic.manifest import GENERATOR, MANIFEST_NAME, README_NAME, manifest_ok, manifest_text, read_manifest, readme_text
from sagkit.data.synthetic.metadata import METADATA_NAME, metadata_text
from sagkit.data.synthetic.plan import plan_dataset
from sagkit.data.synthetic.render import render_image


def _write_file(folder: Path, rel: str, data: bytes, files: dict) -> None:
    """Write ``data`` to ``folder/rel`` and record its ``[size, sha256]`` under ``rel`` in ``files``."""
    (folder / rel).write_bytes(data)
    files[rel] = [len(data), hashlib.sha256(data).hexdigest()]


def _own_files(root: Path) -> list[Path]:
    """The files of ``root`` that sagkit wrote: those its manifest.json lists, and the manifest itself.

    Raises FileExistsError naming ``root`` when it has no readable manifest (not a set sagkit made) or holds
    other files (never deleted: the user's)."""
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
        if manifest["generator"] != GENERATOR:  # another tool's manifest.json is no licence to delete
            raise ValueError(manifest["generator"])
        listed = set(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise FileExistsError(f"{str(root)!r} holds files but no manifest.json written by sagkit synth: overwrite "
                              "only replaces a synthetic set sagkit made, and deleted nothing; choose an empty or "
                              "new folder") from None
    present = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())
    others = [rel for rel in present if rel not in listed and rel != MANIFEST_NAME]
    if others:
        more = f" (and {len(others) - 5} more)" if len(others) > 5 else ""
        raise FileExistsError(f"{str(root)!r} holds files sagkit synth did not write: {', '.join(others[:5])}{more}; "
                              "overwrite deleted nothing: move them out, or choose another folder")
    return [root / rel for rel in present]


def _remove_own(root: Path) -> None:
    """Delete the files sagkit wrote in ``root`` (:func:`_own_files`), then its emptied folders."""
    for path in _own_files(root):
        path.unlink()
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        folder.rmdir()
    root.rmdir()


def make_synthetic_reid(root: str | Path, seed: int = 0, overwrite: bool = False, **size_options) -> Path:
    """Generate the synthetic dataset into ``root`` (Market-1501 layout) and return ``root``.

    Reuses ``root`` when it already holds a complete dataset with the same seed and options.
    Options are the fields of :class:`SyntheticConfig` (``num_train_ids``, ``num_test_ids``,
    ``images_per_id``, ``num_cameras``, ...).  A different existing dataset in ``root`` is an
    error unless ``overwrite=True``, which replaces only a set sagkit wrote (module docstring).  Same
    seed and options give byte-identical files.
    """
    cfg = make_config(**size_options)
    seed = int(seed)
    root = Path(root).expanduser()
    if root.exists():
        if manifest_ok(root, seed, cfg):
            return root
        if root.is_file():
            raise FileExistsError(f"{str(root)!r} is a file, not a folder: choose a folder for the synthetic set")
        if any(root.iterdir()) and not overwrite:
            raise FileExistsError(f"{str(root)!r} exists and is not a complete synthetic dataset with seed={seed} "
                                  f"and these options; choose another folder or pass overwrite=True.")
        if overwrite and any(root.iterdir()):
            _own_files(root)  # refused before the long generation when it holds anything else
    make_folder(root.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        plan, outfits, cams = plan_dataset(seed, cfg)
        for folder in (TRAIN_DIR, GALLERY_DIR, QUERY_DIR):
            (tmp / folder).mkdir()
        files, image_meta = {}, {}
        for item in plan:
            rng = np.random.default_rng(item["seed"])
            outfit = outfits[item["outfit"]] if item["outfit"] is not None else None
            im, attrs = render_image(rng, cfg, cams[item["cam"]], outfit, item["kind"])
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=cfg.jpeg_quality)
            rel = f"{item['folder']}/{item['name']}"
            _write_file(tmp, rel, buf.getvalue(), files)
            image_meta[rel] = attrs
        _write_file(tmp, METADATA_NAME, metadata_text(cams, outfits, image_meta).encode(), files)
        _write_file(tmp, README_NAME, readme_text(seed, cfg).encode(), files)
        (tmp / MANIFEST_NAME).write_bytes(manifest_text(seed, cfg, files).encode())  # not listed in itself
        if root.exists():
            if root.is_dir() and not any(root.iterdir()):
                root.rmdir()
            elif overwrite:
                _remove_own(root)
        publish_dir(tmp, root, done_by_other=lambda dest: manifest_ok(dest, seed, cfg))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def load_synthetic(root: str | Path | None = None, seed: int | None = None, cache_root: str | Path | None = None,
                   **size_options) -> ReIDDataset:
    """The synthetic dataset as a ReIDDataset, generated on first use and reused afterwards.

    ``root=None``: lives in ``synthetic_cache_dir(seed, cache_root, **options)``
    (``$SAGKIT_CACHE`` or ``~/.cache/sagkit``); ``seed`` defaults to 0.  ``root`` given: if it
    holds a synthetic dataset (manifest.json) it is read as it is, or checked against
    ``seed``/options when those are given; otherwise ``root`` is used as the cache folder in
    which ``synthetic-<hash>`` is made.
    """
    cfg = make_config(**size_options)
    folder = Path(root).expanduser() if root is not None else None
    if folder is not None and folder.is_file():
        raise not_a_folder_error("synthetic root", folder)
    if folder is not None and (folder / MANIFEST_NAME).is_file():
        seed_found, cfg_found = read_manifest(folder)
        if (seed is not None and int(seed) != seed_found) or (size_options and cfg != cfg_found):
            raise ValueError(f"{str(folder)!r} holds a synthetic dataset with seed={seed_found} and other options "
                             f"than requested (see its README.txt); pass its parent folder to generate another.")
        if not manifest_ok(folder, seed_found, cfg_found):
            raise ValueError(f"{str(folder)!r} is an incomplete synthetic dataset (files missing or changed); "
                             f"delete it and load again to regenerate.")
        seed, cfg = seed_found, cfg_found
    else:
        seed = 0 if seed is None else int(seed)
        folder = synthetic_cache_dir(seed, root if root is not None else cache_root, **size_options)
        make_synthetic_reid(folder, seed=seed, **size_options)
    ds = load_market_layout(folder, MARKET1501, name="synthetic", multi_query=False)
    ds.info.update(seed=seed, options=asdict(cfg))
    return ds
