"""``darkpose bench codec-accuracy``: localisation error of every decode against the Cramér-Rao bound.

Heatmaps with known truth (``darkpose.codec.encode``, unbiased, amplitude 1) at positions drawn
in equal numbers per band of distance to the nearest edge, then a noise model: white Gaussian
noise, a second weaker peak, a predicted sigma other than the target's, 8-bit quantisation.
Every method decodes them; the RMS error per axis is set against the RMS of the per-keypoint
bound (:func:`darkpose.codec.bounds.position_bound`), with sigma and amplitude known (the
issue's bound) and, as further columns, unknown. The study and how to read it:
docs/codec_accuracy.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from darkpose._files import write_new
from darkpose.bench._common import machine, non_negative_int, positive_int, table
from darkpose.codec import decode, encode, gaussian_kernel
from darkpose.codec.bounds import position_bound

BANDS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, math.inf))
BAND_NAMES = ("[0,1)", "[1,2)", "[2,4)", "[4,6)", ">=6")
DECODES = ("argmax", "shift", "dark-reference", "dark")
METHODS = (*DECODES, "udp", "soft-argmax", "soft-argmax-window", "fit (sigma, A known)")
SOFTMAX_BETA = 10.0
"""Soft-argmax: p ∝ exp(beta h / max h); beta 10 makes exp(beta h) a peak of spread sigma / sqrt(10)."""
BOUND_KINDS = {"known": (), "A unknown": ("amplitude",), "A, sigma unknown": ("amplitude", "sigma")}
MATCHING_KERNEL = {1.0: 3, 2.0: 11, 3.0: 17}
NOISE_LEVELS = (0.01, 0.03, 0.05, 0.1)
QUANT_NOISE = 0.002  # 8-bit regime: white noise added before the rounding
SECOND_PEAK = (0.5, 6.0)  # its amplitude and distance


def regimes() -> list[dict[str, Any]]:
    """The grid: the main table (noise x band at sigma 2 / kernel 11 and sigma 1 / kernel 3 on
    64x48), then one factor at a time from the base (sigma 2, kernel 11, 64x48, noise 0.03)."""
    base = {"sigma": 2.0, "kernel": 11, "size": (64, 48), "noise": 0.03, "model": "white", "map_sigma": None}
    out = []
    for sigma in (2.0, 1.0):
        for noise in NOISE_LEVELS:
            out.append(base | {"name": f"white {noise:g}, sigma {sigma:g}", "group": "main", "sigma": sigma,
                               "kernel": MATCHING_KERNEL[sigma], "noise": noise})
    out.append(base | {"name": "white 0.03, sigma 3 (kernel 17)", "group": "sigma", "sigma": 3.0, "kernel": 17})
    for size in ((32, 24), (96, 72)):
        out.append(base | {"name": f"white 0.03, {size[0]}x{size[1]}", "group": "size", "size": size})
    for factor in (0.75, 1.5):
        out.append(base | {"name": f"predicted sigma {factor:g}x", "group": "sigma mismatch",
                           "map_sigma": 2.0 * factor})
    for sigma in (2.0, 1.0):
        out.append(base | {"name": f"second peak, sigma {sigma:g}", "group": "second peak", "model": "second",
                           "sigma": sigma, "kernel": MATCHING_KERNEL[sigma]})
        out.append(base | {"name": f"8-bit, sigma {sigma:g}", "group": "8-bit", "model": "8bit", "sigma": sigma,
                           "kernel": MATCHING_KERNEL[sigma], "noise": QUANT_NOISE})
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md, the plots and figures.json")
    parser.add_argument("--per-band", type=positive_int, default=2000,
                        help="keypoints per border band and regime (default 2000)")
    parser.add_argument("--quick", action="store_true", help="200 keypoints per band (for CI)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--force", action="store_true", help="write into an existing non-empty --out folder")


# --------------------------------------------------------------------------- positions and maps


def border_distance(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Distance (...,) of each position (..., 2) to the nearest edge of the frame [0, W-1] x [0, H-1]."""
    width, height = size
    return np.minimum.reduce([xy[..., 0], width - 1 - xy[..., 0], xy[..., 1], height - 1 - xy[..., 1]])


