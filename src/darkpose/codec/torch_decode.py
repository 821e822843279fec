"""The decode in torch operations that trace and export (DESIGN.md section 2, "Decode").

The same algorithm as :mod:`darkpose.codec.decoding` describes, written for torch tensors on
any device with fixed shapes: every map goes through every step, and what the NumPy path
decides per map (is the window near the border, is a value not finite, does the clamp act)
is a mask here. Nothing branches on data values and no size but H and W is read, so
``torch.onnx.export`` records one graph for any N and K. For each map h (H x W):

1. m = the first integer maximum, NaN and +-Inf read as 0; the score is h[m].
2. The window of S x S = (k + 4)^2 pixels centred on m, the edge repeated outside the frame,
   weighted outside the frame by 0 ("dark-reference": zero padding) or by the Gaussian
   continuation ("dark"). h' = G_k * h at the 13 taps that step 4 reads, as
   ``u^T window v`` with u, v the kernel centred at each tap.
3. P = log h' ("dark-reference": h' max(h) / max(h') clamped at 1e-10).
4. The Taylor step mu = m - H^-1 g, where it applies ("dark-reference": 1 < x < W-2,
   1 < y < H-2 and det H != 0; "dark": towards a maximum, clipped to 1.5 px per axis).

:func:`darkpose.codec.decode` sends torch tensors here (after checking them) and NumPy arrays
to its NumPy path; the tests hold the two to the same answers.
"""

from __future__ import annotations

import torch

from darkpose.codec import _gaussfit
from darkpose.codec.decoding import (  # the taps, constants and kernels are the NumPy path's
    _C,
    _LOG_FLOOR,
    _MAX_LOG_RATIO,
    _MM,
    _MP,
    _PM,
    _PP,
    _TAPS,
    _XM,
    _XMM,
    _XP,
    _XPP,
    _YM,
    _YMM,
    _YP,
    _YPP,
    DARK_FIT_BAND,
    DARK_FIT_EVERYWHERE_KERNEL,
    DARK_INTERIOR_FIT_ITERATIONS,
    DARK_MAX_STEP,
    _initial_spread,
    _shifted_kernels,
    _spread_matrix,
    gaussian_kernel,
)

__all__ = ["decode_tensor"]


def decode_tensor(
    heatmaps: torch.Tensor, method: str = "dark", blur_kernel: int = 11, return_covariance: bool = False,
    want_spread: bool = False,
):
    """Decode heatmaps (N, K, H, W) to coords (N, K, 2) and scores (N, K), float32, and with
    ``return_covariance`` their covariance (N, K, 2, 2).

    The arguments are those of :func:`darkpose.codec.decode` and are not checked here (it
    does that, once): ``heatmaps`` a floating-point tensor of 4 dimensions, ``method`` one
    of ``DECODE_METHODS``, ``blur_kernel`` odd, 1 to 101. Traceable: only H and W are fixed
    in a trace. Float64 maps are decoded in float64, other float types in float32.
    """
    height, width = heatmaps.shape[-2], heatmaps.shape[-1]
    maps = heatmaps.detach()
    if maps.dtype != torch.float64:
        maps = maps.to(torch.float32)
    flat = maps.flatten(-2)  # (N, K, H*W)
    # 1. the integer maximum and its raw value
    index = flat.argmax(dim=-1, keepdim=True)  # the first maximum; a NaN or +Inf wins it
    if _needed(~torch.isfinite(flat.gather(-1, index))):  # then read NaN and +Inf as 0
        index = torch.where(torch.isnan(flat) | (flat == float("inf")), 0.0, flat).argmax(dim=-1, keepdim=True)
    score = _finite(flat.gather(-1, index))[..., 0]
    index = index[..., 0]
    x, y = index % width, torch.div(index, width, rounding_mode="floor")
    coords = torch.stack((x, y), dim=-1).to(flat.dtype)
    if method == "shift":
        coords = coords + _quarter_shift(flat, x, y, height, width)
    elif method in ("dark", "dark-reference"):
        # 2. the modulation h' = G_k * h at the 13 taps around m, (N, K, 13)
        taps, window, inside = _blurred_taps(flat, x, y, height, width, blur_kernel, method)
        # 3. P = log h'
        if method == "dark-reference":
            log_taps = _reference_log(flat, taps, height, width, blur_kernel)
        else:
            log_taps = torch.log(torch.maximum(taps, taps[..., _C : _C + 1].clamp(min=0.0) * _LOG_FLOOR))
        # 4. the Taylor step mu = m - H^-1 g
        offset, hessian = _taylor_step(log_taps, taps[..., _C], x, y, height, width, method)
        if want_spread:  # darkpose.codec.modulated_spread
            return _spread_matrix(torch, hessian)
        curvature = 0.5 * (hessian[0] + hessian[2])
        spread = _initial_spread(torch, curvature, blur_kernel)
        if method == "dark":
            offset = offset.clamp(-DARK_MAX_STEP, DARK_MAX_STEP)
            R = blur_kernel // 2 + 2
            band = min(DARK_FIT_BAND, R)
            near = (x < band) | (x >= width - band) | (y < band) | (y >= height - band)
            peak = (score > 0) & (curvature < 0)
            offset, spread = _fit(window, inside, offset, spread, near & peak, _gaussfit.FIT_ITERATIONS)
            if blur_kernel <= DARK_FIT_EVERYWHERE_KERNEL:  # the sigma-1 configs: every maximum
                offset, spread = _fit(window, inside, offset, spread, ~near & peak, DARK_INTERIOR_FIT_ITERATIONS,
                                      spread_first=False)
        coords = coords + offset
    coords = torch.where((score > 0)[..., None], coords, 0.0)
    out = (coords.to(torch.float32), score.to(torch.float32))
    if return_covariance:
        cov = _gaussfit.covariance(torch, window.flatten(0, 1).double(), inside.flatten(1, 2).double(),
                                   offset.flatten(0, 1).T.double(), spread.flatten().double())
        known = (score > 0).flatten()[:, None, None]
        unknown = torch.tensor([[float("inf"), 0.0], [0.0, float("inf")]], dtype=cov.dtype, device=cov.device)
        cov = torch.where(known, cov, unknown).unflatten(0, score.shape)
        out += (cov.to(torch.float32),)
    return out


