"""Drawing poses on images: skeletons, keypoints, person boxes, a heatmap overlay; image grids.

Images are BGR ``uint8`` (H, W, 3) as OpenCV reads and writes them (a grey-scale (H, W) or
(H, W, 1) image is accepted and drawn on in colour). Keypoints are (P, K, 3) in image pixels,
(x, y, score), pixel centres at integer coordinates; boxes (P, 4) are (x, y, w, h).

Colours come from the metadata's ``keypoint_colors`` / ``limb_colors`` (``[R, G, B]``, see
:mod:`darkpose.data.keypoint_metadata`) when it gives them; otherwise keypoints whose name
holds the word ``left`` / ``right`` (or, for names without it, the first / second member of a
flip pair) are drawn in :data:`DEFAULT_COLORS` ``"left"`` / ``"right"``, the rest in
``"centre"``, and a limb takes its ends' side when both ends share one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import cv2
import numpy as np

from darkpose.data._io import finite_number
from darkpose.data.keypoint_metadata import KeypointMetadata
from darkpose.geometry import MAX_COORDINATE
from darkpose.tracking import _array

__all__ = ["DEFAULT_COLORS", "HEATMAP_ALPHA", "draw_poses", "image_grid"]

DEFAULT_COLORS: dict[str, tuple[int, int, int]] = {
    "left": (0, 170, 255),
    "right": (255, 140, 0),
    "centre": (0, 220, 0),
}
"""(R, G, B) of the default palette, by side of the body."""

BOX_COLOR = (255, 255, 255)
"""(B, G, R) of the person boxes."""

HEATMAP_ALPHA = 0.6
"""Opacity of the heatmap colour map where the heatmap is 1 (it falls with the value, so the
image is untouched where the heatmap is 0)."""

_SHIFT = 4  # fractional bits of the fixed-point coordinates given to OpenCV
_ONE = 1 << _SHIFT


def _bgr(image, field: str) -> np.ndarray:
    """``image`` as BGR uint8 (H, W, 3): grey-scale converted; the same array if already BGR."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{field}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{field}: expected dtype uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0:
        return image
    if (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1)) and image.size > 0:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    raise ValueError(f"{field}: expected an image of shape (H, W, 3) or (H, W), got {image.shape}")


def _side(name: str) -> str | None:
    words = re.split(r"[^a-z]+", name.lower())
    return "left" if "left" in words else "right" if "right" in words else None


def _palette(metadata: KeypointMetadata) -> tuple[list, list]:
    """(K keypoint colours, one colour per skeleton pair), each as a (B, G, R) tuple."""
    sides: list[str] = ["centre"] * metadata.num_keypoints
    for a, b in metadata.flip_pairs:
        sides[a], sides[b] = "left", "right"
    for i, name in enumerate(metadata.keypoint_names):  # a name that says its side wins
        sides[i] = _side(name) or sides[i]
    kp = metadata.keypoint_colors or [DEFAULT_COLORS[s] for s in sides]
    limbs = metadata.limb_colors or [
        DEFAULT_COLORS[sides[i] if sides[i] == sides[j] else "centre"] for i, j in metadata.skeleton
    ]
    return [tuple(c[::-1]) for c in kp], [tuple(c[::-1]) for c in limbs]