def band_of(distance: np.ndarray) -> np.ndarray:
    """Index into :data:`BANDS` of each distance (>= 0)."""
    return np.searchsorted([b[1] for b in BANDS[:-1]], distance, side="right")


def stratified_positions(rng: np.random.Generator, per_band: int, size: tuple[int, int]) -> np.ndarray:
    """``per_band`` positions (5 * per_band, 2) in each border band, uniform within the band (so
    the sub-pixel phases are uniform too), band by band in the order of :data:`BANDS`."""
    width, height = size
    out = []
    for band in range(len(BANDS)):
        picked: list[np.ndarray] = []
        count = 0
        while count < per_band:
            xy = rng.uniform(0, 1, (4 * per_band, 2)) * [width - 1, height - 1]
            xy = xy[band_of(border_distance(xy, size)) == band]
            picked.append(xy)
            count += len(xy)
        out.append(np.concatenate(picked)[:per_band])
    return np.concatenate(out)


def make_maps(rng: np.random.Generator, truth: np.ndarray, regime: dict[str, Any]) -> tuple[np.ndarray, dict]:
    """Heatmaps (M, 1, H, W) float32 of the regime's noise model, and what else it drew."""
    size, noise = regime["size"], regime["noise"]
    map_sigma = regime["map_sigma"] or regime["sigma"]
    maps, _ = encode(truth[:, None], np.ones((len(truth), 1)), size, map_sigma)
    extra: dict[str, Any] = {}
    if regime["model"] == "second":
        amplitude, distance = SECOND_PEAK
        angle = rng.uniform(0, 2 * np.pi, len(truth))
        direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        second, _ = encode((truth + distance * direction)[:, None], np.ones((len(truth), 1)), size, map_sigma)
        maps += np.float32(amplitude) * second
        extra["direction"] = direction
    maps += rng.normal(0.0, noise, maps.shape).astype(np.float32)
    if regime["model"] == "8bit":
        maps = np.round(np.clip(maps, 0.0, 1.0) * 255) / np.float32(255)
    return maps.astype(np.float32), extra


def effective_noise(regime: dict[str, Any]) -> float:
    """The white-noise std the bound is computed for: the noise, plus the rounding's 1/(255 sqrt 12)
    for 8-bit maps (the rounding error as if it were white noise)."""
    if regime["model"] == "8bit":
        return math.hypot(regime["noise"], 1 / (255 * math.sqrt(12)))
    return regime["noise"]


# --------------------------------------------------------------------------- the baselines


def udp_decode(maps: np.ndarray, kernel: int) -> np.ndarray:
    """A UDP-style decode (Huang et al. 2020) of maps (M, H, W): modulation with the Gaussian
    kernel and edge-replicated padding, P = log(max(h', 1e-10)), one Taylor step from the argmax
    with 3x3 central differences (P edge-replicated outside the frame), taken where the
    Hessian is negative definite. Returns (M, 2) float64."""
    m, height, width = maps.shape
    index = maps.reshape(m, -1).argmax(axis=1)
    x, y = index % width, index // width
    g = gaussian_kernel(kernel)
    r = kernel // 2
    taps = np.arange(-r, r + 1)
    rows = np.arange(m)[:, None, None]
    p = np.empty((m, 3, 3))
    for i, dy in enumerate((-1, 0, 1)):
        for j, dx in enumerate((-1, 0, 1)):
            cy = np.clip(y + dy, 0, height - 1)  # the blurred map, edge-replicated beyond the frame
            cx = np.clip(x + dx, 0, width - 1)
            ys = np.clip(cy[:, None] + taps, 0, height - 1)  # the blur itself, with edge padding
            xs = np.clip(cx[:, None] + taps, 0, width - 1)
            window = maps[rows, ys[:, :, None], xs[:, None, :]].astype(np.float64)
            p[:, i, j] = np.log(np.maximum(np.einsum("mab,a,b->m", window, g, g), 1e-10))
    gx, gy = (p[:, 1, 2] - p[:, 1, 0]) / 2, (p[:, 2, 1] - p[:, 0, 1]) / 2
    dxx = p[:, 1, 2] - 2 * p[:, 1, 1] + p[:, 1, 0]
    dyy = p[:, 2, 1] - 2 * p[:, 1, 1] + p[:, 0, 1]
    dxy = (p[:, 2, 2] - p[:, 2, 0] - p[:, 0, 2] + p[:, 0, 0]) / 4
    det = dxx * dyy - dxy**2
    ok = (dxx < 0) & (det > 0)
    safe = np.where(ok, det, 1.0)
    step_x = np.where(ok, (dyy * gx - dxy * gy) / safe, 0.0)
    step_y = np.where(ok, (dxx * gy - dxy * gx) / safe, 0.0)
    return np.stack([x - step_x, y - step_y], axis=1)


