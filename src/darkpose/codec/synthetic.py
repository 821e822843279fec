"""Synthetic heatmaps for tests and benchmarks: known keypoints, network-like noise."""

from __future__ import annotations

import numpy as np

from darkpose.codec.encoding import encode


def keypoint_positions(
    rng: np.random.Generator, n: int, k: int, heatmap_size: tuple[int, int], spread: str = "person"
) -> np.ndarray:
    """Random keypoint positions (n, k, 2) in heatmap pixels, inside the frame.

    ``spread="person"`` draws them like COCO keypoints in a top-down crop: around the
    centre, with standard deviations of 16% of the width and 20% of the height (on the
    coco-mini photos, 4% of labelled keypoints lie within 7 px of the 64x48 frame's edge;
    here about 8%). ``spread="uniform"`` draws them uniformly over the whole frame.
    """
    width, height = heatmap_size
    if spread == "uniform":
        xy = rng.uniform(0.0, 1.0, (n, k, 2)) * [width - 1, height - 1]
    elif spread == "person":
        centre = np.array([(width - 1) / 2, (height - 1) / 2])
        xy = centre + rng.standard_normal((n, k, 2)) * [0.16 * width, 0.2 * height]
    else:
        raise ValueError(f"spread: expected 'person' or 'uniform', got {spread!r}")
    return np.clip(xy, 0.0, [width - 1, height - 1])


def noisy_heatmaps(
    rng: np.random.Generator,
    keypoints: np.ndarray,
    heatmap_size: tuple[int, int],
    sigma: float,
    noise: float = 0.03,
    distractor_rate: float = 0.1,
) -> np.ndarray:
    """Heatmaps (N, K, H, W) float32 that look like a trained network's output.

    Each map holds the unbiased Gaussian of its keypoint scaled by a peak height in
    [0.4, 1.0], plus white noise of standard deviation ``noise``, plus smooth background
    clutter of about the same size, and, with probability ``distractor_rate``, a weaker
    second peak elsewhere (a left/right confusion). Values may be slightly negative, as
    MSE-trained outputs are.
    """
    n, k = keypoints.shape[:2]
    width, height = heatmap_size
    visible = np.ones((n, k))
    peaks, _ = encode(keypoints, visible, heatmap_size, sigma)
    heights = rng.uniform(0.4, 1.0, (n, k, 1, 1)).astype(np.float32)
    maps = peaks * heights
    if distractor_rate > 0:
        others = keypoint_positions(rng, n, k, heatmap_size, spread="uniform")
        second, _ = encode(others, rng.random((n, k)) < distractor_rate, heatmap_size, sigma)
        maps += second * (heights * rng.uniform(0.3, 0.6, (n, k, 1, 1)).astype(np.float32))
    if noise > 0:
        maps += rng.normal(0.0, noise, maps.shape).astype(np.float32)
        # clutter: white noise on a 4x coarser grid, upsampled bilinearly
        coarse = rng.normal(0.0, noise, (n, k, height // 4 + 2, width // 4 + 2)).astype(np.float32)
        ys = np.linspace(0, coarse.shape[2] - 1.001, height)
        xs = np.linspace(0, coarse.shape[3] - 1.001, width)
        y0, x0 = ys.astype(int), xs.astype(int)
        fy, fx = (ys - y0)[:, None].astype(np.float32), (xs - x0)[None, :].astype(np.float32)
        top = coarse[:, :, y0][:, :, :, x0] * (1 - fx) + coarse[:, :, y0][:, :, :, x0 + 1] * fx
        bottom = coarse[:, :, y0 + 1][:, :, :, x0] * (1 - fx) + coarse[:, :, y0 + 1][:, :, :, x0 + 1] * fx
        maps += top * (1 - fy) + bottom * fy
    return maps.astype(np.float32)
