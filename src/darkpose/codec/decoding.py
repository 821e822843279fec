"""Decoding heatmaps to sub-pixel coordinates (DESIGN.md section 2, "Decode").

The DARK decode of one heatmap h (H x W):

1. m = argmax h; the score is h[m]. A score <= 0 gives the coordinate (0, 0).
2. Modulation: h' = G_k * h, OpenCV's Gaussian kernel of size k with zero padding.
3. P = log(h').
4. Taylor step: mu = m - H^-1 g, with g and H the central first and (wide-stencil)
   second differences of P at m.

Step 4 reads P at 13 points around m, and each of them depends only on h inside the
(4 + k) x (4 + k) window centred on m. So after one full pass (the argmax) all the work is
local: gather that window, blur it with one small matrix product, take 13 logarithms.

"dark-reference" is that algorithm exactly as the original code runs it: the rescale
h' <- h' max(h) / max(h') and the clamp at 1e-10 before the log, and no Taylor step unless
1 < x < W - 2 and 1 < y < H - 2.

"dark" (the default) changes what happens at the frame border. Zero padding pulls a peak
near the border inwards; instead, "dark" continues the heatmap beyond the frame with the
Gaussian it is assumed to be. Along each axis the profile of the window (blurred across the
other axis) is fitted with a log-quadratic around m; each missing column (row) is the
nearest frame column (row) times the fitted ratio exp(l(outside) - l(edge)). For a separable
Gaussian this continuation is exact, so the blurred window equals the blur of the untruncated
Gaussian and the Taylor step is as exact at the border as in the interior, including within
2 px of the edge, where the reference does not refine at all. The step is taken only where
the Hessian of P is negative definite (a maximum); elsewhere m is kept.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
from typing import Any

import numpy as np
import torch

from darkpose.codec._arrays import describe, to_caller, to_tensor

DECODE_METHODS = ("argmax", "shift", "dark-reference", "dark")

# P is read at m + (dx, dy) for these 13 offsets; the names index the list below.
_TAPS = (
    (0, 0), (1, 0), (-1, 0), (2, 0), (-2, 0),
    (0, 1), (0, -1), (0, 2), (0, -2),
    (1, 1), (1, -1), (-1, 1), (-1, -1),
)  # fmt: skip
_C, _XP, _XM, _XPP, _XMM, _YP, _YM, _YPP, _YMM, _PP, _PM, _MP, _MM = range(13)

_LOG_FLOOR = 1e-10  # the reference's clamp before the log
_MAX_STEP = 1.5  # "dark": the Taylor step is clipped to this many pixels per axis
_MAX_LOG_RATIO = 30.0  # bound on the continuation ratio beyond the border, exp(30) ~ 1e13


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


def decode(heatmaps: Any, method: str = "dark", blur_kernel: int = 11) -> tuple[Any, Any]:
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
        Odd size of the modulation kernel (the configs' ``BLUR_KERNEL``); only "dark" and
        "dark-reference" use it.

    Returns
    -------
    coords : array (N, K, 2), float32
        (x, y) in heatmap pixels; (0, 0) where the score is <= 0.
    scores : array (N, K), float32
        The raw heatmap value at the integer maximum.

    Both are of the input's array type, on the input's device. Non-finite values (NaN,
    +-Inf) in a heatmap are read as 0; heatmaps too small for a stencil are not refined.
    """
    if method not in DECODE_METHODS:
        raise ValueError(f"method: expected one of {DECODE_METHODS}, got {method!r}")
    kernel_size = _check_kernel(blur_kernel)
    hm, was_numpy = to_tensor(heatmaps, "heatmaps")
    if hm.ndim != 4:
        raise ValueError(f"heatmaps: expected 4 dimensions (N, K, H, W), got {describe(hm)}")
    if not hm.is_floating_point():
        raise ValueError(f"heatmaps: expected a floating-point array, got {describe(hm)}")
    n, k, height, width = hm.shape
    if height < 1 or width < 1:
        raise ValueError(f"heatmaps: expected H >= 1 and W >= 1, got {describe(hm)}")
    if n * k == 0:
        coords = torch.zeros((n, k, 2), dtype=torch.float32, device=hm.device)
        scores = torch.zeros((n, k), dtype=torch.float32, device=hm.device)
        return to_caller(coords, was_numpy), to_caller(scores, was_numpy)

    maps = hm.reshape(n * k, height * width)
    if maps.dtype not in (torch.float32, torch.float64):
        maps = maps.to(torch.float32)  # the computation runs in float32 (or float64 for float64 input)
    if not maps.is_contiguous():
        maps = maps.contiguous()
    R = kernel_size // 2 + 2 if method.startswith("dark") else 0  # window radius
    index, score, blurred = _locate(maps, height, width, kernel_size, R)
    index, score, recheck = _ignore_non_finite(maps, index, score)
    x, y = index % width, index // width
    coords = torch.stack((x, y), dim=-1).to(maps.dtype)
    if method == "shift":
        coords += _quarter_shift(maps, x, y, height, width)
    elif method.startswith("dark"):
        blurred = _blurred_taps(maps, blurred, recheck, x, y, height, width, kernel_size, R, method)
        offset, _ = _taylor_offsets(blurred, maps, x, y, height, width, kernel_size, method)
        if method == "dark":  # trust the quadratic model of P within 1.5 px of m
            offset.clamp_(-_MAX_STEP, _MAX_STEP)
        coords += offset
    coords = torch.where((score > 0)[:, None], coords, 0.0)
    coords = coords.to(torch.float32).reshape(n, k, 2)
    scores = score.to(torch.float32).reshape(n, k)
    return to_caller(coords, was_numpy), to_caller(scores, was_numpy)