def soft_argmax(maps: np.ndarray, beta: float = SOFTMAX_BETA, radius: int | None = None) -> np.ndarray:
    """Soft-argmax / integral regression of maps (M, H, W): the expectation of (x, y) under
    p ∝ exp(beta h / max h), over the whole map (``radius=None``) or over the pixels within
    ``radius`` (per axis) of the argmax, clipped to the frame. Returns (M, 2) float64."""
    m, height, width = maps.shape
    flat = maps.reshape(m, -1).astype(np.float64)
    peak = flat.max(axis=1, keepdims=True)
    w = np.exp(beta * (flat - peak) / np.where(peak > 0, peak, 1.0)).reshape(m, height, width)
    xs, ys = np.arange(width), np.arange(height)
    if radius is not None:
        index = flat.argmax(axis=1)
        x, y = index % width, index // width
        w = w * (np.abs(xs[None, None, :] - x[:, None, None]) <= radius)
        w = w * (np.abs(ys[None, :, None] - y[:, None, None]) <= radius)
    total = w.sum(axis=(1, 2))
    return np.stack([(w.sum(axis=1) * xs).sum(axis=1) / total, (w.sum(axis=2) * ys).sum(axis=1) / total], axis=1)


def gaussian_fit(maps: np.ndarray, start: np.ndarray, sigma: float, amplitude: float = 1.0,
                 iterations: int = 6) -> np.ndarray:
    """The oracle: Gauss-Newton least squares of A exp(-|p - mu|^2 / (2 sigma^2)), sigma and A
    known, to the whole raw map (M, H, W), over the position mu only, from ``start`` (M, 2);
    each step clipped to 1 px per axis. The ML estimate under white noise. Returns (M, 2)."""
    m, height, width = maps.shape
    mu = start.astype(np.float64).copy()
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    for _ in range(iterations):
        dx = xs[None, :] - mu[:, :1]  # (M, W)
        dy = ys[None, :] - mu[:, 1:]  # (M, H)
        gx, gy = np.exp(-dx * dx / (2 * sigma**2)), np.exp(-dy * dy / (2 * sigma**2))
        model = amplitude * gy[:, :, None] * gx[:, None, :]
        resid = maps - model
        jx = model * dx[:, None, :] / sigma**2
        jy = model * dy[:, :, None] / sigma**2
        a, b, c = (jx * jx).sum(axis=(1, 2)), (jx * jy).sum(axis=(1, 2)), (jy * jy).sum(axis=(1, 2))
        u, v = (jx * resid).sum(axis=(1, 2)), (jy * resid).sum(axis=(1, 2))
        det = a * c - b * b
        safe = np.where(det > 0, det, 1.0)
        step = np.stack([(c * u - b * v) / safe, (a * v - b * u) / safe], axis=1) * (det > 0)[:, None]
        mu += np.clip(step, -1.0, 1.0)
    return mu


