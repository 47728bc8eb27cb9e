"""Reading images for training/evaluation: ``ImageDataset`` and ``verify_images``."""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from sagkit.data.records import ImageRecord


class BadImageError(OSError):
    """An image file is missing, unreadable or corrupt."""


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")  # 16-bit grey (PNG, TIFF): 0..65535
NO_RANGE_MODES = {"I": "32-bit integer", "F": "32-bit float"}  # grey levels with no fixed range


def to_rgb(image: Image.Image, path: str) -> Image.Image:
    """8-bit RGB of an opened image. 16-bit grey levels are scaled from 0..65535 to 0..255 (Pillow's own
    ``convert`` clips them, and the image turns white); 32-bit integer and float images are refused
    (BadImageError naming ``path``), since nothing says what their black and white are."""
    if image.mode in NO_RANGE_MODES:
        raise BadImageError(f"image {path!r} has {NO_RANGE_MODES[image.mode]} grey levels (mode {image.mode}), "
                            "whose range is unknown: save it as an 8-bit or 16-bit image")
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(image).astype(np.float64) / 257.0
        return Image.fromarray(np.rint(grey).astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def read_image(path: str) -> Image.Image:
    """Decode ``path`` fully as RGB (:func:`to_rgb`); raises BadImageError naming the file on any failure."""
    try:
        with Image.open(path) as im:
            return to_rgb(im, path)
    except BadImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # PIL's errors for
        # truncated, unknown or (DecompressionBombError) too large files
        raise BadImageError(f"cannot read image {path!r}: {exc}. Re-extract or remove it, or pass "
                            f"on_bad_image='skip' to leave such files out.") from exc


def verify_images(records: Sequence[ImageRecord]) -> tuple[list[ImageRecord], list[tuple[ImageRecord, str]]]:
    """Fully decode every image; returns (readable records, [(bad record, error message), ...])."""
    good, bad = [], []
    for r in records:
        try:
            read_image(r.path)
        except BadImageError as exc:
            bad.append((r, str(exc.__cause__ or exc)))
        else:
            good.append(r)
    return good, bad


class ImageDataset(Dataset):
    """Records -> ``(image_tensor 3 x H x W, pid, camid, index)``.

    ``on_bad_image="raise"`` (default): a file that cannot be decoded raises BadImageError
    naming it when loaded.  ``"skip"``: every image is decoded once at construction and the
    unreadable ones are dropped with a warning (``index`` then refers to ``self.records``).
    """

    def __init__(self, records: Sequence[ImageRecord], transform: Callable | None = None,
                 on_bad_image: str = "raise"):
        if on_bad_image not in ("raise", "skip"):
            raise ValueError(f"on_bad_image must be 'raise' or 'skip', got {on_bad_image!r}")
        records = [ImageRecord(*r) for r in records]
        if on_bad_image == "skip":
            records, bad = verify_images(records)
            if bad:
                names = ", ".join(repr(r.path) for r, _ in bad[:5])
                warnings.warn(f"skipped {len(bad)} unreadable image(s): {names}"
                              + (" ..." if len(bad) > 5 else ""), stacklevel=2)
        if not records:
            raise ValueError("ImageDataset got no (readable) images")
        self.records = records
        self.transform = transform
        self.on_bad_image = on_bad_image

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        r = self.records[index]
        img = read_image(r.path)
        if self.transform is not None:
            img = self.transform(img)
        return img, r.pid, r.camid, index
