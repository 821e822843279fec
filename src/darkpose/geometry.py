"""Geometry of top-down pose estimation: boxes, centre/scale, crop affines, point transforms.

Everything here works on arrays of boxes at once (no Python loop per box) and knows no
images: the crop itself (``cv2.warpAffine``) lives in :mod:`darkpose.data.transforms`.

Two conventions (DESIGN.md section 3) are supported wherever they differ:

``"darkpose"`` (default; the DARK checkpoints were trained with it)
    box (x, y, w, h) -> centre (x + (w-1)/2, y + (h-1)/2); the crop affine maps the centre
    to ((W-1)/2, (H-1)/2) and a source length of (200*s - 1) onto (W - 1), i.e. pixel
    centres of the first and last output columns sit on the box's first and last pixel.
    Flip is x' = W - 1 - x; no heatmap shift at flip test.
``"hrnet"`` (official HRNet checkpoints)
    centre (x + w/2, y + h/2); centre -> (W/2, H/2); a length of 200*s -> W; the flipped
    heatmap is shifted right by one pixel at flip test.

In both, the box is padded to the aspect ratio of the network input and enlarged by 1.25;
``scale`` is (w, h) / 200 (the ``pixel_std`` of the reference code). The crop is a
similarity (uniform zoom set by ``scale[..., 0]``, rotation ``r`` in degrees about the
centre, counter-clockwise in the image as displayed), exactly like the reference
``get_affine_transform``, but computed in closed form for arrays.

Shapes: boxes (N, 4) as (x, y, w, h); centres and scales (N, 2); rotations (N,);
affines (N, 2, 3) acting on column vectors (x, y, 1); points (N, K, 2) in (x, y) order.
Sizes are (W, H), as in the official configs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Convention = Literal["darkpose", "hrnet"]
CONVENTIONS: tuple[str, ...] = ("darkpose", "hrnet")

PIXEL_STD = 200.0
"""Pixels per unit of ``scale`` (the reference code's ``pixel_std``)."""

BOX_PADDING = 1.25
"""Enlargement of the aspect-padded person box (the reference code's factor 1.25)."""


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _as_size(size: Sequence[float]) -> tuple[float, float]:
    if len(size) != 2:
        raise ValueError(f"a size is (W, H), got {size!r}")
    w, h = float(size[0]), float(size[1])
    if not (w > 0 and h > 0):
        raise ValueError(f"a size must be positive, got {size!r}")
    return w, h


def clean_boxes(
    boxes: np.ndarray, image_sizes: np.ndarray, convention: Convention = "darkpose"
) -> tuple[np.ndarray, np.ndarray]:
    """Clip COCO boxes to their image and flag the degenerate ones.

    Follows the reference loaders: x1 = max(0, x), x2 = min(width - 1, x1 + max(0, w - 1))
    (same for y); the clean width is x2 - x1 + 1 for ``"darkpose"`` and x2 - x1 for
    ``"hrnet"``. A box is invalid when a coordinate is not finite, when w <= 0 or h <= 0
    (zero area), or when it lies entirely outside its image.

    Parameters
    ----------
    boxes : (N, 4) array
        (x, y, w, h) in image pixels.
    image_sizes : (N, 2) or (2,) array
        (width, height) of each box's image.
    convention : {"darkpose", "hrnet"}

    Returns
    -------
    clean : (N, 4) float64 array
        Clipped boxes (x, y, w, h); rows of invalid boxes are left as given.
    valid : (N,) bool array
    """
    _check_convention(convention)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sizes = np.broadcast_to(np.asarray(image_sizes, dtype=np.float64), (len(boxes), 2))
    x, y, w, h = boxes.T
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(boxes).all(axis=1) & (w > 0) & (h > 0)
        valid &= (x < sizes[:, 0]) & (y < sizes[:, 1]) & (x + w > 0) & (y + h > 0)
        x1 = np.maximum(0.0, x)
        y1 = np.maximum(0.0, y)
        x2 = np.minimum(sizes[:, 0] - 1, x1 + np.maximum(0.0, w - 1))
        y2 = np.minimum(sizes[:, 1] - 1, y1 + np.maximum(0.0, h - 1))
        valid &= (x2 >= x1) & (y2 >= y1)
    extra = 1.0 if convention == "darkpose" else 0.0
    clean = np.stack([x1, y1, x2 - x1 + extra, y2 - y1 + extra], axis=1)
    clean[~valid] = boxes[~valid]
    return clean, valid


def boxes_to_center_scale(
    boxes: np.ndarray,
    aspect_ratio: float,
    padding: float = BOX_PADDING,
    convention: Convention = "darkpose",
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of boxes padded to an aspect ratio and enlarged by ``padding``.

    Parameters
    ----------
    boxes : (N, 4) array
        (x, y, w, h).
    aspect_ratio : float
        W / H of the network input (e.g. 192 / 256).
    padding : float
        Enlargement after the aspect padding (1.25 in the reference; 1.0 for none).
    convention : {"darkpose", "hrnet"}
        Centre (x + (w-1)/2, y + (h-1)/2) or (x + w/2, y + h/2).

    Returns
    -------
    centers : (N, 2) float64
    scales : (N, 2) float64
        (w, h) / 200 * padding after padding w or h up to the aspect ratio.
    """
    _check_convention(convention)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x, y, w, h = boxes.T
    off = 0.5 * (boxes[:, 2:] - 1.0) if convention == "darkpose" else 0.5 * boxes[:, 2:]
    centers = boxes[:, :2] + off
    wider = w > aspect_ratio * h
    taller = w < aspect_ratio * h
    w, h = np.where(taller, h * aspect_ratio, w), np.where(wider, w / aspect_ratio, h)
    scales = np.stack([w, h], axis=1) / PIXEL_STD * padding
    return centers, scales


def center_scale_to_boxes(
    centers: np.ndarray,
    scales: np.ndarray,
    padding: float = BOX_PADDING,
    convention: Convention = "darkpose",
) -> np.ndarray:
    """The (padded) box of a centre and scale: the inverse of :func:`boxes_to_center_scale`
    for a box already at the aspect ratio.

    centers (N, 2), scales (N, 2) -> boxes (N, 4) float64 (x, y, w, h)
    """
    _check_convention(convention)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    wh = np.asarray(scales, dtype=np.float64).reshape(-1, 2) * PIXEL_STD / padding
    off = 0.5 * (wh - 1.0) if convention == "darkpose" else 0.5 * wh
    return np.concatenate([centers - off, wh], axis=1)


def area_from_scale(scales: np.ndarray) -> np.ndarray:
    """Area (200 s_w)(200 s_h) of the crop window, as the reference uses for OKS NMS.

    scales (N, 2) -> (N,)
    """
    scales = np.asarray(scales, dtype=np.float64)
    return np.prod(scales * PIXEL_STD, axis=-1)


def crop_affine(
    centers: np.ndarray,
    scales: np.ndarray,
    rotations: np.ndarray | float,
    output_size: Sequence[float],
    convention: Convention = "darkpose",
    inverse: bool = False,
) -> np.ndarray:
    """Affine matrices of the top-down crop (or their inverses), in closed form.

    The crop maps the centre c to the output centre d, zooms by k and rotates by -r:
    ``q = k R(-r) (p - c) + d`` with R the image-plane rotation matrix. ``darkpose``:
    k = (W - 1) / (200 s_w - 1), d = ((W-1)/2, (H-1)/2); ``hrnet``: k = W / (200 s_w),
    d = (W/2, H/2). The same call with ``output_size`` = heatmap size gives the
    heatmap-space affine used for targets and recovery.

    Parameters
    ----------
    centers : (N, 2) array
    scales : (N, 2) array
        Only ``scales[:, 0]`` sets the zoom (boxes are already at the output's aspect).
    rotations : (N,) array or float
        Degrees; positive turns the person counter-clockwise in the crop.
    output_size : (W, H)
    convention : {"darkpose", "hrnet"}
    inverse : bool
        Return the output -> source affine instead.

    Returns
    -------
    affine : (N, 2, 3) float64
    """
    _check_convention(convention)
    out_w, out_h = _as_size(output_size)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    scales = np.asarray(scales, dtype=np.float64).reshape(-1, 2)
    n = len(centers)
    rot = np.broadcast_to(np.asarray(rotations, dtype=np.float64), (n,))
    src_len = scales[:, 0] * PIXEL_STD
    if convention == "darkpose":
        k = (out_w - 1.0) / (src_len - 1.0)
        dst = np.array([(out_w - 1.0) / 2.0, (out_h - 1.0) / 2.0])
    else:
        k = out_w / src_len
        dst = np.array([out_w / 2.0, out_h / 2.0])
    rad = np.deg2rad(rot)
    cos, sin = np.cos(rad), np.sin(rad)
    a = np.empty((n, 2, 3), dtype=np.float64)
    if not inverse:
        # q = k [[cos, sin], [-sin, cos]] (p - c) + d
        a[:, 0, 0] = k * cos
        a[:, 0, 1] = k * sin
        a[:, 1, 0] = -k * sin
        a[:, 1, 1] = k * cos
        a[:, :, 2] = dst - np.einsum("nij,nj->ni", a[:, :, :2], centers)
    else:
        # p = (1/k) [[cos, -sin], [sin, cos]] (q - d) + c
        a[:, 0, 0] = cos / k
        a[:, 0, 1] = -sin / k
        a[:, 1, 0] = sin / k
        a[:, 1, 1] = cos / k
        a[:, :, 2] = centers - np.einsum("nij,j->ni", a[:, :, :2], dst)
    return a


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of affine maps, in closed form.

    affine (..., 2, 3) -> (..., 2, 3)
    """
    affine = np.asarray(affine, dtype=np.float64)
    a, b, tx = affine[..., 0, 0], affine[..., 0, 1], affine[..., 0, 2]
    c, d, ty = affine[..., 1, 0], affine[..., 1, 1], affine[..., 1, 2]
    det = a * d - b * c
    if np.any(det == 0):
        raise ValueError("affine matrix is singular (zero determinant)")
    inv = np.empty_like(affine)
    inv[..., 0, 0] = d / det
    inv[..., 0, 1] = -b / det
    inv[..., 1, 0] = -c / det
    inv[..., 1, 1] = a / det
    inv[..., 0, 2] = -(inv[..., 0, 0] * tx + inv[..., 0, 1] * ty)
    inv[..., 1, 2] = -(inv[..., 1, 0] * tx + inv[..., 1, 1] * ty)
    return inv


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The affine ``outer o inner`` (apply ``inner`` first).

    outer (..., 2, 3), inner (..., 2, 3) -> (..., 2, 3), broadcasting over the leading axes.
    """
    outer = np.asarray(outer, dtype=np.float64)
    inner = np.asarray(inner, dtype=np.float64)
    lin = np.einsum("...ij,...jk->...ik", outer[..., :2], inner[..., :2])
    t = np.einsum("...ij,...j->...i", outer[..., :2], inner[..., 2]) + outer[..., 2]
    return np.concatenate([lin, t[..., None]], axis=-1)


def hflip_affine(width: float | np.ndarray) -> np.ndarray:
    """The affine of a horizontal flip of an image ``width`` pixels wide: x' = width - 1 - x.

    width scalar or (N,) -> (2, 3) or (N, 2, 3)
    """
    width = np.asarray(width, dtype=np.float64)
    a = np.zeros(width.shape + (2, 3), dtype=np.float64)
    a[..., 0, 0] = -1.0
    a[..., 0, 2] = width - 1.0
    a[..., 1, 1] = 1.0
    return a


def transform_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply affine maps to points.

    Parameters
    ----------
    points : (N, K, 2) array (or (..., K, 2) with matching leading axes); extra columns
        beyond the first two (scores, visibility) are not accepted: pass ``kpts[..., :2]``.
    affine : (N, 2, 3) array (or (..., 2, 3)).

    Returns
    -------
    (N, K, 2) float64
    """
    points = np.asarray(points, dtype=np.float64)
    affine = np.asarray(affine, dtype=np.float64)
    if points.shape[-1] != 2:
        raise ValueError(f"points must end in (x, y), got shape {points.shape}")
    if affine.shape[-2:] != (2, 3):
        raise ValueError(f"affine must be (..., 2, 3), got shape {affine.shape}")
    lin = affine[..., :2]
    return np.einsum("...kj,...ij->...ki", points, lin) + affine[..., None, :, 2]


def _swap_pairs_index(num_keypoints: int, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    index = np.arange(num_keypoints)
    for pair in flip_pairs:
        i, j = int(pair[0]), int(pair[1])
        if not (0 <= i < num_keypoints and 0 <= j < num_keypoints):
            raise ValueError(f"flip pair {tuple(pair)} out of range for {num_keypoints} keypoints")
        index[i], index[j] = j, i
    return index


def flip_keypoints(
    keypoints: np.ndarray, width: float | np.ndarray, flip_pairs: Sequence[Sequence[int]]
) -> np.ndarray:
    """Mirror keypoints horizontally (x' = width - 1 - x) and swap left/right pairs.

    Parameters
    ----------
    keypoints : (..., K, D) array, D >= 2
        (x, y) first; further columns (visibility, score) move with their keypoint.
    width : float or (...,) array
        Width of the frame being mirrored (image, input crop or heatmap).
    flip_pairs : sequence of (i, j)

    Returns
    -------
    (..., K, D) array, a copy. Flipping twice gives back the input exactly.
    """
    keypoints = np.asarray(keypoints)
    out = keypoints[..., _swap_pairs_index(keypoints.shape[-2], flip_pairs), :].copy()
    width = np.asarray(width, dtype=out.dtype if out.dtype.kind == "f" else np.float64)
    if out.dtype.kind != "f":
        out = out.astype(np.float64)
    out[..., 0] = width[..., None] - 1 - out[..., 0]
    return out


def flip_heatmaps(
    heatmaps, flip_pairs: Sequence[Sequence[int]], shift: bool = False
):
    """Flip heatmaps predicted for a mirrored input back to the original frame.

    Mirrors the last axis and swaps left/right channels; with ``shift=True`` (the
    ``"hrnet"`` convention) the result is then shifted right by one pixel, the first
    column keeping its value, as the reference does at flip test. The ``"darkpose"``
    convention needs no shift: its flip x' = W - 1 - x is exact on both the input crop
    and the heatmap.

    Parameters
    ----------
    heatmaps : (N, K, H, W) NumPy array or torch tensor
    flip_pairs : sequence of (i, j)
    shift : bool

    Returns
    -------
    Same type and shape as ``heatmaps`` (a new array/tensor).
    """
    index = _swap_pairs_index(heatmaps.shape[-3], flip_pairs)
    if isinstance(heatmaps, np.ndarray):
        out = heatmaps[..., index, :, ::-1].copy()
        if shift:
            out[..., 1:] = out[..., :-1].copy()
        return out
    if type(heatmaps).__module__.startswith("torch"):
        import torch

        out = torch.flip(heatmaps, dims=(-1,))[..., torch.as_tensor(index), :, :]
        if shift:
            out[..., 1:] = out[..., :-1].clone()
        return out
    raise TypeError(f"heatmaps must be a NumPy array or torch tensor, got {type(heatmaps)}")


def convention_flip_shift(convention: Convention) -> bool:
    """Whether flipped heatmaps are shifted right by one pixel at flip test."""
    _check_convention(convention)
    return convention == "hrnet"
