"""``darkpose bench codec``: encode and decode speed against the argmax floor and a loop.

All figures come from one run on the same heatmaps, so ratios compare like with like:

* the floor: a plain vectorised argmax (``np.argmax`` over each flattened map);
* the baseline: a per-keypoint loop of the reference DARK decode, written from the
  description (blur the whole map with OpenCV, zero padding; log; Taylor step);
* every decode method on NumPy arrays and on torch CPU tensors;
* encode, both methods, against a per-keypoint loop.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from darkpose.bench._common import (
    json_target_refused,
    machine,
    non_negative_float,
    non_negative_int,
    odd_int,
    positive_float,
    positive_int,
    table,
    time_call,
    time_interleaved,
    write_json,
)
from darkpose.codec import DECODE_METHODS, ENCODE_METHODS, decode, encode
from darkpose.codec.synthetic import keypoint_positions, noisy_heatmaps

TARGETS = {"dark_vs_window_bound": 1.7, "new_encode_vs_allocation_bound": 1.5}
"""The targets, each against a bound measured in the same run (decided with the codec issue:
no compiled kernel; one algorithm over NumPy, torch and ONNX): "dark" on NumPy arrays within
1.7x the "argmax + window read" bound (the least any array-code DARK decode does), and
encode into a new array within 1.5x the "allocate and write once" bound (the least any
new-array encode pays: the faster of NumPy's one-thread fill and torch's all-thread fill of a new
array). The ratios to the argmax floor and to the loop are printed as
information."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=positive_int, default=256, help="instances (default 256)")
    parser.add_argument("--k", type=positive_int, default=17, help="keypoints per instance (default 17)")
    parser.add_argument(
        "--size", type=positive_int, nargs=2, default=(48, 64), metavar=("W", "H"), help="heatmap size"
    )
    parser.add_argument("--sigma", type=positive_float, default=2.0, help="Gaussian sigma of the targets (default 2)")
    parser.add_argument("--kernel", type=odd_int, default=11, help="modulation kernel, odd (default 11)")
    parser.add_argument("--noise", type=non_negative_float, default=0.03, help="noise level (default 0.03)")
    parser.add_argument(
        "--spread", choices=("person", "uniform"), default="person",
        help="keypoint positions: like COCO people in a crop (default), or uniform over the frame",
    )  # fmt: skip
    parser.add_argument("--repeats", type=positive_int, default=20, help="timed rounds of the fast code (default 20)")
    parser.add_argument("--loop-repeats", type=positive_int, default=3, help="timed runs of each loop (default 3)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--force", action="store_true", help="overwrite the --json file if it exists")


