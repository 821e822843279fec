"""Image reading with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

COLORS = ("rgb", "bgr")


def check_color(color: str) -> str:
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    return color


def read_image(path: str | Path, color: str = "bgr") -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 in ``color`` channel order.

    ``"bgr"`` is what OpenCV decodes to; the top-down transform takes BGR and reorders the
    channels on the small crop, which is cheaper than converting the whole photo.
    EXIF orientation is ignored, as in the reference loaders.

    Raises
    ------
    FileNotFoundError
        The file does not exist (the message is its path).
    ValueError
        The file exists but cannot be decoded as an image.
    """
    check_color(color)
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        raise ValueError(f"{path}: could not be decoded as an image")
    if color == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image
