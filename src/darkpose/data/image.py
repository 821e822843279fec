"""Image reading with errors that name the file, and a scan for bad images."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

COLORS = ("rgb", "bgr")
READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
"""How every image is decoded: 3-channel BGR, EXIF orientation ignored (as the reference)."""


def check_color(color: str) -> str:
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    return color


def jpeg_is_complete(data: bytes) -> bool:
    """Whether a JPEG stream reaches its end-of-image marker (FF D9).

    A file cut short decodes in OpenCV with a warning on stderr only (the missing rows come
    out grey). The check: the file ends with FF D9 (every coco-mini photo does); otherwise
    (bytes appended after the image) the marker segments are walked to the first
    start-of-scan, past an EXIF thumbnail with its own markers, and FF D9 must follow it:
    entropy-coded data never contains FF D9, so a stream cut inside its scans has none.
    """
    if data.endswith(b"\xff\xd9"):
        return True
    pos = 2  # after the start-of-image marker FF D8
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", pos) >= 0
        if marker == 0xFF:  # fill byte
            pos += 1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return False


def read_image(
    path: str | Path, color: str = "bgr", expected_size: Sequence[float] | None = None
) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 in ``color`` channel order.

    ``"bgr"`` is what OpenCV decodes to; the top-down transform takes BGR and reorders the
    channels on the small crop, which is cheaper than converting the whole photo.
    EXIF orientation is ignored, as in the reference loaders (so the decoded size is the
    stored size, which is what COCO's width and height give).

    The file is read once into memory and decoded from there (the same cost as
    ``cv2.imread``); a JPEG (by its leading bytes FF D8) must be complete
    (:func:`jpeg_is_complete`: a comparison of the last two bytes for a normal file).

    Parameters
    ----------
    path : image file
    color : {"bgr", "rgb"}
    expected_size : (W, H) or None
        The size the annotations give (COCO ``width``/``height``); a decoded image of
        another size is an error. Comparing the decoded shape costs nothing.

    Raises
    ------
    FileNotFoundError
        The file does not exist (the message is its path).
    OSError
        The path cannot be read (a folder, no permission).
    ValueError
        The file cannot be decoded as an image, is a truncated JPEG, or has another size
        than ``expected_size``; the message starts with the path.
    """
    check_color(color)
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except OSError as e:  # a folder, no permission, an I/O error
        raise OSError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not data:
        raise ValueError(f"{path}: empty file, not an image")
    if data[:2] == b"\xff\xd8" and not jpeg_is_complete(data):
        raise ValueError(f"{path}: truncated JPEG (no end-of-image marker FF D9 after its data)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), READ_FLAGS)
    if image is None:
        raise ValueError(f"{path}: could not be decoded as an image")
    if expected_size is not None:
        width, height = (float(v) for v in expected_size)
        if (image.shape[1], image.shape[0]) != (width, height):
            raise ValueError(
                f"{path}: decoded image is {image.shape[1]}x{image.shape[0]} (W x H), the "
                f"annotations give {width:g}x{height:g}"
            )
    if color == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def check_images(dataset, progress_every: int = 1000) -> dict[Path, str]:
    """Read every distinct image of a dataset once and report the bad ones.

    What training would hit later, found before it starts: a missing file, a file that
    does not decode, a truncated JPEG, a decoded size that differs from the annotation
    file's width/height (COCO-format datasets). Each bad file is logged at WARNING; pass
    the result as ``exclude_images=`` to the dataset to leave their persons out.

    Parameters
    ----------
    dataset : a :class:`~darkpose.data.base.TopDownDataset` (``image_paths``, and
        ``image_sizes`` (N, 2) or None)
    progress_every : log progress at INFO every this many images

    Returns
    -------
    dict mapping each bad image path (as in ``dataset.image_paths``) to the error message
    """
    sizes = getattr(dataset, "image_sizes", None)
    first = {}
    for i, p in enumerate(dataset.image_paths):
        first.setdefault(p, i)
    bad: dict[Path, str] = {}
    for n, (path, i) in enumerate(first.items(), 1):
        try:
            read_image(path, "bgr", None if sizes is None else sizes[i])
        except (OSError, ValueError) as e:
            bad[path] = str(e)
            logger.warning("bad image: %s", e)
        if n % progress_every == 0 or n == len(first):
            logger.info("checked %d/%d images, %d bad", n, len(first), len(bad))
    return bad


def excluded_mask(paths: Sequence[Path], exclude: Iterable[str | Path], where: str) -> np.ndarray:
    """(N,) bool mask of ``paths`` listed in ``exclude`` (e.g. :func:`check_images`' result);
    the count is logged at WARNING, naming ``where`` (the annotation file)."""
    names = {Path(p) for p in exclude}
    mask = np.array([p in names for p in paths], dtype=bool).reshape(len(paths))
    if mask.any():
        logger.warning(
            "%s: left out %d person instances of %d excluded images",
            where, int(mask.sum()), len(names),
        )
    return mask