def _fit(window, inside, offset, spread, fit, iterations, spread_first=True):
    """The "dark" Gaussian fit (:mod:`darkpose.codec._gaussfit`) for the maps where ``fit``
    holds: in a trace every map is fitted and the mask selects; eagerly, only those maps, and
    none where none needs it."""
    if not _needed(fit):
        return offset, spread
    steps = {"iterations": iterations, "max_offset": DARK_MAX_STEP, "spread_first": spread_first}
    shape, dtype = fit.shape, offset.dtype  # the fit runs in float64 (as the NumPy path's)
    window, inside = window.flatten(0, 1).double(), inside.flatten(1, 2).double()
    offset, spread, fit = offset.flatten(0, 1).double(), spread.flatten().double(), fit.flatten()
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        u, s = _gaussfit.fit(torch, window, inside, offset.T, spread, **steps)
        offset, spread = torch.where(fit[:, None], u.T, offset), torch.where(fit, s, spread)
    else:
        i = fit.nonzero()[:, 0]
        u, s = _gaussfit.fit(torch, window[i], inside[:, i], offset[i].T, spread[i], **steps)
        offset, spread = offset.index_put((i,), u.T), spread.index_put((i,), s)
    return offset.unflatten(0, shape).to(dtype), spread.unflatten(0, shape).to(dtype)


