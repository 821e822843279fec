"""Tail recovery (a study, issue 12 section 3): can "dark" safely reach peaks beyond its 1.5 px?

``darkpose.codec.decode(..., "dark")`` clips its offset from the integer maximum to
``DARK_MAX_STEP`` = 1.5 px per axis, so a peak further outside the frame, of which the map
holds only the tail, lands at the clip. :func:`decode_with_tails` is "dark" followed, for the
maps whose integer maximum lies on the frame's edge or whose decode sits at the clip, by the
border fit of :mod:`darkpose.codec._gaussfit` (position, amplitude and spread free) started
from dark's result with the larger bound ``reach``, accepted only behind guards
(:data:`GUARDS`, chosen from the measurements of :func:`measure_noisy`).

``python -m darkpose.bench.tails --out DIR`` measures it: the COCO oracle's AP with a
"unbiased+dark+tails" row, and the recovery on noisy synthetic maps (how often it fires, the
error with and without it, the false recoveries on maps without a peak at the edge). It writes
``DIR/tails.json`` and ``DIR/tails.md``. docs/codec_accuracy.md, "Tail recovery (study)".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from darkpose._files import write_new
from darkpose.bench._common import non_negative_int, positive_int
from darkpose.bench.codec_accuracy import _rms, border_distance
from darkpose.codec import DARK_MAX_STEP, _gaussfit, decode, encode, kernel_variance, modulated_spread
from darkpose.codec._backend import NUMPY
from darkpose.codec.decoding import _centred_windows
from darkpose.codec.synthetic import noisy_heatmaps

GUARDS = {
    "max_std": 0.5,  # px: the fit's estimated std (covariance, larger axis) at most this
    "spread_factor": 2.0,  # the fitted sigma^2 within this factor of the start's, either way
    "max_last_step": 0.05,  # px: the fit's last Gauss-Newton step at most this (converged)
    "min_snr": 5.0,  # the fitted peak's largest value inside the frame over the residual noise std
    "reach_margin": 1e-3,  # px: the fit ends at least this far within the reach (not stopped by the bound)
}
"""The acceptance guards of a tail fit (docs/codec_accuracy.md, "Tail recovery (study)")."""

AUTO_REACH_CAP = 10.0  # px: the largest reach=None gives (3 sigma at sigma 3.3)
_CLIP_TOLERANCE = 1e-4  # px: "dark" sits at its clip when |offset| >= DARK_MAX_STEP - this


def decode_with_tails(heatmaps: np.ndarray, blur_kernel: int = 11, reach: float | None = 6.0,
                      guards: dict | None = None, return_details: bool = False):
    """"dark", then a guarded Gaussian fit of reach ``reach`` px for edge maxima.

    Parameters
    ----------
    heatmaps : ndarray (N, K, H, W), floating point
    blur_kernel : int
        The modulation kernel of "dark" (odd, e.g. 3 or 11); the fit window's half-width is
        max(3, blur_kernel // 2), the half-width of "dark"'s own border fit.
    reach : float or None
        The bound (px per axis) on the fitted offset from the integer maximum, > 0 (3 sigma,
        say); "dark"'s is ``DARK_MAX_STEP`` = 1.5. None: 3 sqrt(s) per map, at most
        :data:`AUTO_REACH_CAP`, with s the fit's start spread, the decoder's own estimate of
        sigma^2 (what a decode that is not told sigma could use).
    guards : dict, optional
        Overrides of :data:`GUARDS`.
    return_details : bool
        Also return the per-map statistics of the fits (for the study).

    Returns
    -------
    coords (N, K, 2) float32, scores (N, K) float32: as ``decode(..., "dark")``, with the
    accepted fits' positions in place of dark's; with ``return_details`` a dict of (N, K)
    arrays: "candidate", "accepted" (bool), and for candidates "std", "spread_ratio",
    "last_step", "snr" (NaN elsewhere).
    """
    if not isinstance(heatmaps, np.ndarray) or not np.issubdtype(heatmaps.dtype, np.floating) or heatmaps.ndim != 4:
        what = f"{type(heatmaps).__name__} {getattr(heatmaps, 'dtype', '')} {getattr(heatmaps, 'shape', '')}"
        raise ValueError(f"heatmaps: expected a floating-point NumPy array (N, K, H, W), got {what}")
    if reach is not None and (isinstance(reach, bool) or not isinstance(reach, (int, float))
                              or not 0 < reach < math.inf):
        raise ValueError(f"reach: expected a finite number of pixels > 0, or None, got {reach!r}")
    limits = dict(GUARDS)
    for name, value in (guards or {}).items():
        if name not in GUARDS:
            raise ValueError(f"guards: unknown guard {name!r}; expected some of {sorted(GUARDS)}")
        limits[name] = float(value)
    coords, scores = decode(heatmaps, "dark", blur_kernel)
    n, k, height, width = heatmaps.shape
    maps = heatmaps.reshape(n * k, height, width)
    ix, iy = _integer_maxima(maps)
    offset = coords.reshape(-1, 2).astype(np.float64) - np.stack((ix, iy), -1)
    on_edge = (ix == 0) | (ix == width - 1) | (iy == 0) | (iy == height - 1)
    at_clip = (np.abs(offset) >= DARK_MAX_STEP - _CLIP_TOLERANCE).any(-1)
    candidate = (scores.reshape(-1) > 0) & (on_edge | at_clip)
    i = np.flatnonzero(candidate)
    stats = {name: np.full(n * k, np.nan) for name in ("std", "spread_ratio", "last_step", "snr")}
    accepted = np.zeros(n * k, bool)
    out = coords.reshape(-1, 2).copy()
    if len(i):
        spread = _start_spread(modulated_spread(heatmaps, "dark", blur_kernel).reshape(-1, 2, 2)[i], blur_kernel)
        flat = np.ascontiguousarray(maps.reshape(len(maps), -1))
        window, inside = _centred_windows(NUMPY, flat, i, ix[i], iy[i], height, width, max(3, blur_kernel // 2),
                                          np.float64)
        with np.errstate(all="ignore"):  # undefined steps are the fit's to reject (it keeps the start)
            bound = np.minimum(3 * np.sqrt(spread), AUTO_REACH_CAP) if reach is None else reach
            u, fitted = tail_fit(window, inside, offset[i], spread, bound)
        within = (np.abs(u) < np.reshape(bound, (-1, 1)) - limits["reach_margin"]).all(-1)
        for name, value in fitted.items():
            stats[name][i] = value
        ok = ((fitted["std"] <= limits["max_std"]) & (fitted["last_step"] <= limits["max_last_step"])
              & (np.abs(np.log(fitted["spread_ratio"])) <= math.log(limits["spread_factor"]))
              & (fitted["snr"] >= limits["min_snr"]) & within)
        accepted[i] = ok
        out[i[ok]] = (u[ok] + np.stack((ix[i[ok]], iy[i[ok]]), -1)).astype(np.float32)
    coords = out.reshape(n, k, 2)
    if not return_details:
        return coords, scores
    details = {"candidate": candidate, "accepted": accepted, **stats}
    return coords, scores, {name: v.reshape(n, k) for name, v in details.items()}


def _integer_maxima(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) (M,) of each map's integer maximum, non-finite values read as 0 (as decode)."""
    index = np.nan_to_num(maps.reshape(len(maps), -1), nan=0.0, posinf=0.0, neginf=0.0).argmax(-1)
    return index % maps.shape[2], index // maps.shape[2]


def _start_spread(spread: np.ndarray, blur_kernel: int) -> np.ndarray:
    """sigma^2 (B,) of the raw map from the modulated map's spread -H^-1 (B, 2, 2) at the
    maximum: half its trace minus the kernel's variance; the kernel's variance (at least
    1 px^2) where that is not finite or below 0.25 px^2."""
    kvar = kernel_variance(blur_kernel)
    s = 0.5 * (spread[:, 0, 0] + spread[:, 1, 1]).astype(np.float64) - kvar
    return np.where(np.isfinite(s) & (s >= 0.25), s, max(kvar, 1.0))


def tail_fit(window: np.ndarray, inside: np.ndarray, offset: np.ndarray, spread: np.ndarray,
             reach: float | np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The Gaussian fit of reach ``reach`` (px, or (B,)) from ``offset`` (B, 2) and ``spread`` (B,) on the
    windows of ``decoding._centred_windows``, and what the guards read.

    Enough Gauss-Newton steps to walk from the 1.5 px clip to the reach (each moves at most
    1 px per axis), plus 3. Returns the fitted offsets (B, 2) and a dict of (B,) arrays:
    "std" (px, the larger axis of :func:`_gaussfit.covariance` at the fit), "spread_ratio"
    (fitted sigma^2 over the start's), "last_step" (px, the largest axis of the last step),
    "snr" (the fitted Gaussian's largest value on the inside pixels over the std of the
    residual there; inf on a noise-free map).
    """
    steps = 3 + math.ceil(max(float(np.max(reach)) - DARK_MAX_STEP, 0.0))
    u0 = offset.T.astype(np.float64)
    before, _ = _gaussfit.fit(np, window, inside, u0, spread, iterations=steps, max_offset=reach)
    u, s = _gaussfit.fit(np, window, inside, u0, spread, iterations=steps + 1, max_offset=reach)
    cov = _gaussfit.covariance(np, window, inside, u, s)
    std = np.sqrt(np.maximum(cov[:, 0, 0], cov[:, 1, 1]))
    # the amplitude and residual at the fit, over the inside pixels (as _gaussfit.covariance)
    t = np.arange(window.shape[-1]) - window.shape[-1] // 2
    e = np.exp(-((t - u[..., None]) ** 2) / (2 * s[:, None])) * inside  # (2, B, S): columns, rows
    model = e[1][:, :, None] * e[0][:, None, :]
    mask = inside[1][:, :, None] * inside[0][:, None, :]
    amplitude = (window * model).sum((1, 2)) / np.maximum((model * model).sum((1, 2)), 1e-300)
    residual = (window - amplitude[:, None, None] * model) * mask
    dof = np.maximum(mask.sum((1, 2)) - 4, 1)
    noise = np.sqrt((residual * residual).sum((1, 2)) / dof)
    peak = amplitude * model.reshape(len(s), -1).max(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(noise > 0, peak / noise, np.where(peak > 0, np.inf, 0.0))
    return u.T, {"std": std, "spread_ratio": s / spread, "last_step": np.abs(u - before).max(0), "snr": snr}


# --------------------------------------------------------------------------- noisy maps

SIZE = (64, 48)
SIGMAS = ((1.0, 3), (2.0, 11))  # (sigma, blur kernel)
NOISE_MODELS = (("white 0.01", 0.01), ("white 0.03", 0.03), ("white 0.1", 0.1), ("network", 0.03))
"""White noise of that std on amplitude-1 targets, or ``noisy_heatmaps`` (heights 0.4-1, white
noise 0.03, clutter, distractor peaks at rate 0.1)."""
INSIDE_BANDS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0))  # px inside the frame, to the nearest edge
OUTSIDE_BANDS = ((1.5, 3.0), (3.0, 4.5), (4.5, 6.0))  # px outside the frame, beyond one edge


def reach_of(sigma: float) -> float:
    """The study's reach: 3 sigma (the encoder's target is empty beyond about 3 sigma + 0.5)."""
    return 3.0 * sigma


def inside_positions(rng: np.random.Generator, n: int, band: tuple[float, float],
                     size: tuple[int, int] = SIZE) -> np.ndarray:
    """n positions (n, 2) inside the frame whose distance to the nearest edge is in ``band``."""
    width, height = size
    picked, count = [], 0
    while count < n:
        xy = rng.uniform(0, 1, (8 * n, 2)) * [width - 1, height - 1]
        d = border_distance(xy, size)
        picked.append(xy[(d >= band[0]) & (d < band[1])])
        count += len(picked[-1])
    return np.concatenate(picked)[:n]


def outside_positions(rng: np.random.Generator, n: int, band: tuple[float, float],
                      size: tuple[int, int] = SIZE) -> np.ndarray:
    """n positions (n, 2) at a distance in ``band`` beyond one edge (drawn at random), the
    other coordinate uniform at least 4 px from the frame's corners."""
    width, height = size
    edge = rng.integers(0, 4, n)  # left, right, top, bottom
    out = rng.uniform(*band, n)
    along_x, along_y = rng.uniform(4, width - 5, n), rng.uniform(4, height - 5, n)
    x = np.select([edge == 0, edge == 1], [-out, width - 1 + out], along_x)
    y = np.select([edge == 2, edge == 3], [-out, height - 1 + out], along_y)
    return np.stack((x, y), -1)


def noisy_maps(rng: np.random.Generator, truth: np.ndarray | None, n: int, sigma: float, model: str, noise: float,
               size: tuple[int, int] = SIZE) -> np.ndarray:
    """Maps (n, 1, H, W) float32 of the noise model with a peak at each ``truth`` (n, 2)
    position, or none (``truth=None``: pure noise, or for "network" its clutter and distractors)."""
    width, height = size
    if model == "network":
        kp = np.full((n, 1, 2), -1e3) if truth is None else truth[:, None]  # far outside: an empty target
        return noisy_heatmaps(rng, kp, size, sigma, noise=noise)
    maps = np.zeros((n, 1, height, width), np.float32)
    if truth is not None:
        maps, _ = encode(truth[:, None], np.ones((n, 1)), size, sigma)
    return (maps + rng.normal(0.0, noise, maps.shape)).astype(np.float32)


def measure_case(maps: np.ndarray, truth: np.ndarray | None, sigma: float, kernel: int,
                 guards: dict | None = None, auto_reach: bool = False) -> dict[str, float]:
    """Figures of the recovery on maps (M, 1, H, W) with peaks at ``truth`` (M, 2) or none.

    "fires": the fraction of maps the recovery tries (candidates), "accepted": of all maps.
    "move_median"/"move_max": |tails - dark| over the accepted maps (px). With a truth:
    "rms_dark"/"rms_tails", the RMS of |decoded - truth| (px), and "worse_0.1": the fraction
    of maps the recovery moves more than 0.1 px further from the truth. For peaks outside the
    frame these are over the maps "found" (|dark - truth| <= 3 sigma + 1 px: the maximum lies
    in the peak's tail, not on noise elsewhere), and "found" is their fraction.
    """
    dark, _ = decode(maps, "dark", kernel)
    reach = None if auto_reach else reach_of(sigma)
    tails, _, d = decode_with_tails(maps, kernel, reach, guards, return_details=True)
    dark, tails, accepted = dark[:, 0].astype(np.float64), tails[:, 0].astype(np.float64), d["accepted"][:, 0]
    move = np.linalg.norm(tails - dark, axis=-1)[accepted]
    out = {"maps": len(maps), "fires": float(d["candidate"].mean()), "accepted": float(accepted.mean()),
           "move_median": float(np.median(move)) if len(move) else 0.0, "move_max": float(move.max(initial=0.0))}
    if truth is not None:
        e_dark, e_tails = np.linalg.norm(dark - truth, axis=-1), np.linalg.norm(tails - truth, axis=-1)
        width, height = maps.shape[3], maps.shape[2]
        outside = (truth < 0).any(-1) | (truth[:, 0] > width - 1) | (truth[:, 1] > height - 1)
        found = ~outside | (e_dark <= 3 * sigma + 1)
        out.update(found=float(found.mean()), rms_dark=_rms(e_dark[found]), rms_tails=_rms(e_tails[found]),
                   worse_01=float((e_tails > e_dark + 0.1)[found].mean()) if found.any() else float("nan"))
    return out


def measure_noisy(per_case: int = 2000, seed: int = 0, guards: dict | None = None,
                  auto_reach: bool = False) -> dict[str, dict]:
    """:func:`measure_case` for every (sigma, kernel) of :data:`SIGMAS`, noise model of
    :data:`NOISE_MODELS` and case: peaks inside the frame by band of distance to the edge
    (:data:`INSIDE_BANDS`), outside it (:data:`OUTSIDE_BANDS`), far inside (>= 6 px), none.
    ``auto_reach``: reach None (the decoder's own 3 sigma) instead of the maps' 3 sigma.
    Returns {"sigma S, MODEL": {case: figures}}; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    results: dict[str, dict] = {}
    for sigma, kernel in SIGMAS:
        for name, noise in NOISE_MODELS:
            model = "network" if name == "network" else "white"
            cases = [(f"inside [{a:g},{b:g})", inside_positions(rng, per_case, (a, b))) for a, b in INSIDE_BANDS]
            cases += [(f"outside [{a:g},{b:g})", outside_positions(rng, per_case, (a, b))) for a, b in OUTSIDE_BANDS]
            cases += [("far inside (>=6)", inside_positions(rng, per_case, (6.0, math.inf))), ("no peak", None)]
            row = results[f"sigma {sigma:g}, {name}"] = {}
            for case, truth in cases:
                maps = noisy_maps(rng, truth, per_case, sigma, model, noise)
                row[case] = measure_case(maps, truth, sigma, kernel, guards, auto_reach)
    return results


# --------------------------------------------------------------------------- the COCO oracle


def measure_oracle(ann: str | Path, images: str | Path, sizes=None, guards: dict | None = None) -> dict[str, dict]:
    """The oracle's rows "unbiased+dark", "ceiling", "ceiling+1.5px", "ceiling+tails"
    (:func:`darkpose.bench.oracle.oracle_table`) and "unbiased+dark+tails": the same unbiased
    targets of the plain crops decoded by :func:`decode_with_tails` with reach 3 sigma and the
    config's blur kernel, recovered and scored as the oracle does. "unbiased+dark (direct)"
    decodes them with "dark" the same way: equal to the oracle's row, a check of the plumbing.
    Also {"recovered": accepted fits among the labelled keypoints, "candidates": tried}."""
    from darkpose.bench import oracle
    from darkpose.bench._common import parse_size
    from darkpose.config import blur_kernel
    from darkpose.evaluation import load_coco_gt

    gt = load_coco_gt(ann)
    out: dict[str, dict] = {}
    # the bound of any decode of these targets: exact wherever the target is not empty, and
    # (0, 0), where every decoder puts it, where it is ("ceiling+tails" clips those to the frame)
    for text in sizes or oracle.SIZES:
        table, _ = oracle.oracle_table(ann, images, [text], codecs=(("unbiased", "dark"),))
        row = dict(next(iter(table.values())))
        data = oracle.oracle_heatmaps(ann, images, parse_size(text), ("unbiased",))
        targets, kernel = data["targets"]["unbiased"], blur_kernel(data["config"])
        direct, _ = decode(targets, "dark", kernel)
        tails, _, d = decode_with_tails(targets, kernel, reach_of(data["sigma"]), guards, return_details=True)
        row["unbiased+dark (direct)"] = oracle._ap_heatmap(direct.astype(np.float64), data, gt)
        row["unbiased+dark+tails"] = oracle._ap_heatmap(tails.astype(np.float64), data, gt)
        auto, _ = decode_with_tails(targets, kernel, None, guards)
        row["unbiased+dark+tails, reach 3 sqrt(s)"] = oracle._ap_heatmap(auto.astype(np.float64), data, gt)
        empty = targets.max(axis=(2, 3)) <= 0
        bound = np.where(empty[..., None], 0.0, data["keypoints_heatmap"])
        row["ceiling+tails, empty at (0,0)"] = oracle._ap_heatmap(bound, data, gt)
        labelled = data["labelled"]
        moved = labelled & d["accepted"] & (np.abs(tails - direct).max(-1) > 1e-3)
        row["candidates"] = int((labelled & d["candidate"]).sum())
        row["recovered"] = int(moved.sum())
        row["sigma"], row["blur_kernel"], row["reach"] = data["sigma"], kernel, reach_of(data["sigma"])
        out[oracle.json_key(parse_size(text))] = row
    return out


# --------------------------------------------------------------------------- the command

ORACLE_ROWS = ("unbiased+dark", "unbiased+dark+tails", "unbiased+dark+tails, reach 3 sqrt(s)", "ceiling+1.5px",
               "ceiling+tails, empty at (0,0)",
               "ceiling+tails")
LOOSE = {"max_std": 1.0}
"""The sensitivity run: the std guard doubled."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for tails.json and tails.md")
    parser.add_argument("--ann", type=Path, help="COCO person_keypoints JSON of the oracle (without it: no oracle)")
    parser.add_argument("--images", type=Path, help="its image folder")
    parser.add_argument("--per-case", type=positive_int, default=2000, help="noisy maps per case (default 2000)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite tails.json / tails.md")


def _markdown_oracle(oracle_rows: dict[str, dict]) -> list[str]:
    keys = list(oracle_rows)
    heads = ["x".join(k.split("x")[::-1]) for k in keys]
    lines = ["| input (HxW) | " + " | ".join(heads) + " |", "|---" * (len(keys) + 1) + "|"]
    lines.append("| sigma, blur kernel, reach | " + " | ".join(
        f"{r['sigma']:g}, {r['blur_kernel']}, {r['reach']:g} px" for r in oracle_rows.values()) + " |")
    for name in ORACLE_ROWS:
        lines.append(f"| {name} | " + " | ".join(f"{r[name]:.4f}" for r in oracle_rows.values()) + " |")
    lines.append("| labelled keypoints tried / moved by the recovery | " + " | ".join(
        f"{r['candidates']} / {r['recovered']}" for r in oracle_rows.values()) + " |")
    return lines


def _markdown_noisy(noisy: dict[str, dict], loose: dict[str, dict]) -> list[str]:
    lines = ["| maps | case | fires | accepted | RMS dark | RMS tails | worse by >0.1 px | RMS tails, std<=1 |"
             " moves (median / max) |", "|---" * 9 + "|"]
    for regime, cases in noisy.items():
        for case, f in cases.items():
            g = loose[regime][case]
            if "rms_dark" in f:
                found = f" ({f['found']:.1%} found)" if f["found"] < 1 else ""
                errors = (f"{f['rms_dark']:.3f}{found} | {f['rms_tails']:.3f} | {f['worse_01']:.1%} | "
                          f"{g['rms_tails']:.3f}")
            else:
                errors = "- | - | - | -"
            lines.append(f"| {regime} | {case} | {f['fires']:.1%} | {f['accepted']:.1%} | {errors} | "
                         f"{f['move_median']:.3f} / {f['move_max']:.3f} |")
    return lines


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    files = (out / "tails.json", out / "tails.md")
    if (out.exists() and not out.is_dir()) or (not args.force and any(f.exists() for f in files)):
        print(f"darkpose bench tails: --out {out}: not a folder, or tails.json / tails.md exist (--force)",
              file=sys.stderr)
        return 2
    if (args.ann is None) != (args.images is None):
        print("darkpose bench tails: --ann and --images go together", file=sys.stderr)
        return 2
    started = time.perf_counter()
    oracle_rows: dict[str, dict] = {}
    try:
        if args.ann is not None:
            oracle_rows = measure_oracle(args.ann, args.images)
    except (FileNotFoundError, ValueError) as e:
        print(f"darkpose bench tails: {e}", file=sys.stderr)
        return 2
    noisy = measure_noisy(args.per_case, args.seed)
    loose = measure_noisy(args.per_case, args.seed, LOOSE)
    payload = {"guards": GUARDS, "loose_guards": {**GUARDS, **LOOSE}, "size": list(SIZE), "per_case": args.per_case,
               "seed": args.seed, "seconds": time.perf_counter() - started, "oracle": oracle_rows,
               "noisy": noisy, "noisy_loose": loose}
    oracle_md = _markdown_oracle(oracle_rows) if oracle_rows else ["(not run: no --ann / --images)"]
    md = ["# Tail recovery (study)", "", "## COCO oracle (AP)", "", *oracle_md, "",
          f"## Noisy maps, {SIZE[0]}x{SIZE[1]}, {args.per_case} per case", "",
          "Errors are RMS of |decoded - truth| in px; outside the frame over the maps found", "",
          *_markdown_noisy(noisy, loose), ""]
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=1) + "\n"
    write_new(files[0], lambda f: f.write(text.encode()), force=args.force, what="figures")
    write_new(files[1], lambda f: f.write("\n".join(md).encode()), force=args.force, what="report")
    print("\n".join(md))
    print(f"wrote {files[0]} and {files[1]} ({payload['seconds']:.0f} s)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m darkpose.bench.tails", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