# --------------------------------------------------------------------------- step 1


def _locate(maps, height, width, kernel_size, R):
    """Integer maximum of each map, its value, and the blur at the 13 taps around it.

    Returns ``index`` (M,) flat argmax (NaN counts as the maximum), ``score`` (M,) and
    ``blurred`` (13, M) or None: the taps of the S x S window (S = 2R + 1) centred on
    the maximum, read from the block of the frame nearest to it. They are exact wherever
    the window fits the frame; the caller redoes the others (:func:`_blurred_taps`).
    ``blurred`` is None when R is 0 or the frame is smaller than S x S.

    The maps are processed in chunks small enough to stay in cache between the argmax and
    the window reads; on the CPU the chunks run on parallel threads (NumPy's argmax and
    torch's copies and matrix products release the GIL).
    """
    S = 2 * R + 1
    want = R > 0 and height >= S and width >= S
    m, plane = maps.shape[0], height * width
    device = maps.device
    index = torch.empty(m, dtype=torch.int64, device=device)
    blurred = torch.empty((13, m), dtype=maps.dtype, device=device) if want else None
    if want:
        flat = maps.reshape(-1)
        rows_view = flat.as_strided((flat.numel() - S + 1, S), (1, 1))  # S values from each start
        row_starts = _window_row_starts(height, width, R, device)  # (H*W, S)
        weights = _tap_weights(kernel_size, device, maps.dtype)

    def work(lo: int, hi: int) -> None:
        idx = _argmax_rows(maps[lo:hi])
        index[lo:hi] = idx
        if want:
            first = torch.arange(lo * plane, hi * plane, plane, device=device)[:, None] + row_starts[idx]
            windows = rows_view.index_select(0, first.reshape(-1))
            blurred[:, lo:hi] = weights @ windows.reshape(hi - lo, S * S).T

    _in_chunks(work, m, plane, parallel=device.type == "cpu")
    score = maps.gather(1, index[:, None])[:, 0]
    return index, score, blurred


