"""Decoding heatmaps to sub-pixel coordinates (DESIGN.md section 2, "Decode").

The DARK decode of one heatmap h (H x W):

1. m = argmax h; the score is h[m]. A score <= 0 gives the coordinate (0, 0).
2. Modulation: h' = G_k * h, OpenCV's Gaussian kernel of size k with zero padding.
3. P = log(h').
4. Taylor step: mu = m - H^-1 g, with g and H the central first and (wide-stencil)
   second differences of P at m.

Step 4 reads P at 13 points around m, and each of them depends only on h inside the
(4 + k) x (4 + k) window centred on m. So after one full pass (the argmax) all the work is
local: read that window, blur it at the 13 points with one matrix product, take 13 logs.

"dark-reference" is that algorithm exactly as the original code runs it: the rescale
h' <- h' max(h) / max(h') and the clamp at 1e-10 before the log, and no Taylor step unless
1 < x < W - 2 and 1 < y < H - 2.

"dark" (the default) changes what happens at the frame border. Zero padding pulls a peak
near the border inwards; "dark" instead continues the heatmap beyond the frame as the
Gaussian it is assumed to be (:func:`_continuation`), so the Taylor step is as exact at the
border as in the interior. The step is taken only towards a maximum (negative definite
Hessian) and is clipped to 1.5 px per axis.

Torch tensors (any device) are decoded by :mod:`darkpose.codec.torch_decode`, the same
algorithm in torch operations of fixed shape that trace and export to ONNX. What follows in
this module is the NumPy fast path for NumPy arrays, tested against it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from darkpose.codec import _gaussfit
from darkpose.codec._backend import Backend, describe, wrap

DECODE_METHODS = ("argmax", "shift", "dark-reference", "dark")
DARK_MAX_STEP = 1.5  # "dark": the Taylor step is clipped to this many pixels per axis
# "dark": maxima closer than this to an edge (px, at most the window's half-width R) are
# refined by a least-squares Gaussian fit (docs/codec.md, "How dark works")
DARK_FIT_BAND = 4
# "dark" with a blur kernel of at most this size (the sigma-1 configs' 3) fits every maximum:
# there the Taylor step is 1.1-1.4x the Cramer-Rao bound, the fit 1.0x (docs/codec.md); the
# maxima beyond the border band with this many full Gauss-Newton steps (no spread-only step)
DARK_FIT_EVERYWHERE_KERNEL = 3
DARK_INTERIOR_FIT_ITERATIONS = 2
# The largest blur kernel. The configs use 3 and 11; the decode reads a (k + 4)^2 window
# around every maximum, so memory and time grow as k^2 (at 101: 44 kB per keypoint, and a
# kernel of sigma 15.5 px, wider than a 64x48 heatmap). Checked before anything is built.
MAX_BLUR_KERNEL = 101

# P is read at m + (dx, dy) for these 13 offsets; the names index the list below.
_TAPS = (
    (0, 0), (1, 0), (-1, 0), (2, 0), (-2, 0),
    (0, 1), (0, -1), (0, 2), (0, -2),
    (1, 1), (1, -1), (-1, 1), (-1, -1),
)  # fmt: skip
_C, _XP, _XM, _XPP, _XMM, _YP, _YM, _YPP, _YMM, _PP, _PM, _MP, _MM = range(13)

_LOG_FLOOR = 1e-10  # the reference's clamp before the log
_MAX_LOG_RATIO = 30.0  # bound on the continuation ratio beyond the border, exp(30) ~ 1e13
_CHUNK_VALUES = 1 << 25  # heatmap values per chunk (128 MB of float32): bounds the windows' memory


def gaussian_kernel(size: int) -> np.ndarray:
    """The 1-D Gaussian kernel ``cv2.getGaussianKernel(size, 0)`` computes, as float64.

    OpenCV uses fixed tables for sizes 1, 3, 5, 7 (and, since 4.x, 9) and otherwise samples
    a Gaussian with sigma = 0.3 ((size - 1) / 2 - 1) + 0.8, normalised to sum 1. The
    official configs use 3 and 11, which every OpenCV version computes the same way.
    """
    size = _check_kernel(size)
    fixed = {
        1: [1.0],
        3: [0.25, 0.5, 0.25],
        5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
        7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
        9: [v / 256 for v in (4, 13, 30, 51, 60, 51, 30, 13, 4)],
    }
    if size in fixed:
        return np.array(fixed[size], dtype=np.float64)
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    t = np.arange(size, dtype=np.float64) - (size - 1) * 0.5
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def decode(heatmaps: Any, method: str = "dark", blur_kernel: int = 11, return_covariance: bool = False) -> tuple:
    """Decode heatmaps to keypoint coordinates and scores.

    Parameters
    ----------
    heatmaps : array (N, K, H, W), floating point
        NumPy array or torch tensor on any device. Never modified.
    method : {"dark", "dark-reference", "shift", "argmax"}
        "argmax": the integer maximum. "shift": HRNet's quarter-pixel shift towards the
        higher neighbour. "dark-reference": the original DARK decode, exactly.
        "dark": DARK with an exact treatment of the frame border (module docstring).
    blur_kernel : int
        Odd size of the modulation kernel, 1 to :data:`MAX_BLUR_KERNEL` (101); the configs'
        ``BLUR_KERNEL``. Only "dark" and "dark-reference" use it.
    return_covariance : bool
        Also return the estimated covariance of each coordinate's error ("dark" and
        "dark-reference" only; docs/codec.md, "Uncertainty").

    Returns
    -------
    coords : array (N, K, 2), float32
        (x, y) in heatmap pixels; (0, 0) where the score is <= 0.
    scores : array (N, K), float32
        The raw heatmap value at the integer maximum.
    covariance : array (N, K, 2, 2), float32, only with ``return_covariance=True``
        In heatmap px^2, [[var x, cov], [cov, var y]]: the Gauss-Newton covariance of a
        Gaussian fitted around the maximum, scaled by the residual variance of the fit.
        Infinite variances (and 0 covariance) where it is unknown: a score <= 0, a window
        the model does not fit.

    Both are of the input's array type, on the input's device. Non-finite values (NaN,
    +-Inf) in a heatmap are read as 0; see docs/codec.md for every degenerate input.
    """
    if method not in DECODE_METHODS:
        raise ValueError(f"method: expected one of {DECODE_METHODS}, got {method!r}")
    kernel_size = _check_kernel(blur_kernel)
    if not isinstance(return_covariance, bool):
        raise ValueError(f"return_covariance: expected True or False, got {return_covariance!r}")
    if return_covariance and method not in ("dark", "dark-reference"):
        raise ValueError(f"return_covariance: needs method 'dark' or 'dark-reference', got {method!r}")
    if isinstance(heatmaps, torch.Tensor):  # one formulation in torch operations, for any device
        from darkpose.codec.torch_decode import decode_tensor

        _check_heatmaps(heatmaps, heatmaps.is_floating_point())
        return decode_tensor(heatmaps, method, kernel_size, return_covariance)
    backend, hm, restore = wrap(heatmaps, "heatmaps")
    _check_heatmaps(hm, backend.is_float(hm))
    with np.errstate(all="ignore"):  # non-finite values are handled, not warned about
        return _decode(backend, hm, restore, method, kernel_size, return_covariance)


def _check_heatmaps(hm, is_float: bool) -> None:
    if hm.ndim != 4:
        raise ValueError(f"heatmaps: expected 4 dimensions (N, K, H, W), got {describe(hm)}")
    if not is_float:
        raise ValueError(f"heatmaps: expected a floating-point array, got {describe(hm)}")
    if hm.shape[2] < 1 or hm.shape[3] < 1:
        raise ValueError(f"heatmaps: expected H >= 1 and W >= 1, got {describe(hm)}")


def _decode(backend: Backend, hm, restore, method: str, kernel_size: int, return_covariance: bool = False,
            want_spread: bool = False):
    """The NumPy fast path (the module docstring): NumPy arrays only since torch tensors go
    to :mod:`darkpose.codec.torch_decode`; chunked, with the border windows redone apart."""
    n, k, height, width = hm.shape
    maps = hm.reshape(n * k, height * width)
    if maps.dtype not in (backend.float32, backend.float64):
        maps = backend.astype(maps, backend.float32)  # float32 math, or float64 for float64 input
    maps = backend.contiguous(maps)

    index, score, blurred = _locate(backend, maps, height, width, method, kernel_size)
    index, score, recheck = _ignore_non_finite(backend, maps, index, score)
    y, x = backend.xp.divmod(index, width)
    coords = backend.astype(backend.xp.stack((x, y), axis=-1), maps.dtype)
    if want_spread and not len(x):  # an empty batch (N or K of 0)
        return restore(backend.xp.zeros((n, k, 2, 2), backend.float32))
    if method == "shift":
        coords += _quarter_shift(backend, maps, x, y, height, width)
    elif method in ("dark", "dark-reference") and len(x):
        R = kernel_size // 2 + 2
        blurred, border = _blurred_taps(backend, maps, blurred, recheck, index, x, y, height, width, kernel_size, R,
                                        method)
        offset, hessian = _taylor_offsets(backend, blurred, maps, x, y, height, width, kernel_size, method)
        if want_spread:
            return restore(_spread_matrix(backend.xp, hessian).reshape(n, k, 2, 2))
        curvature = 0.5 * (hessian[0] + hessian[2])
        spread = _initial_spread(backend.xp, curvature, kernel_size)
        if method == "dark":  # trust the quadratic model of P within 1.5 px of m
            offset = backend.xp.minimum(backend.xp.maximum(offset, -DARK_MAX_STEP), DARK_MAX_STEP)
            peak = (score > 0) & (curvature < 0)  # a maximum the Taylor step could refine
            offset, spread = _fit_near_border(backend, maps, border, offset, spread, peak, index, x, y, height, width,
                                              kernel_size)
        coords += offset
    coords = backend.xp.where((score > 0)[:, None], coords, 0.0)
    coords = backend.astype(coords, backend.float32).reshape(n, k, 2)
    out = (restore(coords), restore(backend.astype(score, backend.float32).reshape(n, k)))
    if return_covariance and not len(x):
        out += (restore(backend.xp.zeros((n, k, 2, 2), backend.float32)),)
    elif return_covariance:
        cov = _covariance(backend, maps, offset, spread, score, x, y, height, width, kernel_size // 2 + 2)
        out += (restore(backend.astype(cov, backend.float32).reshape(n, k, 2, 2)),)
    return out


# --------------------------------------------------------------------------- the fit


def modulated_spread(heatmaps: Any, method: str = "dark", blur_kernel: int = 11) -> Any:
    """The spread -H^-1 (N, K, 2, 2) of the modulated map h' = G_k * h at its maximum, from
    the Hessian H of P = log h' that the Taylor step uses (float32, the input's array type).

    For a Gaussian of covariance sigma^2 I it is (sigma^2 + v) I, v = :func:`kernel_variance`;
    decode's uncertainty starts its spread from it. NaN where H is singular.
    """
    if method not in ("dark", "dark-reference"):
        raise ValueError(f"method: expected 'dark' or 'dark-reference', got {method!r}")
    kernel_size = _check_kernel(blur_kernel)
    if isinstance(heatmaps, torch.Tensor):
        from darkpose.codec.torch_decode import decode_tensor

        _check_heatmaps(heatmaps, heatmaps.is_floating_point())
        return decode_tensor(heatmaps, method, kernel_size, want_spread=True)
    backend, hm, restore = wrap(heatmaps, "heatmaps")
    _check_heatmaps(hm, backend.is_float(hm))
    with np.errstate(all="ignore"):
        return _decode(backend, hm, restore, method, kernel_size, want_spread=True)


def _spread_matrix(xp, hessian):
    """-H^-1 (M, 2, 2) from (dxx, dxy, dyy), float32; NaN where det H = 0."""
    dxx, dxy, dyy = hessian
    det = dxx * dyy - dxy * dxy
    inv = 1.0 / xp.where(det != 0, det, float("nan"))
    rows = (xp.stack((-dyy * inv, dxy * inv), -1), xp.stack((dxy * inv, -dxx * inv), -1))
    out = xp.stack(rows, -2)
    return out.astype(np.float32) if xp is np else out.to(torch.float32)


def kernel_variance(kernel_size: int) -> float:
    """The variance sum t^2 G_k(t) of the modulation kernel, px^2: a Gaussian of variance s
    blurred by it has variance s + this (sigma'^2 = sigma^2 + this)."""
    return _kernel_variance(_check_kernel(kernel_size))


@functools.cache
def _kernel_variance(kernel_size: int) -> float:
    kernel = gaussian_kernel(kernel_size)
    t = np.arange(len(kernel)) - len(kernel) // 2
    return float((t * t * kernel).sum())


def _initial_spread(xp, curvature, kernel_size):
    """sigma^2 of the raw map from the curvature (dxx + dyy) / 2 of P = log h' at m:
    -1 / curvature - the kernel's variance; the kernel's variance (at least 1) where P is
    not concave or the result is below 0.25 px^2."""
    kvar = kernel_variance(kernel_size)
    fallback = max(kvar, 1.0)
    concave = curvature < 0
    spread = -1.0 / xp.where(concave, curvature, -1.0) - kvar
    return xp.where(concave & (spread >= 0.25) & xp.isfinite(spread), spread, fallback)


def _fit_near_border(backend, maps, border, offset, spread, peak, index, x, y, height, width, kernel_size):
    """"dark": the Gaussian fit of :mod:`darkpose.codec._gaussfit` for the ``peak`` maps whose
    maximum lies within :data:`DARK_FIT_BAND` px of an edge (min(band, R)), or for every
    ``peak`` map where the kernel is at most :data:`DARK_FIT_EVERYWHERE_KERNEL` (those beyond
    the band with :data:`DARK_INTERIOR_FIT_ITERATIONS` full steps).

    ``border`` = (maps, windows, inside) of the windows :func:`_blurred_taps` read again
    (every map within R px of an edge is among them, so within the band too), or None."""
    R = kernel_size // 2 + 2
    band = min(DARK_FIT_BAND, R)
    near = backend.constant(("near border", height, width, band), lambda: _near_border(height, width, band))
    everywhere = kernel_size <= DARK_FIT_EVERYWHERE_KERNEL
    i = backend.nonzero(peak if everywhere else near[index] & peak)
    if not len(i) or (border is None and not everywhere):
        return offset, spread
    if everywhere:
        windows, inside = _centred_windows(backend, maps, i, x[i], y[i], height, width, R, np.float64)
    else:
        read, windows, inside = border
        j = np.searchsorted(read, i)  # both sorted
        windows, inside = windows[j].astype(np.float64), inside[:, j]
    u, s = offset[i].T.astype(np.float64), spread[i].astype(np.float64)
    edge = near[index[i]]
    for part, steps in ((edge, {}), (~edge, {"iterations": DARK_INTERIOR_FIT_ITERATIONS, "spread_first": False})):
        j = np.nonzero(part)[0]
        if len(j):
            u[:, j], s[j] = _gaussfit.fit(np, windows[j], inside[:, j], u[:, j], s[j], max_offset=DARK_MAX_STEP,
                                          **steps)
    offset, spread = offset.copy(), spread.copy()
    offset[i], spread[i] = u.T, s
    return offset, spread


def _covariance(backend, maps, offset, spread, score, x, y, height, width, R):
    """(M, 2, 2) estimated covariance of the decoded offsets (:func:`_gaussfit.covariance`)."""
    xp = backend.xp
    cov = xp.zeros((len(x), 2, 2), dtype=maps.dtype)
    cov[:, 0, 0] = cov[:, 1, 1] = np.inf
    i = backend.nonzero(score > 0)
    if len(i):
        window, inside = _centred_windows(backend, maps, i, x[i], y[i], height, width, R, np.float64)
        cov[i] = _gaussfit.covariance(xp, window, inside, offset[i].T.astype(np.float64), spread[i].astype(np.float64))
    return cov


# --------------------------------------------------------------------------- step 1


def _locate(backend, maps, height, width, method, kernel_size):
    """Integer maximum of each map, its value, and the blur at the 13 taps around it.

    Returns ``index`` (M,) flat argmax (NaN counts as the maximum), ``score`` (M,) and
    ``blurred`` (13, M) or None: for "dark" and "dark-reference" on frames of at least S x S
    (S = 2R + 1 = k + 4), the taps of the S x S block of the frame nearest to the window
    centred on the maximum. They are the taps of that window wherever it fits the frame; the
    caller redoes the others (:func:`_blurred_taps`).

    The maps go in chunks of up to 2^25 values (128 MB of float32), which bounds the memory
    of the windows read at once (S^2 values per map). Larger chunks are faster: torch's
    gather and matrix product split the work across threads only above a size (measured on 2
    cores, N=256 K=17 64x48 maps: 12 MB chunks made "dark-reference" 8% slower than one).
    """
    m, plane = maps.shape[0], height * width
    R = kernel_size // 2 + 2
    S = 2 * R + 1
    taps = method in ("dark", "dark-reference") and height >= S and width >= S
    index = backend.empty((m,), backend.int64)
    blurred = backend.empty((m, 13), maps.dtype) if taps else None
    if taps:
        flat = maps.reshape(-1)
        corner = backend.constant(("corner", height, width, R), lambda: _window_corner(height, width, R))
        rows = backend.arange(0, S * width, width)
        weights = backend.constant(("taps", kernel_size), lambda: _tap_weights(kernel_size).T.copy(), maps.dtype)

    def work(lo: int, hi: int) -> None:
        idx = backend.argmax_rows(maps[lo:hi])
        index[lo:hi] = idx
        if taps:
            starts = (backend.arange(lo * plane, hi * plane, plane) + corner[idx])[:, None] + rows
            windows = backend.gather_rows(flat, starts.reshape(-1), S).reshape(hi - lo, S * S)
            blurred[lo:hi] = backend.matmul(windows, weights)

    _in_chunks(work, m, plane)
    score = maps.reshape(-1)[backend.arange(0, m * plane, plane) + index]
    return index, score, blurred.T.copy() if taps else None  # (13, M)


def _in_chunks(work, m: int, values_per_map: int) -> None:
    """Run ``work(lo, hi)`` over consecutive chunks of the M maps."""
    per_chunk = max(64, _CHUNK_VALUES // max(values_per_map, 1))
    for lo in range(0, m, per_chunk):
        work(lo, min(lo + per_chunk, m))


def _ignore_non_finite(backend, maps, index, score):
    """Read NaN and +-Inf as 0 in maps whose maximum is not finite.

    A NaN or +Inf wins the argmax, so such maps are found without a second pass. Returns
    the corrected index and score, and which maps need their windows read again (these,
    plus any whose window holds a -Inf, found later from the blurred taps).
    """
    xp = backend.xp
    bad = ~xp.isfinite(score)
    if not bool(bad.any()):
        return index, score, bad
    rows = xp.nan_to_num(maps[bad], nan=0.0, posinf=0.0, neginf=0.0)
    index, score = index.copy() if xp is np else index.clone(), xp.where(bad, 0.0, score)
    index[bad] = backend.argmax_rows(rows)
    score[bad] = backend.take_along(rows, index[bad][:, None], 1)[:, 0]
    return index, score, bad


# --------------------------------------------------------------------------- "shift"


def _quarter_shift(backend, maps, x, y, height, width):
    """HRNet: 0.25 px towards the higher neighbour, where 1 < x < W-1 and 1 < y < H-1."""
    xp = backend.xp
    row = backend.arange(maps.shape[0])

    def at(dx, dy):
        col = xp.clip(y + dy, 0, height - 1) * width + xp.clip(x + dx, 0, width - 1)
        return xp.nan_to_num(maps[row, col], nan=0.0, posinf=0.0, neginf=0.0)

    diff = xp.stack((at(1, 0) - at(-1, 0), at(0, 1) - at(0, -1)), axis=-1)
    inside = (x > 1) & (x < width - 1) & (y > 1) & (y < height - 1)
    return xp.where(inside[:, None], 0.25 * xp.sign(diff), 0.0)


# --------------------------------------------------------------------------- steps 2-4


def _blurred_taps(backend, maps, blurred, recheck, index, x, y, height, width, kernel_size, R, method):
    """h' = G_k * h at the 13 taps around each maximum, (13, M).

    ``blurred`` holds the taps :func:`_locate` computed, exact where the
    window centred on the maximum fits the frame (or None). Windows that cross the frame
    border, or hold non-finite values, are redone: centred on the maximum, with the edge
    repeated outside the frame, and weighted there by 0 for "dark-reference" (zero padding),
    by the Gaussian continuation for "dark". Also returns (maps, windows, inside) of the
    redone windows (:func:`_border_taps`), or None where none was.
    """
    near = backend.constant(("near border", height, width, R), lambda: _near_border(height, width, R))
    if blurred is None:
        blurred = backend.empty((13, maps.shape[0]), maps.dtype)
        redo, clean = backend.xp.ones_like(recheck), True
    else:
        recheck = recheck | ~backend.xp.isfinite(blurred.sum(axis=0))  # a NaN or Inf reaches the sum
        redo, clean = near[index] | recheck, bool(recheck.any())
    if not bool(redo.any()):
        return blurred, None
    i = backend.nonzero(redo)
    blurred[:, i], windows, inside = _border_taps(backend, maps, i, x[i], y[i], height, width, kernel_size, R, method,
                                                  clean)
    return blurred, (i, windows, inside)


def _border_taps(backend, maps, i, x, y, height, width, kernel_size, R, method, clean):
    """Taps (13, len(i)) of the windows centred on maxima near the border, and the windows
    (len(i), S, S) (non-finite values read as 0) with which of their columns (0) and rows (1)
    lie inside the frame (2, len(i), S).

    What depends only on where the maximum lies on an axis comes from :func:`_axis_tables`:
    row p < W of a table describes column p of the frame, row W + q row q.
    """
    xp = backend.xp
    S = 2 * R + 1
    key = (width, height, kernel_size, R)
    pos = xp.stack((x, y + width))  # (2, B)
    win, (_, fit, enough) = _read_windows(backend, maps, i, x, pos, height, width, R, key)
    if clean:
        win = xp.nan_to_num(win, nan=0.0, posinf=0.0, neginf=0.0)
    floats = backend.constant(("axis floats", *key), lambda: _axis_tables(*key)[1], win.dtype)[pos]
    if method == "dark-reference":
        ratio = floats[..., :S]  # zero padding: 1 inside the frame, 0 outside
    else:
        ratio = _continuation(backend, win, floats[..., S:], fit, enough, R)
    # the blur at (R + dx, R + dy) is u_dy^T win v_dx, with u, v the kernel centred at R + dy
    # (R + dx) times the window's row (column) factors: (B, 5, S) @ (B, S, S) @ (B, S, 5)
    shifted = backend.constant(("shifted kernels", kernel_size, R), lambda: _shifted_kernels(kernel_size, R), win.dtype)
    grid = (shifted * ratio[1][:, None, :]) @ win @ (shifted.T * ratio[0][:, :, None])  # (B, 5, 5): [dy, dx]
    taps = backend.constant(("tap cells",), lambda: np.array([5 * (dy + 2) + dx + 2 for dx, dy in _TAPS]))
    return grid.reshape(-1, 25)[:, taps].T, win, floats[..., :S]


def _read_windows(backend, maps, i, x, pos, height, width, R, key):
    """The windows (B, S, S) centred on the maxima of maps ``i``, the edge repeated outside
    the frame, and the integer rows of :func:`_axis_tables` for them, split (lines, fit,
    enough). ``pos`` (2, B) indexes the tables: x, and y + W."""
    S = 2 * R + 1
    ints = backend.constant(("axis ints", *key), lambda: _axis_tables(*key)[0])[pos]
    lines, fit, enough = ints[..., :S], ints[..., S : S + 3], ints[..., S + 3] > 0
    # read the window's rows (the edge row repeated) over the block of columns nearest to it,
    # then pick its columns (the edge column repeated) from the block
    block = min(S, width)
    start = backend.xp.minimum(backend.xp.maximum(x - R, 0), width - block)
    rows = (i * (height * width))[:, None] + lines[1] * width + start[:, None]  # (B, S)
    win = backend.gather_rows(maps.reshape(-1), rows.reshape(-1), block).reshape(-1, S, block)
    return backend.take_along(win, (lines[0] - start[:, None])[:, None, :], 2), (lines, fit, enough)


def _centred_windows(backend, maps, i, x, y, height, width, R, dtype):
    """Windows (B, S, S) of ``dtype`` centred on the maxima of maps ``i``, non-finite values
    read as 0, and which of their columns (0) and rows (1) lie inside the frame, (2, B, S)."""
    pos = backend.xp.stack((x, y + width))
    key = (width, height, 2 * (R - 2) + 1, R)  # the tables depend on the kernel through R only
    win, _ = _read_windows(backend, maps, i, x, pos, height, width, R, key)
    inside = backend.constant(("axis floats", *key), lambda: _axis_tables(*key)[1], dtype)[pos][..., : 2 * R + 1]
    return backend.xp.nan_to_num(backend.astype(win, dtype), nan=0.0, posinf=0.0, neginf=0.0), inside


def _continuation(backend, win, floats, fit, enough, R):
    """Factors (2, B, S) per window column (0) and row (1) that continue border windows
    as Gaussians.

    ``win`` (B, S, S) is centred on the maximum, with the edge repeated outside the frame.
    The profile of the window across columns, blurred across its inside rows,
    F(c) = sum_r G_k(r - R) h(r, c), is proportional to the heatmap's x-profile whenever the
    heatmap is separable (a Gaussian is), whatever rows are summed. log F is interpolated
    by a quadratic l through the three inside columns nearest the centre, and an outside
    column c, which repeats the edge column e, gets the factor exp(l(c) - l(e)). Rows
    likewise. Where no strictly concave fit exists (a flat map, say) the edge is repeated.
    ``floats``, ``fit`` and ``enough`` are the rows of :func:`_axis_tables` for each window.
    """
    xp = backend.xp
    S = 2 * R + 1
    weight, dt, dt2 = floats[..., :S], floats[..., S : 2 * S], floats[..., 2 * S :]
    # the profiles at the five central columns (rows), and the three of the fit among them
    profile_x = (weight[1][:, None, :] @ win[:, :, R - 2 : R + 3])[:, 0]
    profile_y = (win[:, R - 2 : R + 3, :] @ weight[0][:, :, None])[:, :, 0]
    three = xp.stack((profile_x, profile_y)).reshape(-1)[fit + backend.arange(0, 10 * len(win), 5).reshape(2, -1, 1)]
    usable = (three.min(axis=2) > 0) & enough  # (2, B, 3): the fit's three profile entries
    ell = xp.log(xp.where(usable[..., None], three, 1.0))
    slope = 0.5 * (ell[..., 2] - ell[..., 0])
    curvature = 0.5 * (ell[..., 2] - 2 * ell[..., 1] + ell[..., 0])
    usable &= curvature < 0
    # l(c) - l(e) = slope (t - te) + curvature (t^2 - te^2), t and te from the centre of the fit
    log_ratio = slope[..., None] * dt + curvature[..., None] * dt2
    return xp.exp(xp.where(usable[..., None], xp.minimum(log_ratio, _MAX_LOG_RATIO), 0.0))


def _taylor_offsets(backend, blurred, maps, x, y, height, width, kernel_size, method):
    """The Taylor step mu - m (M, 2) from the blurred taps (13, M), and the Hessian of P at
    m as (dxx, dxy, dyy), each (M,)."""
    xp = backend.xp
    if method == "dark-reference":
        # h' <- h' * max(h) / max(h') changes P only through the clamp at 1e-10; max(h') <=
        # max(h) (the kernel sums to 1), so the clamp cannot act unless a tap is <= 1e-10.
        clamped = (blurred <= _LOG_FLOOR).any(axis=0)
        if bool(clamped.any()):
            rows = backend.astype(maps[clamped].reshape(-1, height, width), backend.float64)
            rows = xp.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)
            kernel = backend.constant(("kernel", kernel_size), lambda: gaussian_kernel(kernel_size))
            full = _band(backend, height, kernel) @ rows @ _band(backend, width, kernel).T
            rescale = xp.amax(rows.reshape(len(rows), -1), axis=1) / xp.amax(full.reshape(len(rows), -1), axis=1)
            blurred[:, clamped] = blurred[:, clamped] * backend.astype(rescale, blurred.dtype)
        p = xp.log(xp.clip(blurred, _LOG_FLOOR, None))
    else:
        p = xp.log(xp.maximum(blurred, xp.maximum(blurred[_C], 0.0) * _LOG_FLOOR))

    dx = 0.5 * (p[_XP] - p[_XM])
    dy = 0.5 * (p[_YP] - p[_YM])
    dxx = 0.25 * (p[_XPP] - 2 * p[_C] + p[_XMM])
    dyy = 0.25 * (p[_YPP] - 2 * p[_C] + p[_YMM])
    dxy = 0.25 * (p[_PP] - p[_PM] - p[_MP] + p[_MM])
    det = dxx * dyy - dxy * dxy
    if method == "dark-reference":
        step = (x > 1) & (x < width - 2) & (y > 1) & (y < height - 2) & (det != 0)
    else:  # only towards a maximum: the Hessian negative definite
        step = (dxx < 0) & (det > 0) & (blurred[_C] > 0)
    # mu - m = -H^-1 g, with H^-1 = [[dyy, -dxy], [-dxy, dxx]] / det
    inv_det = xp.where(step, 1.0 / xp.where(step, det, 1.0), 0.0)
    offset = xp.stack(((dxy * dy - dyy * dx) * inv_det, (dxy * dx - dxx * dy) * inv_det), axis=-1)
    return xp.where(xp.isfinite(offset), offset, 0.0), (dxx, dxy, dyy)


# --------------------------------------------------------------------------- constants


def _window_corner(height: int, width: int, R: int) -> np.ndarray:
    """(H*W,) int64: for a maximum at flat index p, the flat index of the top-left corner of
    the S x S block of the frame nearest to the window centred on p (S = 2R + 1)."""
    S = 2 * R + 1
    p = np.arange(height * width)
    return np.clip(p // width - R, 0, height - S) * width + np.clip(p % width - R, 0, width - S)


def _near_border(height: int, width: int, R: int) -> np.ndarray:
    """(H*W,) bool: whether the window of 2R + 1 pixels centred on a maximum at each flat
    index crosses the frame border."""
    p = np.arange(height * width)
    x, y = p % width, p // width
    return (x < R) | (x >= width - R) | (y < R) | (y >= height - R)


@functools.cache
def _axis_tables(width: int, height: int, kernel_size: int, R: int) -> tuple[np.ndarray, np.ndarray]:
    """What the border windows need to know of a maximum's position on each axis.

    Row p < W describes column p of the frame, row W + q row q, and the window of
    S = 2R + 1 entries centred there. Integers (W + H, S + 4): the frame line of each entry,
    the edge repeated outside (S); the three entries of the continuation's fit, the inside
    entries nearest the centre, counted from entry R - 2 (3); whether three inside entries
    exist (1). Floats (W + H, 4S): 1 inside the frame and 0 outside; the modulation kernel at
    the window's centre, 0 outside; t - te and t^2 - te^2, where t is an entry's and te its
    edge entry's distance from the fit's centre (0 inside).
    """
    S = 2 * R + 1
    r = kernel_size // 2
    window_kernel = np.zeros(S)
    window_kernel[R - r : R + r + 1] = gaussian_kernel(kernel_size)
    pos = np.concatenate((np.arange(width), np.arange(height)))[:, None]
    size = np.concatenate((np.full(width, width), np.full(height, height)))[:, None]
    j = np.arange(S)
    lines = pos - R + j
    inside = (lines >= 0) & (lines < size)
    first = np.clip(R - pos, 0, None)  # first and last window entry inside the frame
    last = np.minimum(R + size - 1 - pos, S - 1)
    centre = np.minimum(np.maximum(first + 1, R), last - 1)  # R - 1, R or R + 1
    t = (j - centre).astype(np.float64)
    te = (np.clip(j, first, last) - centre).astype(np.float64)
    ints = np.concatenate((np.clip(lines, 0, size - 1), centre - (R - 2) + np.arange(-1, 2), last - first >= 2), axis=1)
    floats = np.concatenate((inside, window_kernel * inside, t - te, t * t - te * te), axis=1)
    return ints.astype(np.int64), floats


def _shifted_kernels(kernel_size: int, R: int) -> np.ndarray:
    """(5, S): row d is the modulation kernel centred on entry R + d - 2 of a window of S."""
    r = kernel_size // 2
    out = np.zeros((5, 2 * R + 1))
    for d in range(5):
        out[d, R + d - 2 - r : R + d - 2 + r + 1] = gaussian_kernel(kernel_size)
    return out


def _tap_weights(kernel_size: int) -> np.ndarray:
    """(13, S*S): row t is the blur at tap t as a function of the S x S window."""
    shifted = _shifted_kernels(kernel_size, kernel_size // 2 + 2)
    weights = np.stack([np.outer(shifted[ty + 2], shifted[tx + 2]) for tx, ty in _TAPS])
    return weights.reshape(len(_TAPS), -1)


def _band(backend, length: int, kernel) -> Any:
    """(length, length) matrix of the 1-D zero-padded convolution with ``kernel``."""
    r = kernel.shape[0] // 2
    i = backend.arange(length)
    d = i[None, :] - i[:, None] + r
    inside = (d >= 0) & (d < kernel.shape[0])
    return backend.xp.where(inside, kernel[backend.xp.clip(d, 0, kernel.shape[0] - 1)], 0.0)


def _check_kernel(size: Any) -> int:
    if (
        isinstance(size, bool)
        or not isinstance(size, (int, np.integer))
        or not 1 <= size <= MAX_BLUR_KERNEL
        or size % 2 == 0
    ):
        raise ValueError(
            f"blur_kernel: expected an odd integer from 1 to MAX_BLUR_KERNEL = {MAX_BLUR_KERNEL} "
            f"(e.g. 3 or 11), got {size!r}"
        )
    return int(size)


__all__ = [
    "DARK_FIT_BAND",
    "DARK_FIT_EVERYWHERE_KERNEL",
    "DARK_INTERIOR_FIT_ITERATIONS",
    "DARK_MAX_STEP",
    "DECODE_METHODS",
    "MAX_BLUR_KERNEL",
    "decode",
    "gaussian_kernel",
    "kernel_variance",
    "modulated_spread",
]
