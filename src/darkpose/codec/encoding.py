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

import torch

from darkpose.codec._arrays import describe, new_array, to_caller, to_tensor

ENCODE_METHODS = ("unbiased", "quantized")


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
        Entries of unlabelled keypoints are ignored and may be NaN.
    visible : array (N, K)
        Labelling flag: COCO visibility 0/1/2, or any number; ``> 0`` means labelled.
    heatmap_size : (W, H)
        Heatmap width and height, as the official configs write them.
    sigma : float
        Standard deviation of the Gaussian in heatmap pixels (> 0).
    method : {"unbiased", "quantized"}
        DARK's sub-pixel encoding, or HRNet's rounded centre with a 3-sigma patch.
    out : array (N, K, H, W), float32, optional
        Where to write the heatmaps (an array of the keypoints' type, on their device), e.g.
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
    kp, was_numpy = to_tensor(keypoints, "keypoints")
    vis, _ = to_tensor(visible, "visible")
    if kp.ndim != 3 or kp.shape[-1] != 2 or not kp.is_floating_point():
        raise ValueError(f"keypoints: expected a float array of shape (N, K, 2), got {describe(kp)}")
    if tuple(vis.shape) != tuple(kp.shape[:2]):
        raise ValueError(
            f"visible: expected shape {tuple(kp.shape[:2])} to match keypoints (N, K), got {tuple(vis.shape)}"
        )
    width, height = _check_size(heatmap_size)
    sigma = _check_sigma(sigma)

    device = kp.device
    mu = kp.to(torch.float64)
    vis = vis.to(device)
    labelled = (vis > 0) if vis.dtype != torch.bool else vis
    if not bool(torch.isfinite(mu[labelled]).all()):
        n, k = torch.nonzero(labelled & ~torch.isfinite(mu).all(-1))[0].tolist()
        raise ValueError(
            f"keypoints: labelled keypoint [{n}, {k}] has a non-finite position "
            f"{kp[n, k].tolist()}; mark it unlabelled (visible 0) or give a finite position"
        )
    mu = torch.where(labelled[..., None], mu, torch.zeros((), dtype=mu.dtype, device=device))
    if method == "quantized":
        mu = torch.floor(mu + 0.5)

    reach = 3.0 * sigma
    mu_x, mu_y = mu[..., 0], mu[..., 1]
    box_overlaps = (
        (mu_x + reach >= 0) & (mu_x - reach <= width - 1) & (mu_y + reach >= 0) & (mu_y - reach <= height - 1)
    )
    weights = (labelled & box_overlaps).to(torch.float32)

    # the 1-D profiles g(x) (N, K, W) and g(y) (N, K, H), computed together in float32; the
    # integer and fractional parts of mu are split so that t - mu keeps float64's precision
    t = torch.cat((torch.arange(width, device=device), torch.arange(height, device=device)))
    lengths = torch.tensor([width, height], device=device)
    whole = torch.floor(mu)
    centre = torch.repeat_interleave(whole.to(torch.float32), lengths, dim=-1)
    fraction = torch.repeat_interleave((mu - whole).to(torch.float32), lengths, dim=-1)
    exponent = (t - centre).sub_(fraction).square_().mul_(-0.5 / (sigma * sigma))
    profiles = torch.exp(exponent)
    if method == "quantized":  # |t - mu| <= 3 sigma  <=>  exponent >= -4.5
        profiles.masked_fill_(exponent < -4.5 - 1e-5, 0.0)
    gx, gy = profiles[..., :width], profiles[..., width:] * weights[..., None]
    shape = (*mu.shape[:2], height, width)
    if out is None:
        heatmaps = new_array(shape, torch.float32, device)
    else:
        heatmaps, _ = to_tensor(out, "out")
        if tuple(heatmaps.shape) != shape or heatmaps.dtype != torch.float32 or heatmaps.device != device:
            raise ValueError(
                f"out: expected a float32 array of shape {shape} on {device}, got {describe(heatmaps)} "
                f"on {heatmaps.device}"
            )
    torch.mul(gy[..., :, None], gx[..., None, :], out=heatmaps)
    return (out if out is not None else to_caller(heatmaps, was_numpy)), to_caller(weights, was_numpy)


def _check_size(heatmap_size: Any) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in heatmap_size)
        exact = all(float(v) == int(v) for v in heatmap_size)
    except (TypeError, ValueError):
        raise ValueError(f"heatmap_size: expected (W, H), two positive integers, got {heatmap_size!r}") from None
    if not exact or width < 1 or height < 1:
        raise ValueError(f"heatmap_size: expected (W, H), two positive integers, got {heatmap_size!r}")
    return width, height


def _check_sigma(sigma: Any) -> float:
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"sigma: expected a positive number, got {sigma!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"sigma: expected a positive finite number, got {sigma!r}")
    return value