def decode_all(maps: np.ndarray, regime: dict[str, Any], chunk: int = 2000) -> dict[str, np.ndarray]:
    """(M, 2) coordinates of every method in :data:`METHODS`, and the covariance of "dark" and
    "dark-reference" under ``"cov <method>"`` (M, 2, 2)."""
    out: dict[str, list[np.ndarray]] = {}
    map_sigma = regime["map_sigma"] or regime["sigma"]

    def put(name, value):
        out.setdefault(name, []).append(np.asarray(value, dtype=np.float64))

    for start in range(0, len(maps), chunk):
        part = maps[start : start + chunk]
        for method in DECODES:
            if method in ("dark", "dark-reference"):
                coords, _, cov = decode(part, method, regime["kernel"], return_covariance=True)
                put(f"cov {method}", cov[:, 0])
            else:
                coords, _ = decode(part, method, regime["kernel"])
            put(method, coords[:, 0])
        flat = part[:, 0]
        put("udp", udp_decode(flat, regime["kernel"]))
        put("soft-argmax", soft_argmax(flat))
        put("soft-argmax-window", soft_argmax(flat, radius=math.ceil(2 * regime["sigma"])))
        put("fit (sigma, A known)", gaussian_fit(flat, out["dark"][-1], map_sigma))
    return {name: np.concatenate(parts) for name, parts in out.items()}


# --------------------------------------------------------------------------- the figures


def calibration(errors, covariance) -> dict[str, float]:
    """How well covariances (M, 2, 2) describe errors (M, 2): the fractions of errors inside the
    1- and 2-sigma ellipses (Mahalanobis d^2 = e^T C^-1 e <= 1 and <= 4; a calibrated 2-D
    Gaussian gives 1 - exp(-1/2) = 39.3% and 1 - exp(-2) = 86.5%), and mean d^2 / 2 (1 when
    calibrated, above 1 when the covariance is too small). Entries with a non-finite or not
    positive-definite covariance, or a non-finite error, are left out and counted.

    Returns
    -------
    dict
        ``inside_1sigma``, ``inside_2sigma``, ``mean_d2_over_2`` (NaN when nothing is left),
        ``count`` (used), ``excluded``.
    """
    e = np.asarray(errors, dtype=np.float64)
    c = np.asarray(covariance, dtype=np.float64)
    if e.ndim != 2 or e.shape[1] != 2:
        raise ValueError(f"errors: expected shape (M, 2), got {e.shape}")
    if c.shape != (len(e), 2, 2):
        raise ValueError(f"covariance: expected shape ({len(e)}, 2, 2) to match errors, got {c.shape}")
    with np.errstate(invalid="ignore"):
        det = c[:, 0, 0] * c[:, 1, 1] - c[:, 0, 1] * c[:, 1, 0]
        ok = np.isfinite(c).all(axis=(1, 2)) & np.isfinite(e).all(axis=1) & (c[:, 0, 0] > 0) & (det > 0)
    e, c, det = e[ok], c[ok], det[ok]
    d2 = (c[:, 1, 1] * e[:, 0] ** 2 - (c[:, 0, 1] + c[:, 1, 0]) * e[:, 0] * e[:, 1] + c[:, 0, 0] * e[:, 1] ** 2) / det
    n = len(d2)
    return {
        "inside_1sigma": float((d2 <= 1).mean()) if n else math.nan,
        "inside_2sigma": float((d2 <= 4).mean()) if n else math.nan,
        "mean_d2_over_2": float(d2.mean() / 2) if n else math.nan,
        "count": int(n),
        "excluded": int((~ok).sum()),
    }


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values**2))) if len(values) else math.nan


def band_figures(err: np.ndarray, truth: np.ndarray, bounds: dict[str, np.ndarray], size: tuple[int, int],
                 select: np.ndarray) -> dict[str, float]:
    """RMS errors and ratios to the bounds for the keypoints ``select`` (a boolean mask)."""
    e, t = err[select], truth[select]
    width, height = size
    normal_x = np.minimum(t[:, 0], width - 1 - t[:, 0]) <= np.minimum(t[:, 1], height - 1 - t[:, 1])
    e_normal = np.where(normal_x, e[:, 0], e[:, 1])
    out = {"n": int(select.sum()), "rms_x": _rms(e[:, 0]), "rms_y": _rms(e[:, 1]),
           "rms": _rms(e.reshape(-1)), "rms_normal": _rms(e_normal)}
    for kind, cov in bounds.items():
        c = cov[select]
        vx, vy = c[:, 0, 0], c[:, 1, 1]
        v_normal = np.where(normal_x, vx, vy)
        bound = math.sqrt(np.mean((vx + vy) / 2))
        out[f"bound_rms {kind}"] = bound
        out[f"ratio {kind}"] = out["rms"] / bound
        if kind == "known":
            out["ratio_x known"] = out["rms_x"] / math.sqrt(np.mean(vx))
            out["ratio_y known"] = out["rms_y"] / math.sqrt(np.mean(vy))
            out["ratio_normal known"] = out["rms_normal"] / math.sqrt(np.mean(v_normal))
    return out


