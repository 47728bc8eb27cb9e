"""Conversions between the image types the workbook meets: paths, PIL images, arrays and tensors.

Everything is turned into an H×W×3 ``uint8`` numpy array, the one type the drawing code works on.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import numpy as np
from PIL import Image

from sagkit.data.images import read_image, to_rgb


def _is_tensor(obj) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")


def to_uint8_image(image, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> np.ndarray:
    """Return ``image`` as an H×W×3 uint8 array.

    Accepts a file path, a PIL image, an H×W×3 / H×W array (uint8, or float in [0, 1]) or a 3×H×W
    tensor/array. ``mean``/``std`` (per channel, pixel units in [0, 1]) undo a normalisation
    ``x_norm = (x - mean) / std`` first, as applied by the data transforms.
    """
    if isinstance(image, (str, PathLike)):
        return np.asarray(read_image(str(image)), dtype=np.uint8).copy()
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image, "the image given"), dtype=np.uint8).copy()
    if _is_tensor(image):
        image = image.detach().cpu().float().numpy()
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.transpose(array, (1, 2, 0))
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f"expected an image of shape H×W×3, 3×H×W or H×W; got shape {array.shape}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype == np.uint8 and mean is None:
        return array.copy()
    array = array.astype(np.float32)
    if mean is not None or std is not None:
        mean_arr = np.asarray(mean if mean is not None else (0.0, 0.0, 0.0), dtype=np.float32)
        std_arr = np.asarray(std if std is not None else (1.0, 1.0, 1.0), dtype=np.float32)
        array = array * std_arr + mean_arr
    elif array.max(initial=0.0) > 1.0:
        array = array / 255.0
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an H×W×3 uint8 image to ``size`` = (height, width) with bilinear filtering."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    pil = Image.fromarray(image).resize((width, height), Image.BILINEAR)
    return np.asarray(pil, dtype=np.uint8).copy()


def load_images(images, size: tuple[int, int] | None = None, mean=None, std=None) -> list[np.ndarray]:
    """Convert each item of ``images`` with :func:`to_uint8_image`, resized to ``size`` (H, W) if given."""
    out = [to_uint8_image(image, mean=mean, std=std) for image in images]
    if size is not None:
        out = [resize_image(image, size) for image in out]
    return out


def add_border(image: np.ndarray, color: Sequence[int], width: int = 3) -> np.ndarray:
    """Return ``image`` (H×W×3 uint8) padded by ``width`` pixels of ``color`` on every side."""
    if width < 0:
        raise ValueError(f"border width must be >= 0; got {width}")
    image = to_uint8_image(image)
    h, w = image.shape[:2]
    out = np.empty((h + 2 * width, w + 2 * width, 3), dtype=np.uint8)
    out[...] = np.asarray(color, dtype=np.uint8)
    out[width : width + h, width : width + w] = image
    return out