def _argmax_rows(maps: torch.Tensor) -> torch.Tensor:
    """Flat argmax of each row; NaN counts as the maximum."""
    if maps.device.type == "cpu":
        # NumPy's argmax is about 4x faster than torch's on CPU (the array is shared, not copied)
        return torch.from_numpy(maps.numpy().argmax(axis=1))
    return maps.argmax(dim=1)


_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_CPUS = os.cpu_count() or 1
_CHUNK_VALUES = 3 << 20  # 12 MB of float32 maps per chunk: read twice while in cache


def _in_chunks(work, m, values_per_map, parallel):
    """Run ``work(lo, hi)`` over chunks of the M maps, on up to torch's number of threads."""
    global _POOL
    per_chunk = max(64, _CHUNK_VALUES // max(values_per_map, 1))
    bounds = [(lo, min(lo + per_chunk, m)) for lo in range(0, m, per_chunk)]
    threads = min(torch.get_num_threads(), _CPUS, len(bounds)) if parallel else 1
    if threads <= 1:
        for lo, hi in bounds:
            work(lo, hi)
        return
    if _POOL is None or _POOL._max_workers < threads:  # noqa: SLF001
        _POOL = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="darkpose-decode")
    for future in [_POOL.submit(work, lo, hi) for lo, hi in bounds]:
        future.result()


def _ignore_non_finite(maps, index, score):
    """Read NaN and +-Inf as 0 in maps whose maximum is not finite.

    A NaN or +Inf wins the argmax, so such maps are found without a second pass. Returns
    the corrected index and score, and which maps need their windows read again (these,
    plus any whose window holds a -Inf, found later from the blurred taps).
    """
    bad = ~torch.isfinite(score)
    if not bool(bad.any()):
        return index, score, bad
    rows = torch.nan_to_num(maps[bad], nan=0.0, posinf=0.0, neginf=0.0)
    index, score = index.clone(), score.clone()
    index[bad] = rows.argmax(dim=1)
    score[bad] = rows.gather(1, index[bad][:, None])[:, 0].to(score.dtype)
    return index, score, bad


# --------------------------------------------------------------------------- "shift"


def _quarter_shift(maps, x, y, height, width):
    """HRNet: 0.25 px towards the higher neighbour, where 1 < x < W-1 and 1 < y < H-1."""
    row = torch.arange(maps.shape[0], device=maps.device)

    def at(dx, dy):
        xx = (x + dx).clamp(0, width - 1)
        yy = (y + dy).clamp(0, height - 1)
        return torch.nan_to_num(maps[row, yy * width + xx], 0.0, 0.0, 0.0)

    diff = torch.stack((at(1, 0) - at(-1, 0), at(0, 1) - at(0, -1)), dim=-1)
    inside = (x > 1) & (x < width - 1) & (y > 1) & (y < height - 1)
    return torch.where(inside[:, None], 0.25 * torch.sign(diff), torch.zeros_like(diff))


# --------------------------------------------------------------------------- steps 2-4


def _blurred_taps(maps, blurred, recheck, x, y, height, width, kernel_size, R, method):
    """h' = G_k * h at the 13 taps around each maximum, (13, M).

    ``blurred`` holds the taps :func:`_locate` computed, exact where the window fits the
    frame (or None). Windows that cross the frame border, or hold non-finite values, are
    read again centred on the maximum with clamped indices, which repeats the edge, and
    weighted outside the frame: by 0 for "dark-reference" (zero padding), by the
    Gaussian continuation for "dark".
    """
    redo = (x < R) | (x >= width - R) | (y < R) | (y >= height - R) | recheck
    if blurred is None:
        blurred = torch.empty((13, maps.shape[0]), dtype=maps.dtype, device=maps.device)
        redo[:] = True
    else:
        redo |= ~torch.isfinite(blurred.sum(dim=0))  # a NaN or Inf in a window reaches the sum
    if bool(redo.any()):
        i = torch.nonzero(redo)[:, 0]
        blurred[:, i] = _border_taps(maps, i, x[i], y[i], height, width, kernel_size, R, method)
    return blurred