def decode_loop(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """The baseline: the reference DARK decode one keypoint at a time, as described."""
    n, k, height, width = heatmaps.shape
    coords = np.zeros((n, k, 2), dtype=np.float32)
    for i in range(n):
        for j in range(k):
            h = heatmaps[i, j]
            m = int(np.argmax(h))
            x, y = m % width, m // width
            if h[y, x] <= 0:
                continue
            blurred = cv2.GaussianBlur(h, (kernel, kernel), 0, borderType=cv2.BORDER_CONSTANT)
            blurred *= h.max() / blurred.max()
            p = np.log(np.maximum(blurred, 1e-10))
            mu = np.array([x, y], dtype=np.float64)
            if 1 < x < width - 2 and 1 < y < height - 2:
                g = np.array([p[y, x + 1] - p[y, x - 1], p[y + 1, x] - p[y - 1, x]]) / 2
                dxx = (p[y, x + 2] - 2 * p[y, x] + p[y, x - 2]) / 4
                dyy = (p[y + 2, x] - 2 * p[y, x] + p[y - 2, x]) / 4
                dxy = (p[y + 1, x + 1] - p[y - 1, x + 1] - p[y + 1, x - 1] + p[y - 1, x - 1]) / 4
                hessian = np.array([[dxx, dxy], [dxy, dyy]])
                if np.linalg.det(hessian) != 0:
                    mu -= np.linalg.solve(hessian, g)
            coords[i, j] = mu
    return coords


def argmax_and_windows(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """What any DARK decode made of array operations must do at least: the argmax of each map,
    then read the (k + 4) x (k + 4) window around it (the blur at the Taylor step's 13 taps
    needs all of it), shifted inside the frame. No arithmetic: a lower bound for ``decode``,
    measured in the same run. Returns (N * K, side, side) copies of the windows, where side
    is k + 4, or the frame's smaller side if that is less.
    """
    n, k, height, width = heatmaps.shape
    maps = heatmaps.reshape(n * k, height, width)
    index = maps.reshape(n * k, height * width).argmax(axis=1)
    side = min(kernel + 4, height, width)
    top = np.clip(index // width - side // 2, 0, height - side)
    left = np.clip(index % width - side // 2, 0, width - side)
    # each window as ``side`` row segments of the flat maps, picked by torch's index_select
    # (public torch; 1.3x faster here than NumPy fancy indexing of a sliding-window view)
    first = (np.arange(n * k) * (height * width) + top * width + left)[:, None]
    starts = torch.from_numpy((first + np.arange(side) * width).reshape(-1))
    flat = torch.from_numpy(maps.reshape(-1))
    segments = flat.as_strided((flat.numel() - side + 1, side), (1, 1))
    return segments.index_select(0, starts).numpy().reshape(n * k, side, side)


def encode_loop(
    keypoints: np.ndarray, size: tuple[int, int], sigma: float, method: str, out: np.ndarray | None = None
) -> np.ndarray:
    """The baseline encode: one Gaussian at a time (whole grid, or HRNet's 3-sigma patch)."""
    n, k = keypoints.shape[:2]
    width, height = size
    if out is None:
        maps = np.zeros((n, k, height, width), dtype=np.float32)
    else:
        maps = out
        maps.fill(0.0)
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)[:, None]
    reach = int(3 * sigma)
    for i in range(n):
        for j in range(k):
            mx, my = keypoints[i, j]
            if method == "unbiased":
                maps[i, j] = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * sigma**2))
                continue
            cx, cy = int(mx + 0.5), int(my + 0.5)
            x0, x1 = max(cx - reach, 0), min(cx + reach + 1, width)
            y0, y1 = max(cy - reach, 0), min(cy + reach + 1, height)
            if x0 < x1 and y0 < y1:
                px, py = xs[x0:x1] - cx, ys[y0:y1] - cy
                maps[i, j, y0:y1, x0:x1] = np.exp(-(px**2 + py**2) / (2 * sigma**2))
    return maps


def run(args: argparse.Namespace) -> int:
    if json_target_refused("bench codec", args.json, args.force):
        return 2
    size = tuple(args.size)
    rng = np.random.default_rng(args.seed)
    truth = keypoint_positions(rng, args.n, args.k, size, spread=args.spread)
    maps = noisy_heatmaps(rng, truth, size, args.sigma, noise=args.noise)
    tensor = torch.from_numpy(maps)
    count = args.n * args.k
    info = machine()
    print(
        f"heatmaps: N={args.n} K={args.k} {size[0]}x{size[1]} float32, sigma {args.sigma}, "
        f"noise {args.noise}, keypoints spread '{args.spread}'; blur kernel {args.kernel}\n"
        f"machine: {info['cpu_count']} cores, torch {info['torch']} on {info['torch_threads']} threads"
    )

    flat = maps.reshape(count, -1)
    results: dict[str, dict] = {}

    def record(name: str, seconds: float, coords: np.ndarray | None = None) -> None:
        results[name] = {"median_s": seconds, "keypoints_per_s": count / seconds}
        if coords is not None:
            results[name]["mean_error_px"] = _error(coords, truth)

    print(f"timing the per-keypoint loop ({count} keypoints, {args.loop_repeats} runs) ...", flush=True)
    loop = time_call(lambda: decode_loop(maps, args.kernel), args.loop_repeats, warmup=0)["median_s"]
    fast = {
        "floor: np.argmax (numpy)": lambda: flat.argmax(axis=1),
        "torch.argmax (torch)": lambda: tensor.reshape(count, -1).argmax(dim=1),
        "argmax + window read (numpy)": lambda: argmax_and_windows(maps, args.kernel),
    }
    for method in DECODE_METHODS:
        for kind, data in (("numpy", maps), ("torch", tensor)):
            fast[f"decode {method} ({kind})"] = lambda d=data, m=method: decode(d, m, args.kernel)
    print(f"timing the floor and the decode methods ({args.repeats} interleaved rounds) ...", flush=True)
    seconds = time_interleaved(fast, args.repeats)
    record("floor: np.argmax (numpy)", seconds["floor: np.argmax (numpy)"])
    record("torch.argmax (torch)", seconds["torch.argmax (torch)"])
    record("argmax + window read (numpy)", seconds["argmax + window read (numpy)"])
    record("baseline: per-keypoint loop (numpy)", loop, decode_loop(maps, args.kernel))
    for method in DECODE_METHODS:
        for kind, data in (("numpy", maps), ("torch", tensor)):
            name = f"decode {method} ({kind})"
            record(name, seconds[name], np.asarray(decode(data, method, args.kernel)[0]))

    floor = results["floor: np.argmax (numpy)"]["median_s"]
    rows = []
    for name, r in results.items():
        label, kind = name.rsplit(" (", 1)
        rows.append(
            [label, kind.rstrip(")"), f"{r['median_s'] * 1e3:.2f}", _rate(r["keypoints_per_s"]),
             f"{r['median_s'] / floor:.2f}", f"{loop / r['median_s']:.0f}",
             f"{r['mean_error_px']:.4f}" if "mean_error_px" in r else ""]
        )  # fmt: skip
    print()
    print(table(rows, ["decode", "input", "ms", "keypoints/s", "x floor", "x faster than loop", "mean error px"]))

    visible = np.ones((args.n, args.k))
    buffer = np.empty_like(maps)
    # A new array costs page faults whatever fills it: the least any "new array" encode pays is
    # the faster of NumPy's fill (one thread) and torch's (all threads) of a new array. Timed
    # interleaved with the encodes, so that the bound and the encodes see the same machine.
    timed = {
        "allocate and write once: numpy": lambda: np.empty_like(maps).fill(0.0),
        "allocate and write once: torch": lambda: torch.from_numpy(np.empty_like(maps)).fill_(0.0),
    }
    for method in ENCODE_METHODS:
        for output, out in (("new array", None), ("reused buffer", buffer)):
            timed[f"encode {method} ({output})"] = lambda m=method, o=out: encode(truth, visible, size, args.sigma, m,
                                                                                  out=o)
    print(f"timing the encodes and the allocation bound ({args.repeats} interleaved rounds) ...", flush=True)
    seconds = time_interleaved(timed, args.repeats)
    fills = {kind: seconds[f"allocate and write once: {kind}"] for kind in ("numpy", "torch")}
    alloc = min(fills.values())
    results["new array: allocate and write once"] = {"median_s": alloc} | {f"{k}_median_s": v for k, v in fills.items()}
    enc_rows = []
    for method in ENCODE_METHODS:
        slow = {output: time_call(lambda m=method, o=out: encode_loop(truth, size, args.sigma, m, o),
                                  args.loop_repeats)["median_s"]
                for output, out in (("new array", None), ("reused buffer", buffer))}
        for output in ("new array", "reused buffer"):
            fast = seconds[f"encode {method} ({output})"]
            results[f"encode {method} ({output})"] = {"median_s": fast, "loop_median_s": slow[output]}
            enc_rows.append([f"encode {method}", output, f"{fast * 1e3:.2f}", f"{slow[output] * 1e3:.2f}",
                             f"{slow[output] / fast:.1f}"])
    for kind, t in fills.items():
        enc_rows.append([f"allocate and write once ({kind})", "new array", f"{t * 1e3:.2f}", "", ""])
    print()
    print(table(enc_rows, ["encode", "output", "ms", "loop ms", "x faster than loop"]))

    checks, info_lines = _targets(results)
    print()
    for text, ok in checks:
        print(f"[{'met' if ok else 'MISSED'}] {text}")
    for text in info_lines:
        print(f"[info] {text}")
    config = vars(args) | {"size": list(size)}
    payload = {"config": config, "machine": info, "results": results, "targets": dict(checks),
               "information": info_lines}
    write_json(args.json, payload, force=args.force)
    return 0


def _targets(results: dict[str, dict]) -> tuple[list[tuple[str, bool]], list[str]]:
    """The targets (text, met) against the bounds of the same run, and the other ratios as
    information lines."""
    floor = results["floor: np.argmax (numpy)"]["median_s"]
    bound = results["argmax + window read (numpy)"]["median_s"]
    alloc = results["new array: allocate and write once"]["median_s"]
    loop = results["baseline: per-keypoint loop (numpy)"]["median_s"]
    dark = results["decode dark (numpy)"]["median_s"]
    limit = TARGETS["dark_vs_window_bound"]
    checks = [(f"dark (numpy) within {limit:g}x the argmax + window read bound: {dark / bound:.2f}x",
               dark / bound <= limit)]
    limit = TARGETS["new_encode_vs_allocation_bound"]
    for method in ENCODE_METHODS:
        t = results[f"encode {method} (new array)"]["median_s"]
        checks.append((f"encode {method} (new array) within {limit:g}x the allocate-and-write-once "
                       f"bound: {t / alloc:.2f}x", t / alloc <= limit))
    info = []
    for kind in ("numpy", "torch"):
        t = results[f"decode dark ({kind})"]["median_s"]
        info.append(f"dark ({kind}): {t / floor:.2f}x the argmax floor, {loop / t:.0f}x faster than the loop")
    for method in ENCODE_METHODS:
        for output in ("new array", "reused buffer"):
            r = results[f"encode {method} ({output})"]
            info.append(f"encode {method} ({output}): {r['loop_median_s'] / r['median_s']:.1f}x faster "
                        "than its loop")
    return checks, info


def _error(coords: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(coords - truth, axis=-1).mean())


def _rate(per_second: float) -> str:
    return f"{per_second / 1e6:.2f}M" if per_second >= 1e6 else f"{per_second / 1e3:.1f}k"