def _needed(mask: torch.Tensor) -> bool:
    """Whether work done for the maps where ``mask`` holds (and discarded for the others) is
    needed: always in a trace or a compiled graph, which must hold every case; run eagerly,
    only when some map needs it. The answer is the same either way; eagerly, the full-map
    passes it guards (a second argmax for maps with NaN, the reference's full blur) are
    skipped where no map needs them."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or bool(mask.any())


def _finite(values: torch.Tensor) -> torch.Tensor:
    """NaN and +-Inf read as 0."""
    return torch.where(torch.isfinite(values), values, 0.0)


def _quarter_shift(flat, x, y, height, width):
    """HRNet: 0.25 px towards the higher neighbour, where 1 < x < W-1 and 1 < y < H-1."""
    def at(dx, dy):  # the map at (x + dx, y + dy), the edge repeated outside the frame
        flat_index = (y + dy).clamp(0, height - 1) * width + (x + dx).clamp(0, width - 1)
        return _finite(flat.gather(-1, flat_index[..., None])[..., 0])

    diff = torch.stack((at(1, 0) - at(-1, 0), at(0, 1) - at(0, -1)), dim=-1)
    inside = (x > 1) & (x < width - 1) & (y > 1) & (y < height - 1)
    return torch.where(inside[..., None], 0.25 * torch.sign(diff), 0.0)


def _blurred_taps(flat, x, y, height, width, kernel_size, method):
    """h' = G_k * h at the 13 taps around each maximum, (N, K, 13); the window (N, K, S, S)
    centred on it, non-finite values read as 0; which of its columns (0) and rows (1) lie
    inside the frame, (2, N, K, S)."""
    R = kernel_size // 2 + 2
    S = 2 * R + 1
    offsets = torch.arange(-R, R + 1, device=flat.device)
    cols, rows = x[..., None] + offsets, y[..., None] + offsets  # (N, K, S) frame lines of the window
    index = (rows.clamp(0, height - 1)[..., :, None] * width + cols.clamp(0, width - 1)[..., None, :]).flatten(-2)
    window = _finite(flat.gather(-1, index)).unflatten(-1, (S, S))  # (N, K, S, S): [row, column]
    inside_x = ((cols >= 0) & (cols < width)).to(flat.dtype)
    inside_y = ((rows >= 0) & (rows < height)).to(flat.dtype)
    if method == "dark-reference":  # zero padding
        factor_x, factor_y = inside_x, inside_y
    else:
        factor_x, factor_y = _continuation(window, x, y, inside_x, inside_y, height, width, kernel_size, R)
    # the blur at (R + dx, R + dy) is u_dy^T window v_dx, u and v the kernel centred at R + dy
    # (R + dx) times the window's row (column) factors: (5, S) @ (S, S) @ (S, 5)
    shifted = torch.as_tensor(_shifted_kernels(kernel_size, R), dtype=flat.dtype, device=flat.device)
    grid = (shifted * factor_y[..., None, :]) @ window @ (shifted.T * factor_x[..., :, None])  # [dy, dx]
    cells = torch.tensor([5 * (dy + 2) + dx + 2 for dx, dy in _TAPS], device=flat.device)
    return grid.flatten(-2)[..., cells], window, torch.stack((inside_x, inside_y))


def _continuation(window, x, y, inside_x, inside_y, height, width, kernel_size, R):
    """Factors (N, K, S) per window column and row that continue the window beyond the frame
    as the Gaussian it is assumed to be (docs/codec.md, "How dark works").

    Along x: the profile F(c) = sum_r G_k(r - R) h(r, c) over the inside rows; log F is
    interpolated by a quadratic l through the three inside columns nearest the centre, and
    an outside column c, which repeats the edge column e, gets the factor exp(l(c) - l(e)),
    capped at exp(30). 1 inside the frame, and wherever no strictly concave fit exists.
    Rows likewise.
    """
    S = 2 * R + 1
    r = kernel_size // 2
    kernel = torch.zeros(S, dtype=window.dtype, device=window.device)
    kernel[R - r : R + r + 1] = torch.as_tensor(gaussian_kernel(kernel_size), dtype=window.dtype, device=window.device)
    # the profiles at the five central columns (rows)
    profile_x = ((kernel * inside_y)[..., None, :] @ window[..., :, R - 2 : R + 3])[..., 0, :]
    profile_y = (window[..., R - 2 : R + 3, :] @ (kernel * inside_x)[..., :, None])[..., 0]
    return (_axis_factor(profile_x, x, width, R), _axis_factor(profile_y, y, height, R))


def _axis_factor(profile, p, length, R):
    """The continuation factors (N, K, S) on one axis, from the window's profile at its five
    central entries (N, K, 5) and the maximum's position ``p`` (N, K) on a frame of ``length``."""
    S = 2 * R + 1
    j = torch.arange(S, device=p.device)
    first = (R - p).clamp(min=0)[..., None]  # the first and last window entry inside the frame
    last = (R + length - 1 - p).clamp(max=S - 1)[..., None]
    centre = torch.minimum((first + 1).clamp(min=R), last - 1)  # of the fit: R - 1, R or R + 1
    t = (j - centre).to(profile.dtype)  # distance of an entry from the fit's centre
    te = (torch.minimum(torch.maximum(j, first), last) - centre).to(profile.dtype)  # of its edge entry
    three = profile.gather(-1, centre - (R - 2) + torch.arange(-1, 2, device=p.device))  # (N, K, 3)
    usable = (three > 0).all(dim=-1) & (last - first >= 2)[..., 0]
    ell = torch.log(torch.where(usable[..., None], three, 1.0))
    slope = 0.5 * (ell[..., 2] - ell[..., 0])
    curvature = 0.5 * (ell[..., 2] - 2 * ell[..., 1] + ell[..., 0])
    usable = usable & (curvature < 0)
    # l(c) - l(e) = slope (t - te) + curvature (t^2 - te^2); 0 inside the frame, where t = te
    log_ratio = slope[..., None] * (t - te) + curvature[..., None] * (t * t - te * te)
    return torch.exp(torch.where(usable[..., None], log_ratio.clamp(max=_MAX_LOG_RATIO), 0.0))


