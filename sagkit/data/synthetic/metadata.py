"""``metadata.json`` of a synthetic set: what the generator drew (identity groups, per-image attributes).

The generator writes it (:func:`metadata_text`); the workbook reads it back (:func:`read_synthetic_metadata`)
to pick Figure 1's look-alikes and occluded images from what was drawn rather than guessing from pixels.
Identities are keyed by the 4-digit id that starts their file names, images by ``<folder>/<file name>``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path

from sagkit.data.market1501 import MARKET1501, parse_name

METADATA_NAME = "metadata.json"


def identity_key(pid: int) -> str:
    """Key of identity ``pid`` (original, not relabelled) in ``metadata.json``: its 4-digit file-name id."""
    return f"{pid:04d}"


def image_key(path: str | PathLike) -> str:
    """Key of an image in ``metadata.json`` (and ``manifest.json``): ``<folder>/<file name>``."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def metadata_text(cameras: list, outfits: dict, images: dict) -> str:
    """The JSON text of ``metadata.json``: camera styles, outfits by pid, attributes by image key."""
    meta = {"cameras": [asdict(c) for c in cameras],
            "identities": {identity_key(pid): asdict(o) for pid, o in outfits.items()},
            "images": images}
    return json.dumps(meta, sort_keys=True)


@dataclass(frozen=True)
class SyntheticMetadata:
    """The parts of ``metadata.json`` the workbook uses, looked up by image record (``.path``)."""

    groups: dict  # identity key -> look-alike group
    occluders: dict  # image key -> occluder drawn in front of the person ("pole", "car", ...) or None

    def identity_of(self, record) -> str | None:
        """The identity key of ``record``'s image, or None when the metadata has no such identity."""
        parsed = parse_name(Path(record.path).name, MARKET1501)
        key = identity_key(parsed[0]) if parsed is not None else None
        return key if key in self.groups else None

    def occluder_of(self, record) -> str | None:
        """The occluder the generator drew in ``record``'s image, or None."""
        return self.occluders.get(image_key(record.path))


def read_synthetic_metadata(root: str | PathLike | None) -> SyntheticMetadata | None:
    """The metadata of the synthetic set in folder ``root``, or None when ``root`` holds no ``metadata.json``."""
    if root is None:
        return None
    path = Path(root) / METADATA_NAME
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except ValueError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON ({exc}); delete the dataset folder and load it again "
                         "to regenerate it.") from exc
    return SyntheticMetadata(
        groups={key: int(ident.get("group", -1)) for key, ident in raw.get("identities", {}).items()},
        occluders={key: (attrs or {}).get("occluder") for key, attrs in raw.get("images", {}).items()},
    )
