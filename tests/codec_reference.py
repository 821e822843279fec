"""Straightforward per-keypoint implementations of DESIGN.md section 2, for parity tests.

Written from the description, one keypoint at a time, in float64, with OpenCV doing the
modulation on an explicitly zero-padded copy, as the original code does.
"""

from __future__ import annotations

import cv2
import numpy as np


def encode_one(mu, labelled, size, sigma, method):
    """One heatmap (H, W) and its weight."""
    width, height = size
    xs = np.arange(width, dtype=np.float64)[None, :]
    ys = np.arange(height, dtype=np.float64)[:, None]
    if not labelled:
        return np.zeros((height, width)), 0.0
    mx, my = float(mu[0]), float(mu[1])
    if method == "quantized":
        mx, my = np.floor(mx + 0.5), np.floor(my + 0.5)
    t = 3 * sigma
    if mx + t < 0 or mx - t > width - 1 or my + t < 0 or my - t > height - 1:
        return np.zeros((height, width)), 0.0
    g = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * sigma**2))
    if method == "quantized":
        g = g * ((np.abs(xs - mx) <= t) & (np.abs(ys - my) <= t))
    return g, 1.0


def encode_loop(keypoints, visible, size, sigma, method="unbiased"):
    n, k = keypoints.shape[:2]
    width, height = size
    maps = np.zeros((n, k, height, width))
    weights = np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            maps[i, j], weights[i, j] = encode_one(keypoints[i, j], visible[i, j] > 0, size, sigma, method)
    return maps, weights


def decode_one(h, method, kernel):
    """(x, y), score of one heatmap h (H, W), float64."""
    h = np.asarray(h, dtype=np.float64)
    height, width = h.shape
    m = int(np.argmax(h))
    x, y = m % width, m // width
    score = h[y, x]
    if score <= 0:
        return np.zeros(2), score
    coord = np.array([x, y], dtype=np.float64)
    if method == "argmax":
        return coord, score
    if method == "shift":
        if 1 < x < width - 1 and 1 < y < height - 1:
            diff = np.array([h[y, x + 1] - h[y, x - 1], h[y + 1, x] - h[y - 1, x]])
            coord += 0.25 * np.sign(diff)
        return coord, score
    assert method == "dark-reference"
    b = (kernel - 1) // 2
    padded = np.zeros((height + 2 * b, width + 2 * b))
    padded[b : b + height, b : b + width] = h
    blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[b : b + height, b : b + width]
    blurred = blurred * (h.max() / blurred.max())
    p = np.log(np.maximum(blurred, 1e-10))
    if 1 < x < width - 2 and 1 < y < height - 2:
        dx = 0.5 * (p[y, x + 1] - p[y, x - 1])
        dy = 0.5 * (p[y + 1, x] - p[y - 1, x])
        dxx = 0.25 * (p[y, x + 2] - 2 * p[y, x] + p[y, x - 2])
        dyy = 0.25 * (p[y + 2, x] - 2 * p[y, x] + p[y - 2, x])
        dxy = 0.25 * (p[y + 1, x + 1] - p[y - 1, x + 1] - p[y + 1, x - 1] + p[y - 1, x - 1])
        if dxx * dyy - dxy**2 != 0:
            hessian = np.array([[dxx, dxy], [dxy, dyy]])
            coord = coord - np.linalg.solve(hessian, np.array([dx, dy]))
    return coord, score


def decode_loop(heatmaps, method, kernel=11):
    """Coordinates (N, K, 2) and scores (N, K), one keypoint at a time."""
    n, k = heatmaps.shape[:2]
    coords = np.zeros((n, k, 2))
    scores = np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            coords[i, j], scores[i, j] = decode_one(heatmaps[i, j], method, kernel)
    return coords, scores