def _border_taps(maps, i, x, y, height, width, kernel_size, R, method):
    """Taps (13, len(i)) of the windows centred on maxima near the border."""
    S = 2 * R + 1
    offs = torch.arange(-R, R + 1, device=maps.device)
    pos = torch.stack((x, y))  # (2, B)
    size = torch.tensor([[width], [height]], device=maps.device)
    lines = pos[..., None] + offs  # (2, B, S): frame column / row of each window column / row
    inside = (lines >= 0) & (lines < size[..., None])
    lines.clamp_(min=0).clamp_(max=size[..., None] - 1)
    index = (i * (height * width))[:, None, None] + lines[1][:, :, None] * width + lines[0][:, None, :]
    win = maps.reshape(-1).index_select(0, index.reshape(-1)).reshape(-1, S, S)
    win = torch.nan_to_num_(win, nan=0.0, posinf=0.0, neginf=0.0)  # edge values repeated outside
    if method == "dark-reference":
        ratio = inside.to(win.dtype)  # zero padding
    else:
        ratio = _continuation(win, pos, size, inside, kernel_size, R)
    win = win * ratio[1][:, :, None] * ratio[0][:, None, :]
    return _tap_weights(kernel_size, maps.device, maps.dtype) @ win.reshape(-1, S * S).T


def _continuation(win, pos, size, inside, kernel_size, R):
    """Factors (2, B, S) per window column (0) and row (1) that continue border windows
    as Gaussians.

    ``win`` (B, S, S) is centred on the maximum, with the edge repeated outside the frame.
    The profile of the window across columns, blurred across its inside rows,
    F(c) = sum_r G_k(r - R) h(r, c), is proportional to the heatmap's x-profile whenever the
    heatmap is separable (a Gaussian is), whatever rows are summed. log F is interpolated
    by a quadratic l through the three inside columns nearest the centre, and an outside
    column c, which repeats the edge column e, gets the factor exp(l(c) - l(e)). Rows
    likewise. Where no strictly concave fit exists (a flat map, say) the edge is repeated.
    """
    S = 2 * R + 1
    weight = _window_kernel(kernel_size, R, win.device).to(win.dtype) * inside  # (2, B, S)
    # profiles at the five central columns (rows), blurred across the inside rows (columns)
    profile = torch.stack(
        (
            torch.bmm(weight[1][:, None, :], win[:, :, R - 2 : R + 3])[:, 0],
            torch.bmm(win[:, R - 2 : R + 3, :], weight[0][:, :, None])[:, :, 0],
        )
    )  # (2, B, 5)
    first = (R - pos).clamp(min=0)  # first and last window index inside the frame
    last = (R + size - 1 - pos).clamp(max=S - 1)
    centre = torch.minimum((first + 1).clamp(min=R), last - 1)  # R - 1, R or R + 1
    three = profile.gather(2, centre[..., None] - (R - 2) + torch.arange(-1, 2, device=win.device))
    usable = (three > 0).all(dim=2) & (last - first >= 2)
    ell = torch.log(torch.where(usable[..., None], three, 1.0))
    slope = 0.5 * (ell[..., 2] - ell[..., 0])
    curvature = 0.5 * (ell[..., 2] - 2 * ell[..., 1] + ell[..., 0])
    usable &= curvature < 0
    j = torch.arange(S, device=win.device)
    t = (j - centre[..., None]).to(win.dtype)  # (2, B, S), from the centre of the fit
    te = (torch.minimum(torch.maximum(j, first[..., None]), last[..., None]) - centre[..., None]).to(win.dtype)
    log_ratio = slope[..., None] * (t - te) + curvature[..., None] * (t * t - te * te)
    ratio = torch.exp(log_ratio.clamp_(max=_MAX_LOG_RATIO))
    return torch.where(inside | ~usable[..., None], 1.0, ratio)