def _reference_log(flat, taps, height, width, kernel_size):
    """log(max(h' max(h) / max(h'), 1e-10)) at the taps, the reference's P.

    The rescale is a constant factor, which the finite differences cancel, except through
    the clamp; max(h') <= max(h), so the clamp can act only on maps with a tap <= 1e-10.
    Their full zero-padded blur gives max(h'): in a trace computed for every map (the mask
    selects), eagerly for those maps only.
    """
    clamped = (taps <= _LOG_FLOOR).any(dim=-1)
    if _needed(clamped):
        kernel = torch.as_tensor(gaussian_kernel(kernel_size), dtype=flat.dtype, device=flat.device)
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
        rows = flat.flatten(0, -2)
        i = None if tracing else clamped.flatten().nonzero()[:, 0]
        maps = _finite(rows if tracing else rows[i])
        blurred = _band(height, kernel) @ maps.unflatten(-1, (height, width)) @ _band(width, kernel).T
        rescale = maps.amax(dim=-1, keepdim=True) / blurred.flatten(-2).amax(dim=-1, keepdim=True)
        flat_taps = taps.flatten(0, -2)
        if tracing:
            flat_taps = torch.where(clamped.flatten()[:, None], flat_taps * rescale, flat_taps)
        else:
            flat_taps = flat_taps.index_put((i,), flat_taps[i] * rescale)
        taps = flat_taps.unflatten(0, taps.shape[:-1])
    return torch.log(taps.clamp(min=_LOG_FLOOR))


def _band(length: int, kernel: torch.Tensor) -> torch.Tensor:
    """(length, length) matrix of the 1-D zero-padded convolution with ``kernel``."""
    r = kernel.shape[0] // 2
    i = torch.arange(length, device=kernel.device)
    d = i[None, :] - i[:, None] + r
    return torch.where((d >= 0) & (d <= 2 * r), kernel[d.clamp(0, 2 * r)], 0.0)


def _taylor_step(p, centre, x, y, height, width, method):
    """The Taylor step mu - m (N, K, 2) from P at the 13 taps (N, K, 13), and the Hessian
    of P at m as (dxx, dxy, dyy), each (N, K)."""
    def tap(i):
        return p[..., i]

    dx = 0.5 * (tap(_XP) - tap(_XM))
    dy = 0.5 * (tap(_YP) - tap(_YM))
    dxx = 0.25 * (tap(_XPP) - 2 * tap(_C) + tap(_XMM))
    dyy = 0.25 * (tap(_YPP) - 2 * tap(_C) + tap(_YMM))
    dxy = 0.25 * (tap(_PP) - tap(_PM) - tap(_MP) + tap(_MM))
    det = dxx * dyy - dxy * dxy
    if method == "dark-reference":
        step = (x > 1) & (x < width - 2) & (y > 1) & (y < height - 2) & (det != 0)
    else:  # only towards a maximum: the Hessian negative definite
        step = (dxx < 0) & (det > 0) & (centre > 0)
    # mu - m = -H^-1 g, with H^-1 = [[dyy, -dxy], [-dxy, dxx]] / det
    inv_det = torch.where(step, 1.0 / torch.where(step, det, 1.0), 0.0)
    offset = torch.stack(((dxy * dy - dyy * dx) * inv_det, (dxy * dx - dxx * dy) * inv_det), dim=-1)
    return torch.where(torch.isfinite(offset), offset, 0.0), (dxx, dxy, dyy)