def measure(regime: dict[str, Any], per_band: int, rng: np.random.Generator) -> dict[str, Any]:
    """All figures of one regime."""
    size = regime["size"]
    truth = stratified_positions(rng, per_band, size)
    maps, extra = make_maps(rng, truth, regime)
    coords = decode_all(maps, regime)
    map_sigma = regime["map_sigma"] or regime["sigma"]
    noise = effective_noise(regime)
    bounds = {kind: position_bound(truth, size, map_sigma, 1.0, noise, unknown)
              for kind, unknown in BOUND_KINDS.items()}
    bands = band_of(border_distance(truth, size))
    result: dict[str, Any] = {"regime": {k: (list(v) if isinstance(v, tuple) else v) for k, v in regime.items()},
                              "bound_noise": noise, "methods": {}}
    for method in METHODS:
        err = coords[method] - truth
        per = {name: band_figures(err, truth, bounds, size, bands == b) for b, name in enumerate(BAND_NAMES)}
        per["all"] = band_figures(err, truth, bounds, size, np.ones(len(truth), bool))
        if "direction" in extra:
            pull = (err * extra["direction"]).sum(axis=1)
            for b, name in enumerate(BAND_NAMES):
                per[name]["bias_towards_second_px"] = float(pull[bands == b].mean())
            per["all"]["bias_towards_second_px"] = float(pull.mean())
        if regime["group"] == "main" and regime["noise"] == 0.03 and regime["sigma"] == 2.0:
            interior = bands == len(BANDS) - 1
            phase = truth[interior, 0] % 1.0
            which = np.minimum((phase * 10).astype(int), 9)
            ex = err[interior, 0]
            per["phase_rms_x"] = [_rms(ex[which == i]) for i in range(10)]
        result["methods"][method] = per
    result["calibration"] = {}
    for method in ("dark-reference", "dark"):
        cov = coords[f"cov {method}"]
        err = coords[method] - truth
        result["calibration"][method] = {
            name: calibration(err[bands == b], cov[bands == b]) for b, name in enumerate(BAND_NAMES)
        } | {"all": calibration(err, cov)}
    return result


# --------------------------------------------------------------------------- the report


