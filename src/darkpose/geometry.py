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

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

Convention = Literal["darkpose", "hrnet"]
CONVENTIONS: tuple[str, ...] = ("darkpose", "hrnet")

PIXEL_STD = 200.0
"""Pixels per unit of ``scale`` (the reference code's ``pixel_std``)."""

BOX_PADDING = 1.25
"""Enlargement of the aspect-padded person box (the reference code's factor 1.25)."""

MAX_COORDINATE = 2.0**24
"""Largest coordinate and crop window (pixels) :func:`crop_affine` accepts: beyond 2**24
float32, the precision of the crop and of the targets, no longer resolves one pixel."""


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def box_extent(first, last, convention: Convention = "darkpose"):
    """Width (or height) of a box from its first to its last pixel coordinate.

    ``last - first + 1`` in ``"darkpose"`` (pixels counted inclusively, as the DarkPose
    loaders do) and ``last - first`` in ``"hrnet"``. The one definition behind the clean
    ground-truth boxes (:func:`clean_boxes`) and the half-body box of the transform.

    first, last : floats or arrays of the same shape -> the same shape
    """
    return last - first + 1.0 if convention == "darkpose" else last - first


def clean_boxes(
    boxes: np.ndarray, image_sizes: np.ndarray, convention: Convention = "darkpose"
) -> tuple[np.ndarray, np.ndarray]:
    """Clip COCO boxes to their image and flag the degenerate ones.

    Follows the reference loaders: x1 = max(0, x), x2 = min(width - 1, x1 + max(0, w - 1))
    (same for y); the clean width is :func:`box_extent` (x2 - x1 + 1 for ``"darkpose"``,
    x2 - x1 for ``"hrnet"``).

    A box is valid when its coordinates are finite and within +-:data:`MAX_COORDINATE`
    (2**24 px), its w and h are positive, it overlaps its image, and its clean w and h are
    both at least 1 px, in either convention (under ``"hrnet"`` a box one pixel wide
    cleans to width 0 and is invalid). The crop of a valid box is never degenerate: its
    window 200 s is at least 1.25 px on both sides. Detections (used unclipped, as the
    reference) take the same rule: use ``valid`` and keep the boxes.

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
        x1 = np.maximum(0.0, x)
        y1 = np.maximum(0.0, y)
        x2 = np.minimum(sizes[:, 0] - 1, x1 + np.maximum(0.0, w - 1))
        y2 = np.minimum(sizes[:, 1] - 1, y1 + np.maximum(0.0, h - 1))
        clean = np.stack(
            [x1, y1, box_extent(x1, x2, convention), box_extent(y1, y2, convention)], axis=1
        )
        valid = (np.abs(boxes) <= MAX_COORDINATE).all(axis=1) & (w > 0) & (h > 0)
        valid &= (x < sizes[:, 0]) & (y < sizes[:, 1]) & (x + w > 0) & (y + h > 0)
        valid &= (clean[:, 2] >= 1.0) & (clean[:, 3] >= 1.0)
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


def _all(ok) -> bool:
    """``ok.all()`` for a bool array, ``ok`` for a Python bool (``np.all`` costs microseconds)."""
    return ok if isinstance(ok, bool) else bool(ok.all())


def _crop_terms(values, convention: str, inverse: bool, xp, row: int = 0) -> tuple:
    """The six coefficients (a, b, tx, c, d, ty) of the crop affine, from (cx, cy, 200 s_w,
    200 s_h, r, W, H) given as Python floats (``xp=math``: one box, output row ``row``) or
    arrays (``xp=np``), after checking them (ValueError naming the field and row)."""
    cx, cy, src, src_h, rot, out_w, out_h = values
    low = 1.0 if convention == "darkpose" else 0.0
    ok_c = (abs(cx) <= MAX_COORDINATE) & (abs(cy) <= MAX_COORDINATE)
    ok_s = (src > low) & (src <= MAX_COORDINATE) & (src_h > low) & (src_h <= MAX_COORDINATE)
    ok_r = abs(rot) < np.inf
    ok_o = (out_w > 0) & (out_w <= MAX_COORDINATE) & (out_h > 0) & (out_h <= MAX_COORDINATE)
    if not _all(ok_c & ok_s & ok_r & ok_o):
        _raise_crop_error(values, [ok_c, ok_s, ok_r, ok_o], low, convention, row)
    if convention == "darkpose":
        k = (out_w - 1.0) / (src - 1.0)
        dx, dy = (out_w - 1.0) / 2.0, (out_h - 1.0) / 2.0
    else:
        k = out_w / src
        dx, dy = out_w / 2.0, out_h / 2.0
    rad = xp.radians(rot)
    cos, sin = xp.cos(rad), xp.sin(rad)
    if not inverse:  # q = k [[cos, sin], [-sin, cos]] (p - c) + d
        kc, ks = k * cos, k * sin
        return kc, ks, dx - kc * cx - ks * cy, -ks, kc, dy + ks * cx - kc * cy
    ic, is_ = cos / k, sin / k  # p = (1/k) [[cos, -sin], [sin, cos]] (q - d) + c
    return ic, -is_, cx - ic * dx + is_ * dy, is_, ic, cy - is_ * dx - ic * dy


def _raise_crop_error(values, oks, low: float, convention: str, row: int) -> None:
    cx, cy, src, src_h, rot, out_w, out_h = np.broadcast_arrays(*values)
    fields = [
        ("centers", "finite coordinates within +-2**24 px", np.stack([cx, cy], -1)),
        ("scales", f"a crop window 200 * scale in ({low:g}, 2**24] px under the "
                   f"{convention!r} convention", np.stack([src, src_h], -1) / PIXEL_STD),
        ("rotations", "finite degrees", rot),
        ("output_size", "positive (W, H) up to 2**24", np.stack([out_w, out_h], -1)),
    ]
    for (name, expected, got), ok in zip(fields, oks, strict=True):
        bad = ~np.broadcast_to(ok, cx.shape)
        if bad.any():
            i = int(np.argmax(bad.ravel()))
            value = got.reshape(-1, *got.shape[cx.ndim:])[i]
            raise ValueError(f"{name}[{i + row}]: expected {expected}, got {value.tolist()}")


def crop_affine(
    centers: np.ndarray,
    scales: np.ndarray,
    rotations: np.ndarray | float,
    output_size: Sequence[float] | np.ndarray,
    convention: Convention = "darkpose",
    inverse: bool = False,
) -> np.ndarray:
    """Affine matrices of the top-down crop (or their inverses), in closed form.

    The crop maps the centre c to the output centre d, zooms by k and rotates by -r:
    ``q = k R(-r) (p - c) + d`` with R the image-plane rotation matrix. ``darkpose``:
    k = (W - 1) / (200 s_w - 1), d = ((W-1)/2, (H-1)/2); ``hrnet``: k = W / (200 s_w),
    d = (W/2, H/2). The same call with ``output_size`` = heatmap size gives the
    heatmap-space affine used for targets and recovery. One box (at one or a few output
    sizes) is computed with Python floats, a few microseconds (the transform calls it per
    sample); many boxes as arrays.

    Parameters
    ----------
    centers : (N, 2) or (2,) array
        Finite, within +-:data:`MAX_COORDINATE` px.
    scales : (N, 2) or (2,) array
        Only ``scales[:, 0]`` sets the zoom (boxes are already at the output's aspect).
        Both windows 200 s must be in (1, 2**24] px (``darkpose``: its zoom is infinite at
        1 px and mirrors below) or (0, 2**24] px (``hrnet``).
    rotations : (N,) array or float
        Degrees, finite; positive turns the person counter-clockwise in the crop.
    output_size : (W, H), or (N, 2) for one size per row
    convention : {"darkpose", "hrnet"}
    inverse : bool
        Return the output -> source affine instead.

    Returns
    -------
    affine : (N, 2, 3) float64, N the broadcast length of the inputs (1 for one box).
    ValueError naming the field (and row) when an input is out of range.
    """
    _check_convention(convention)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    windows = np.asarray(scales, dtype=np.float64).reshape(-1, 2) * PIXEL_STD
    rot = np.asarray(rotations, dtype=np.float64)
    size = np.asarray(output_size, dtype=np.float64)
    if size.ndim not in (1, 2) or size.shape[-1] != 2:
        raise ValueError(f"output_size: expected (W, H) or (N, 2), got {output_size!r}")
    if len(centers) == 1 and len(windows) == 1 and rot.size == 1:
        box = [*centers[0].tolist(), *windows[0].tolist(), rot.item()]
        sizes = size.reshape(-1, 2).tolist()
        terms = [
            _crop_terms(box + wh, convention, inverse, math, row)
            for row, wh in enumerate(sizes)
        ]
        return np.array(terms).reshape(-1, 2, 3)
    values = (*centers.T, *windows.T, rot, size[..., 0], size[..., 1])
    terms = _crop_terms(values, convention, inverse, np)
    return np.stack(np.broadcast_arrays(*terms), axis=-1).reshape(-1, 2, 3)


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of affine maps, in closed form.

    affine (..., 2, 3) -> (..., 2, 3); ValueError when one is singular or not finite.
    """
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape[-2:] != (2, 3):
        raise ValueError(f"affine must be (..., 2, 3), got shape {affine.shape}")
    # one affine as Python floats (a few microseconds), many as arrays: the same formula
    rows = affine.tolist() if affine.ndim == 2 else np.moveaxis(affine, (-2, -1), (0, 1))
    (a, b, tx), (c, d, ty) = rows
    det = a * d - b * c
    if not _all((abs(det) > 0) & (abs(det) < np.inf)):
        raise ValueError("affine matrix is singular (zero determinant) or not finite")
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    terms = (ia, ib, -(ia * tx + ib * ty), ic, id_, -(ic * tx + id_ * ty))
    if affine.ndim == 2:
        return np.array(terms).reshape(2, 3)
    return np.stack(terms, axis=-1).reshape(affine.shape)


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The affine ``outer o inner`` (apply ``inner`` first).

    outer (..., 2, 3), inner (..., 2, 3) -> (..., 2, 3), broadcasting over the leading axes.
    """
    outer = np.asarray(outer, dtype=np.float64)
    inner = np.asarray(inner, dtype=np.float64)
    out = outer[..., :2] @ inner  # [A_o A_i, A_o t_i]
    out[..., 2] += outer[..., 2]
    return out


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


def transform_covariances(covariances: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Carry 2x2 covariances through affine maps: C' = A C A^T, A the linear part.

    The covariance of a point's error follows the point through the map (the translation
    has no effect on it). An unknown covariance (any non-finite entry, as decode writes an
    infinite variance) stays unknown: infinite variances and 0 covariance, never NaN.

    Parameters
    ----------
    covariances : (N, K, 2, 2) array (or (..., K, 2, 2) with matching leading axes),
        [[var x, cov], [cov, var y]].
    affine : (N, 2, 3) array (or (..., 2, 3)).

    Returns
    -------
    (N, K, 2, 2) float64
    """
    cov = np.asarray(covariances, dtype=np.float64)
    affine = np.asarray(affine, dtype=np.float64)
    if cov.ndim < 3 or cov.shape[-2:] != (2, 2):
        raise ValueError(f"covariances must be (..., K, 2, 2), got shape {cov.shape}")
    if affine.shape[-2:] != (2, 3):
        raise ValueError(f"affine must be (..., 2, 3), got shape {affine.shape}")
    lin = affine[..., None, :, :2]
    known = np.isfinite(cov).all(axis=(-2, -1))
    with np.errstate(invalid="ignore", over="ignore"):
        out = lin @ np.where(known[..., None, None], cov, 0.0) @ np.swapaxes(lin, -1, -2)
    known = known & np.isfinite(out).all(axis=(-2, -1))
    unknown = np.array([[np.inf, 0.0], [0.0, np.inf]])
    return np.where(known[..., None, None], out, unknown)


def flip_index(num_keypoints: int, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """(K,) index that swaps left and right keypoints: ``keypoints[..., flip_index(K, pairs), :]``.

    Keypoints in no pair keep their place; ValueError for a pair out of range.
    """
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
    out = keypoints[..., flip_index(keypoints.shape[-2], flip_pairs), :].copy()
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
    index = flip_index(heatmaps.shape[-3], flip_pairs)
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