def _taylor_offsets(blurred, maps, x, y, height, width, kernel_size, method):
    """The Taylor step mu - m (M, 2) from the blurred taps (13, M)."""
    if method == "dark-reference":
        # h' <- h' * max(h) / max(h') changes P only through the clamp at 1e-10; max(h') <=
        # max(h) (the kernel sums to 1), so the clamp cannot act unless a tap is <= 1e-10.
        clamped = (blurred <= _LOG_FLOOR).any(dim=0)
        if bool(clamped.any()):
            rows = maps[clamped].reshape(-1, height, width).to(torch.float64)
            rows = torch.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)
            kern = _kernel_tensor(kernel_size, maps.device)
            full = _band(height, kern) @ rows @ _band(width, kern).T
            blurred[:, clamped] *= rows.amax(dim=(1, 2)) / full.amax(dim=(1, 2))
        p = torch.log(blurred.clamp_(min=_LOG_FLOOR))
    else:
        p = torch.log(torch.maximum(blurred, blurred[_C].clamp(min=0) * _LOG_FLOOR))

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
    inv_det = torch.where(step, 1.0 / torch.where(step, det, 1.0), 0.0)
    offset = torch.stack(((dxy * dy - dyy * dx) * inv_det, (dxy * dx - dxx * dy) * inv_det), dim=-1)
    return torch.nan_to_num_(offset, nan=0.0, posinf=0.0, neginf=0.0), step


@functools.lru_cache(maxsize=32)
def _window_row_starts(height: int, width: int, R: int, device: torch.device) -> torch.Tensor:
    """(H*W, S): for a maximum at flat index p, the flat start of each of the S rows of the
    S x S block of the frame nearest to the window centred on p."""
    S = 2 * R + 1
    p = torch.arange(height * width, device=device)
    top = (p // width - R).clamp(0, height - S)
    left = (p % width - R).clamp(0, width - S)
    return (top * width + left)[:, None] + torch.arange(0, S * width, width, device=device)


@functools.lru_cache(maxsize=32)
def _kernel_tensor(kernel_size: int, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(gaussian_kernel(kernel_size), device=device)


@functools.lru_cache(maxsize=32)
def _window_kernel(kernel_size: int, R: int, device: torch.device) -> torch.Tensor:
    """The kernel placed at the centre of a window of 2R + 1 entries, zero elsewhere."""
    r = kernel_size // 2
    kext = torch.zeros(2 * R + 1, dtype=torch.float64, device=device)
    kext[R - r : R + r + 1] = _kernel_tensor(kernel_size, device)
    return kext


@functools.lru_cache(maxsize=32)
def _tap_weights(kernel_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(13, S*S) weights: row t is the blur at tap t as a function of the S x S window."""
    r = kernel_size // 2
    R = r + 2
    S = 2 * R + 1
    k2 = torch.outer(_kernel_tensor(kernel_size, device), _kernel_tensor(kernel_size, device))
    weights = torch.zeros((13, S, S), dtype=torch.float64, device=device)
    for t, (tx, ty) in enumerate(_TAPS):
        weights[t, R + ty - r : R + ty + r + 1, R + tx - r : R + tx + r + 1] = k2
    return weights.reshape(13, S * S).to(dtype)


def _band(length: int, kern: torch.Tensor) -> torch.Tensor:
    """(length, length) matrix of the 1-D zero-padded convolution with ``kern``."""
    r = kern.shape[0] // 2
    i = torch.arange(length, device=kern.device)
    d = i[None, :] - i[:, None] + r
    inside = (d >= 0) & (d < kern.shape[0])
    return torch.where(inside, kern[d.clamp(0, kern.shape[0] - 1)], 0.0)


def _check_kernel(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise ValueError(f"blur_kernel: expected an odd positive integer (e.g. 3 or 11), got {size!r}")
    return int(size)


__all__ = ["DECODE_METHODS", "decode", "gaussian_kernel"]