def _f(v: float, digits: int = 2) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def main_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The main table: per main regime and method, the ratio RMS / RMS bound (known) per band."""
    header = ["regime", "method", *BAND_NAMES, "all"]
    rows = []
    for name, r in results.items():
        if r["regime"]["group"] != "main":
            continue
        for method in METHODS:
            per = r["methods"][method]
            rows.append([name, method, *(_f(per[b]["ratio known"]) for b in (*BAND_NAMES, "all"))])
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: dict[str, Any], config: dict[str, Any], plots: list[str]) -> str:
    header, rows = main_table(results)
    parts = [
        "# Codec accuracy: every decode against the Cramér-Rao bound",
        "",
        f"`darkpose bench codec-accuracy`, seed {config['seed']}, {config['per_band']} keypoints per border band "
        f"and regime, {config['seconds']:.0f} s. Method and derivation: docs/codec_accuracy.md.",
        "",
        "Ratio = RMS error per axis over the RMS of the per-keypoint bound (sigma and amplitude known); "
        "1.00 is the bound. Bands: distance of the true position to the nearest edge, px.",
        "",
        "## Main table: ratio to the bound (sigma, A known)",
        "",
        _markdown(header, rows),
        "",
        "## Every regime",
        "",
        "Per band: n, RMS error x / y px, RMS bound px (known), ratios x, y, normal to the nearest edge, "
        "and the ratio against the bounds with A unknown and with A and sigma unknown (a decoder is told "
        "neither). Second-peak regimes also give the mean error towards the second peak (bias, px) "
        "and the RMS of the 2-D error (px).",
    ]
    for name, r in results.items():
        reg = r["regime"]
        parts += ["", f"### {name}", "",
                  f"{reg['group']}: target sigma {reg['sigma']:g}, map sigma {reg['map_sigma'] or reg['sigma']:g}, "
                  f"kernel {reg['kernel']}, {reg['size'][0]}x{reg['size'][1]}, noise {reg['noise']:g} "
                  f"(bound for white noise {r['bound_noise']:.4g}).", ""]
        head = ["method", "band", "n", "rms x", "rms y", "bound", "ratio x", "ratio y", "normal",
                "ratio", "A unkn.", "A, sigma unkn."]
        second = reg["model"] == "second"
        if second:
            head += ["bias to 2nd", "rms px"]
        rows = []
        for method in METHODS:
            for band in (*BAND_NAMES, "all"):
                f = r["methods"][method][band]
                row = [method, band, f["n"], _f(f["rms_x"], 3), _f(f["rms_y"], 3), _f(f["bound_rms known"], 3),
                       _f(f["ratio_x known"]), _f(f["ratio_y known"]), _f(f["ratio_normal known"]),
                       _f(f["ratio known"]), _f(f["ratio A unknown"]), _f(f["ratio A, sigma unknown"])]
                if second:
                    row += [_f(f["bias_towards_second_px"], 3), _f(f["rms"], 3)]
                rows.append(row)
        parts.append(_markdown(head, rows))
    parts += ["", "## Calibration of decode(..., return_covariance=True)", "",
              "Fraction of errors inside the 1- and 2-sigma ellipses of the returned covariance "
              "(calibrated: 39.3% and 86.5%) and mean d^2 / 2 (calibrated: 1; above 1: the covariance is "
              "too small), over all bands and in the interior (>= 6 px); 'excluded': keypoints whose "
              "covariance is unknown (not finite).", ""]
    rows = []
    for name, r in results.items():
        for method, cal in r["calibration"].items():
            row = [name, method]
            for band in ("all", ">=6"):
                c = cal[band]
                row += [f"{100 * c['inside_1sigma']:.1f}%", f"{100 * c['inside_2sigma']:.1f}%",
                        _f(c["mean_d2_over_2"])]
            rows.append(row + [cal["all"]["excluded"]])
    parts.append(_markdown(["regime", "method", "1-sigma", "2-sigma", "d^2/2", "interior 1-sigma",
                            "interior 2-sigma", "interior d^2/2", "excluded"], rows))
    parts += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(parts)


def plots(results: dict[str, Any], out: Path) -> list[str]:
    """The PNGs (matplotlib's Agg canvas, no process-wide backend); returns their names."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = []

    def save(fig, name):
        write_new(out / name, lambda f: fig.savefig(f, format="png", dpi=90), force=True, what="plot")
        names.append(name)

    shown = ("argmax", "shift", "dark-reference", "dark", "udp", "soft-argmax-window", "fit (sigma, A known)")
    mains = {(r["regime"]["sigma"], r["regime"]["noise"]): r for r in results.values()
             if r["regime"]["group"] == "main"}
    # error vs distance to the border, with the bound
    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, sigma in zip(fig.subplots(1, 2), (2.0, 1.0), strict=True):
        r = mains[(sigma, 0.03)]
        x = np.arange(len(BAND_NAMES))
        for method in shown:
            ax.plot(x, [r["methods"][method][b]["rms"] for b in BAND_NAMES], marker="o", label=method)
        for kind, style in (("known", "k--"), ("A, sigma unknown", "k:")):
            ax.plot(x, [r["methods"]["dark"][b][f"bound_rms {kind}"] for b in BAND_NAMES], style,
                    label=f"bound ({kind})")
        ax.set(xticks=x, xticklabels=BAND_NAMES, yscale="log", xlabel="distance to nearest edge (px)",
               ylabel="RMS error per axis (px)", title=f"white noise 0.03, sigma {sigma:g}")
    ax.legend(fontsize=7)
    save(fig, "error_vs_border.png")
    # error vs noise, interior and edge band
    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, band in zip(fig.subplots(1, 2), (">=6", "[0,1)"), strict=True):
        for method in shown:
            ax.plot(NOISE_LEVELS, [mains[(2.0, s)]["methods"][method][band]["rms"] for s in NOISE_LEVELS],
                    marker="o", label=method)
        ax.plot(NOISE_LEVELS, [mains[(2.0, s)]["methods"]["dark"][band]["bound_rms known"] for s in NOISE_LEVELS],
                "k--", label="bound (known)")
        ax.set(xscale="log", yscale="log", xlabel="white noise std", ylabel="RMS error per axis (px)",
               title=f"sigma 2, band {band} px")
    ax.legend(fontsize=7)
    save(fig, "error_vs_noise.png")
    # error vs sub-pixel phase (interior)
    fig = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    r = mains[(2.0, 0.03)]
    centres = (np.arange(10) + 0.5) / 10
    for method in shown:
        ax.plot(centres, r["methods"][method]["phase_rms_x"], marker="o", label=method)
    ax.axhline(r["methods"]["dark"][">=6"]["bound_rms known"], color="k", ls="--", label="bound (known)")
    ax.set(yscale="log", xlabel="sub-pixel phase of x", ylabel="RMS error in x (px)",
           title="sigma 2, noise 0.03, >= 6 px from the edge")
    ax.legend(fontsize=7)
    save(fig, "error_vs_phase.png")
    # calibration
    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    labels = list(results)
    x = np.arange(len(labels))
    for ax, key, target in zip(fig.subplots(1, 2), ("inside_1sigma", "inside_2sigma"),
                               (1 - math.exp(-0.5), 1 - math.exp(-2)), strict=True):
        for shift, method in ((-0.2, "dark-reference"), (0.2, "dark")):
            ax.bar(x + shift, [results[n]["calibration"][method]["all"][key] for n in labels], width=0.4,
                   label=method)
        ax.axhline(target, color="k", ls="--", label=f"calibrated {100 * target:.1f}%")
        ax.set(xticks=x, ylabel=f"fraction {key.replace('_', ' ')}", ylim=(0, 1))
        ax.set_xticklabels(labels, rotation=70, fontsize=6, ha="right")
    ax.legend(fontsize=7)
    save(fig, "calibration.png")
    return names


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not args.force)):
        what = "is not a folder" if not out.is_dir() else "is not empty; pass --force to write into it"
        print(f"darkpose bench codec-accuracy: --out {out} {what}", file=sys.stderr)
        return 2
    per_band = 200 if args.quick else args.per_band
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    results = {}
    for regime in regimes():
        results[regime["name"]] = measure(regime, per_band, rng)
        print(f"  {regime['name']}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    config = {"seed": args.seed, "per_band": per_band, "quick": args.quick, "seconds": seconds}
    header, rows = main_table(results)
    print("ratio RMS error / RMS Cramér-Rao bound (sigma and amplitude known), by distance to the edge (px)")
    print(table(rows, header))
    out.mkdir(parents=True, exist_ok=True)
    names = plots(results, out)
    payload = {"config": config, "machine": machine(), "bands": list(BAND_NAMES), "methods": list(METHODS),
               "softmax_beta": SOFTMAX_BETA, "results": results}
    text = json.dumps(payload, indent=1, allow_nan=True) + "\n"
    write_new(out / "figures.json", lambda f: f.write(text.encode()), force=True, what="figures")
    md = report(results, config, names)
    write_new(out / "report.md", lambda f: f.write(md.encode()), force=True, what="report")
    print(f"wrote {out}/report.md, figures.json and {len(names)} plots ({seconds:.0f} s)", file=sys.stderr)
    return 0
