"""The test-time crop of one person, and the normalisation every crop goes through.

    crop_person(image, center, scale, size, convention) -> Crop (pixels, affines)

A pure function of its inputs, with no dataset and no file: test, predict, the oracle and
``TopDownTransform(train=False)`` all call it, whatever loaded the photo (a file, a video
frame, a synthetic picture). :func:`normalize_crop` is the one normalisation, shared with the
training transform (which adds its colour jitter through it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from darkpose import geometry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet mean in R, G, B order (applied to the right channels whatever the output order)."""
IMAGENET_STD = (0.229, 0.224, 0.225)

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # R, G, B: the luma of the saturation jitter


@dataclass(frozen=True)
class Crop:
    """The test-time crop of one person.

    pixels : (3, H, W) float32, normalised as ``(value / 255 - mean) / std`` with the
        ImageNet mean and std; channels R, G, B (B, G, R with ``to_rgb=False``)
    image_to_input : (2, 3) float64, image pixels -> input crop pixels
    image_to_heatmap : (2, 3) float64, image pixels -> heatmap pixels (places keypoints for
        targets)
    heatmap_to_image : (2, 3) float64, its inverse (recovers decoded coordinates)
    """

    pixels: np.ndarray
    image_to_input: np.ndarray
    image_to_heatmap: np.ndarray
    heatmap_to_image: np.ndarray


def check_image(image) -> None:
    """TypeError unless ``image`` is a NumPy array, ValueError unless a non-empty
    (H, W, 3) uint8 one (both naming the field ``image``)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image: expected a NumPy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(
            f"image: expected a non-empty (H, W, 3) uint8 BGR array, got {image.dtype} of "
            f"shape {image.shape}"
        )


def check_triple(name: str, value, positive: bool) -> tuple[float, float, float]:
    """``value`` as three finite floats (positive ones with ``positive``), else a
    ValueError naming ``name``."""
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    ok = len(values) == 3 and all(math.isfinite(v) and (v > 0 or not positive) for v in values)
    if not ok:
        what = "positive " if positive else ""
        raise ValueError(
            f"{name}: expected three finite {what}numbers (R, G, B), got {value!r}"
        )
    return values


def normalization(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> tuple[np.ndarray, np.ndarray]:
    """The factors (a, b), (3,) float32 in R, G, B order, of ``(value / 255 - mean) / std
    = value * a + b``. A mean or std that is not three finite numbers (std positive) is a
    ValueError naming it."""
    mean = np.array(check_triple("mean", mean, positive=False), dtype=np.float64)
    std = np.array(check_triple("std", std, positive=True), dtype=np.float64)
    return (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)


def normalize_crop(
    crop: np.ndarray,
    a_rgb: np.ndarray,
    b_rgb: np.ndarray,
    to_rgb: bool,
    jitter: Sequence[float] | None = None,
) -> np.ndarray:
    """(H, W, 3) uint8 B, G, R crop -> (3, H, W) float32 ``value * a + b``, channels in
    R, G, B (``to_rgb``) or B, G, R order; ``a_rgb``, ``b_rgb`` from :func:`normalization`.

    ``jitter`` = (brightness, contrast, saturation) factors, applied in [0, 255] before
    the normalisation (training only; None or all 1 for none).
    """
    h, w = crop.shape[:2]
    order = (2, 1, 0) if to_rgb else (0, 1, 2)  # output channel c <- crop channel order[c]
    a = a_rgb if to_rgb else a_rgb[::-1]
    b = b_rgb if to_rgb else b_rgb[::-1]
    out = np.empty((3, h, w), dtype=np.float32)
    planes = cv2.split(crop)
    if jitter is None or all(v == 1.0 for v in jitter):
        for c in range(3):  # out[c] = plane * a + b, converted and scaled in one pass
            p = planes[order[c]]
            cv2.addWeighted(p, float(a[c]), p, 0.0, float(b[c]), dst=out[c], dtype=cv2.CV_32F)
        return out
    for c in range(3):
        out[c] = planes[order[c]]
    brightness, contrast, saturation = (float(v) for v in jitter)
    out *= brightness
    gray_w = np.array(_GRAY_WEIGHTS, dtype=np.float32)
    gray_w = gray_w if to_rgb else gray_w[::-1]
    gray = np.tensordot(gray_w, out, axes=1)
    out += (1.0 - contrast) * (float(gray.mean()) - out)
    gray = np.tensordot(gray_w, out, axes=1)
    out += (1.0 - saturation) * (gray[None] - out)
    np.clip(out, 0.0, 255.0, out=out)
    out *= a[:, None, None]
    out += b[:, None, None]
    return out


def crop_person(
    image: np.ndarray,
    center: Sequence[float] | np.ndarray,
    scale: Sequence[float] | np.ndarray,
    size: tuple[int, int],
    convention: str,
    rotation: float = 0.0,
    *,
    heatmap_size: tuple[int, int] | None = None,
    to_rgb: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Crop:
    """The crop of the person at ``center``/``scale`` of a BGR image, as the network sees it.

    :func:`darkpose.geometry.crop_affine` at the input and heatmap sizes, a bilinear
    ``cv2.warpAffine`` (black outside the photo), then :func:`normalize_crop`. This is
    ``TopDownTransform(train=False)``'s crop.

    Parameters
    ----------
    image : (H_img, W_img, 3) uint8 NumPy array, B, G, R as OpenCV decodes (any loader: a
        file, a video frame, a synthetic picture)
    center : (2,) crop centre in image pixels
    scale : (2,) crop window / 200 (:func:`darkpose.geometry.boxes_to_center_scale`)
    size : (W, H) of the network input
    convention : {"darkpose", "hrnet"}
    rotation : degrees
    heatmap_size : (W, H), default ``size // 4``
    to_rgb : channel order of ``pixels``: R, G, B (else B, G, R)
    mean, std : in R, G, B order, default ImageNet's

    Raises
    ------
    TypeError
        An image that is not a NumPy array.
    ValueError
        An image that is not a non-empty (H, W, 3) uint8 array, a mean or std that is not
        three finite numbers (std positive), or a centre, scale or rotation that
        :func:`darkpose.geometry.crop_affine` rejects (naming the field).
    """
    check_image(image)
    a, b = normalization(mean, std)
    size = (int(size[0]), int(size[1]))
    heatmap_size = (size[0] // 4, size[1] // 4) if heatmap_size is None else tuple(heatmap_size)
    a_in, a_hm = geometry.crop_affine(center, scale, rotation, [size, heatmap_size], convention)
    crop = cv2.warpAffine(image, a_in, size, flags=cv2.INTER_LINEAR)
    pixels = normalize_crop(crop, a, b, to_rgb)
    return Crop(pixels, a_in, a_hm, geometry.invert_affine(a_hm))