def _overlay_heatmaps(image: np.ndarray, heatmaps: np.ndarray, affines: np.ndarray) -> None:
    """Blend the per-person max over keypoints of ``heatmaps`` (P, K, h, w), warped into the
    image by ``affines`` (P, 2, 3), into ``image`` in place as a JET colour map."""
    height, width = image.shape[:2]
    total = np.zeros((height, width), np.float32)
    for hm, affine in zip(heatmaps, affines, strict=True):
        if not np.isfinite(affine).all() or np.linalg.det(affine[:, :2]) == 0:
            continue  # no placement in the image: nothing to draw for this person
        peak = np.nan_to_num(hm, nan=0.0, posinf=0.0, neginf=0.0).max(axis=0).astype(np.float32)
        warped = cv2.warpAffine(peak, affine, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
        np.maximum(total, warped, out=total)
    value = np.clip(total, 0.0, 1.0)
    colour = cv2.applyColorMap(np.round(value * 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = (HEATMAP_ALPHA * value)[..., None]
    image[...] = np.round(image * (1 - alpha) + colour * alpha).astype(np.uint8)


def _fixed(point: np.ndarray) -> tuple[int, int]:
    return int(round(point[0] * _ONE)), int(round(point[1] * _ONE))


def draw_poses(
    image_bgr: np.ndarray,
    keypoints,
    metadata: KeypointMetadata,
    *,
    score_threshold: float = 0.3,
    boxes=None,
    heatmaps=None,
    heatmap_to_image=None,
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of ``image_bgr`` with each person's skeleton drawn.

    Parameters
    ----------
    image_bgr : (H, W, 3) uint8 BGR (or grey (H, W)); not modified
    keypoints : (P, K, 3) (x, y, score) in image pixels, K = ``metadata.num_keypoints``.
        A keypoint with a score below ``score_threshold``, or a non-finite x, y or score, or a
        coordinate beyond +-2**24 px, is hidden, and so are the limbs that touch it.
    metadata : KeypointMetadata
        The skeleton (limbs) and the colours.
    score_threshold : float
    boxes : (P, 4) (x, y, w, h), optional
        Drawn as rectangles from (x, y) to (x + w, y + h); non-finite ones are skipped.
    heatmaps : (P, K, h, w), optional
        Overlay: per person the max over keypoints, warped into the image by
        ``heatmap_to_image`` (needed with it) and blended as a colour map
        (:data:`HEATMAP_ALPHA` times the value, clipped to [0, 1]; NaN counts as 0).
    heatmap_to_image : (P, 2, 3), optional
        Affines from heatmap pixels to image pixels; a person whose affine is not finite or
        is singular gets no overlay.
    thickness : int, optional
        Limb line width in pixels; by default max(1, round(max(H, W) / 320)). Keypoint dots
        have radius ``thickness + 1``.

    Returns
    -------
    (H, W, 3) uint8 BGR, a new array.

    Raises
    ------
    ValueError, TypeError
        An argument of the wrong shape or type, named in the message.
    """
    image = _bgr(image_bgr, "image_bgr")
    image = image.copy() if image is image_bgr else image
    k = metadata.num_keypoints
    kpts = _array(keypoints, "keypoints", (None, k, 3))
    persons = len(kpts)
    if not finite_number(score_threshold):
        raise ValueError(f"score_threshold: expected a finite number, got {score_threshold!r}")
    if thickness is None:
        thickness = max(1, round(max(image.shape[:2]) / 320))
    elif isinstance(thickness, bool) or not isinstance(thickness, int) or thickness < 1:
        raise ValueError(f"thickness: expected a positive integer, got {thickness!r}")
    if heatmaps is not None or heatmap_to_image is not None:
        if heatmaps is None or heatmap_to_image is None:
            raise ValueError("heatmaps and heatmap_to_image: give both or neither")
        hms = _array(heatmaps, "heatmaps", (persons, k, None, None))
        if hms.shape[2] == 0 or hms.shape[3] == 0:
            raise ValueError(f"heatmaps: expected a non-empty (h, w), got {hms.shape}")
        _overlay_heatmaps(image, hms, _array(heatmap_to_image, "heatmap_to_image", (persons, 2, 3)))
    if boxes is not None:
        for x, y, w, h in _array(boxes, "boxes", (persons, 4)):
            corners = np.array([[x, y], [x + w, y + h]])
            if np.isfinite(corners).all() and np.abs(corners).max() <= MAX_COORDINATE:
                cv2.rectangle(image, _fixed(corners[0]), _fixed(corners[1]), BOX_COLOR,
                              thickness, cv2.LINE_AA, _SHIFT)
    with np.errstate(invalid="ignore"):
        shown = (
            np.isfinite(kpts).all(axis=2)
            & (kpts[..., 2] >= score_threshold)
            & (np.abs(kpts[..., :2]) <= MAX_COORDINATE).all(axis=2)
        )
    kp_colors, limb_colors = _palette(metadata)
    for pose, ok in zip(kpts, shown, strict=True):
        for (i, j), colour in zip(metadata.skeleton, limb_colors, strict=True):
            if ok[i] and ok[j]:
                cv2.line(image, _fixed(pose[i]), _fixed(pose[j]), colour, thickness, cv2.LINE_AA, _SHIFT)
        for i in np.flatnonzero(ok):
            cv2.circle(image, _fixed(pose[i]), (thickness + 1) * _ONE, kp_colors[i], -1, cv2.LINE_AA, _SHIFT)
    return image


def image_grid(
    images: Sequence[np.ndarray], columns: int, cell_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Tile images into one, row by row.

    Parameters
    ----------
    images : sequence of (H_i, W_i, 3) uint8 BGR (or grey) images, at least one
    columns : int
        Cells per row (at most ``len(images)`` are used).
    cell_size : (W, H), optional
        Size of each cell; by default the largest width and height among the images. Each
        image is scaled to fit its cell, aspect kept, centred on black.

    Returns
    -------
    (rows * H, min(columns, n) * W, 3) uint8 BGR, rows = ceil(n / columns).
    """
    images = [_bgr(im, f"images[{i}]") for i, im in enumerate(images)]
    if not images:
        raise ValueError("images: expected at least one image")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns: expected a positive integer, got {columns!r}")
    if cell_size is None:
        cell_w, cell_h = max(im.shape[1] for im in images), max(im.shape[0] for im in images)
    else:
        if not (
            isinstance(cell_size, Sequence)
            and len(cell_size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in cell_size)
        ):
            raise ValueError(f"cell_size: expected (W, H), two positive integers, got {cell_size!r}")
        cell_w, cell_h = cell_size
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    grid = np.zeros((rows * cell_h, columns * cell_w, 3), np.uint8)
    for n, im in enumerate(images):
        h, w = im.shape[:2]
        zoom = min(cell_w / w, cell_h / h)
        new_w, new_h = max(1, min(cell_w, round(w * zoom))), max(1, min(cell_h, round(h * zoom)))
        if (new_w, new_h) != (w, h):
            im = cv2.resize(im, (new_w, new_h), interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
        top = (n // columns) * cell_h + (cell_h - new_h) // 2
        left = (n % columns) * cell_w + (cell_w - new_w) // 2
        grid[top : top + new_h, left : left + new_w] = im
    return grid
