"""Encoding keypoints as Gaussian target heatmaps (DESIGN.md section 2, "Encode").

Two methods:

* ``"unbiased"`` (DARK): the Gaussian is centred on the exact sub-pixel position and
  evaluated over the whole grid, ``G(x, y) = exp(-((x - mu_x)^2 + (y - mu_y)^2) / (2 sigma^2))``.
* ``"quantized"`` (HRNet): the centre is first rounded to the nearest pixel,
  ``floor(mu + 0.5)``, and the Gaussian is kept only on the square patch
  ``|x - mu_x| <= 3 sigma, |y - mu_y| <= 3 sigma``.

The isotropic Gaussian factorises, ``G = g(y) g(x)``, so each heatmap is the outer
product of two 1-D profiles: one pass over the output, no loop over keypoints.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from darkpose.codec._backend import convert, describe, wrap

ENCODE_METHODS = ("unbiased", "quantized")
# The smallest sigma: the 3-sigma box, 6 sigma wide, must hold a pixel on each axis, so that
# every map of weight 1 has a value >= exp(-9) inside its box. Below it a labelled keypoint
# between pixels gets weight 1 and an all-but-empty map (1e-11 at sigma 0.1, 0 below 0.053
# where float32 underflows; NaN below 4e-20 where -1 / (2 sigma^2) overflows).
MIN_SIGMA = 1 / 6


def encode(
    keypoints: Any,
    visible: Any,
    heatmap_size: tuple[int, int],
    sigma: float,
    method: str = "unbiased",
    out: Any = None,
) -> tuple[Any, Any]:
    """Encode keypoints as Gaussian heatmaps with per-keypoint weights.

    Parameters
    ----------
    keypoints : array (N, K, 2), float
        Keypoint positions (x, y) in heatmap pixels. NumPy array or torch tensor.
        Entries of unlabelled keypoints are ignored and may be NaN; a labelled keypoint
        that is not finite is a ValueError naming its index.
    visible : array (N, K)
        Labelling flag: COCO visibility 0/1/2, or any real number; ``> 0`` means labelled
        (so NaN means unlabelled).
    heatmap_size : (W, H)
        Heatmap width and height, as the official configs write them.
    sigma : float
        Standard deviation of the Gaussian in heatmap pixels, finite and at least
        :data:`MIN_SIGMA` (1/6).
    method : {"unbiased", "quantized"}
        DARK's sub-pixel encoding, or HRNet's rounded centre with a 3-sigma patch.
    out : array (N, K, H, W), float32, optional
        Where to write the heatmaps: a writable, contiguous NumPy array or torch tensor on the
        keypoints' device (for NumPy input: a NumPy array or a CPU tensor), e.g.
        a batch buffer reused across steps: it saves the allocation, which for large batches
        costs more than the encoding itself.

    Returns
    -------
    heatmaps : array (N, K, H, W), float32
        All zero for keypoints with weight 0.
    weights : array (N, K), float32
        1 for a labelled keypoint, 0 for an unlabelled one and for one whose 3-sigma box
        ``[mu - 3 sigma, mu + 3 sigma]`` (after rounding, for "quantized") lies entirely
        outside the frame ``[0, W - 1] x [0, H - 1]``.

    Both outputs are of the input's array type (NumPy, or torch on the input's device).
    """
    if method not in ENCODE_METHODS:
        raise ValueError(f"method: expected one of {ENCODE_METHODS}, got {method!r}")
    backend, kp, restore = wrap(keypoints, "keypoints")
    return _encode(backend, kp, restore, visible, heatmap_size, sigma, method, out)


def _encode(backend, kp, restore, visible, heatmap_size, sigma, method, out):
    xp = backend.xp
    if kp.ndim != 3 or kp.shape[-1] != 2 or not backend.is_float(kp):
        raise ValueError(f"keypoints: expected a float array of shape (N, K, 2), got {describe(kp)}")
    vis = convert(backend, visible, "visible")
    if tuple(vis.shape) != tuple(kp.shape[:2]):
        raise ValueError(
            f"visible: expected shape {tuple(kp.shape[:2])} to match keypoints (N, K), got {tuple(vis.shape)}"
        )
    if _is_complex(vis):
        raise ValueError(f"visible: expected real numbers, got {describe(vis)}")
    width, height = _check_size(heatmap_size)
    sigma = _check_sigma(sigma)
    n, k = kp.shape[:2]
    target = None if out is None else _check_out(backend, out, (n, k, height, width))

    mu = backend.astype(kp, backend.float64)
    labelled = vis > 0
    finite = xp.isfinite(mu).all(axis=-1)
    if bool((labelled & ~finite).any()):
        bad = backend.nonzero((labelled & ~finite).reshape(-1))[0]
        i, j = int(bad) // k, int(bad) % k
        raise ValueError(
            f"keypoints: labelled keypoint [{i}, {j}] has a non-finite position "
            f"{mu[i, j].tolist()}; mark it unlabelled (visible 0) or give a finite position"
        )
    if method == "quantized":
        mu = xp.floor(mu + 0.5)

    reach = 3.0 * sigma
    mu_x, mu_y = mu[..., 0], mu[..., 1]
    box_overlaps = (
        (mu_x + reach >= 0) & (mu_x - reach <= width - 1) & (mu_y + reach >= 0) & (mu_y - reach <= height - 1)
    )
    kept = labelled & box_overlaps
    weights = backend.astype(kept, backend.float32)
    # the others' maps are 0: their positions (NaN, or too far for float32) are not used
    mu = xp.where(kept[..., None], mu, 0.0)

    gx, gy = _profiles(backend, mu, weights, width, height, sigma, method)
    if target is None:
        return restore(backend.outer_into(gy, gx, backend.empty((n, k, height, width), backend.float32))), restore(
            weights
        )
    backend.outer_into(gy, gx, target)  # writes through to the caller's buffer
    return out, restore(weights)


def _profiles(backend, mu, weights, width, height, sigma, method):
    """The 1-D profiles g(x) (N, K, W) and g(y) (N, K, H), float32, g(y) times the weights,
    as the backend's arrays.

    Computed in torch for NumPy input too (zero-copy views): its elementwise operations run
    on every thread, NumPy's on one, and on 2 cores this took the profiles of 4,352 keypoints
    from 3.1 to 0.5 ms, a third of the encode's time beside the 2.4 ms of the outer product
    (docs/codec.md). mu (N, K, 2) float64 is split into its integer and fractional parts, so
    that t - mu keeps float64's precision in float32.
    """
    numpy_input = backend.xp is np
    mu = torch.from_numpy(mu) if numpy_input else mu
    whole = torch.floor(mu)
    fraction, whole = (mu - whole).to(torch.float32), whole.to(torch.float32)
    # Values at or below the cut are 0. "quantized": the 3-sigma patch, |t - mu| <= 3 sigma
    # <=> exponent >= -4.5. "unbiased": 2^-63, so that no product of two factors is a float32
    # subnormal (7% of a 64x48 sigma-2 map were, and slow to compute on some CPUs); the map
    # changes by less than 1.1e-19 (docs/codec.md). The exponent is clamped at the cut before
    # the exp (which is slow where it underflows), and what the clamp set is thresholded to 0
    # (at 1e-6 relative above exp(cut): clamped values are within an ulp or two of it).
    cut = -4.5 - 1e-5 if method == "quantized" else _SUBNORMAL_SAFE_EXPONENT
    floor = math.exp(cut) * (1.0 + 1e-6)
    out = []
    for axis, length in ((0, width), (1, height)):
        t = torch.arange(length, dtype=torch.float32, device=mu.device)
        offset = (t - whole[..., axis : axis + 1]).sub_(fraction[..., axis : axis + 1])
        exponent = offset.square_().mul_(-0.5 / (sigma * sigma)).clamp_(min=cut)
        out.append(torch.nn.functional.threshold(exponent.exp_(), floor, 0.0))
    weights = torch.from_numpy(weights) if numpy_input else weights
    gx, gy = out[0], out[1].mul_(weights[..., None])
    return (gx.numpy(), gy.numpy()) if numpy_input else (gx, gy)


def _is_complex(a: Any) -> bool:
    return a.dtype.kind == "c" if isinstance(a, np.ndarray) else a.is_complex()


def _check_out(backend, out: Any, shape: tuple[int, ...]) -> Any:
    """``out`` as the backend's array, sharing its memory, or a ValueError before anything
    is written: a copy (another device or array type, another dtype, a list) would leave
    ``out`` unwritten."""
    expected = f"a contiguous float32 array of shape {shape} on the keypoints' device"
    if not isinstance(out, (np.ndarray, torch.Tensor)):
        raise ValueError(f"out: expected {expected}, got {type(out).__name__}")
    out_backend, target, _ = wrap(out, "out")
    contiguous = out.flags["C_CONTIGUOUS"] if isinstance(out, np.ndarray) else out.is_contiguous()
    if (
        out_backend is not backend
        or out.dtype not in (np.dtype(np.float32), torch.float32)
        or tuple(out.shape) != shape
        or not contiguous
    ):
        where = f" on {out.device}" if isinstance(out, torch.Tensor) else ""
        raise ValueError(f"out: expected {expected}, got {type(out).__name__} {describe(out)}{where}")
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError("out: expected a writable array, got a read-only one")
    return target


def _check_size(heatmap_size: Any) -> tuple[int, int]:
    message = f"heatmap_size: expected (W, H), two positive integers, got {heatmap_size!r}"
    try:
        values = list(heatmap_size)
        width, height = (int(v) for v in values)
        exact = all(not isinstance(v, _NOT_NUMBERS) and float(v) == int(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not exact or width < 1 or height < 1:
        raise ValueError(message)
    return width, height


def _check_sigma(sigma: Any) -> float:
    message = f"sigma: expected a finite number of at least MIN_SIGMA = 1/6 px, got {sigma!r}"
    if isinstance(sigma, _NOT_NUMBERS):
        raise ValueError(message)
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not (math.isfinite(value) and value >= MIN_SIGMA):
        raise ValueError(message)
    return value


_SUBNORMAL_SAFE_EXPONENT = -63 * math.log(2.0)  # exp of less is below 2^-63
_NOT_NUMBERS = (bool, np.bool_, str, bytes)  # float() and int() accept them, a size or sigma cannot be one
