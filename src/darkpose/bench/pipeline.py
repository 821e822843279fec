"""``darkpose bench pipeline``: training-sample throughput per core against JPEG decode.

One core: torch and OpenCV run on one thread each while it runs, and get their thread
counts back when it ends. The baseline reads and decodes each person's photo with
``cv2.imread`` (the same flags the dataset uses); the pipeline makes the full training
sample ``dataset[(epoch, i)]``: read + decode the JPEG,
half-body/scale/rotation/flip draws, affine crop, normalisation to a float tensor, target
heatmaps through the codec. Per person the two run back to back (alternating which goes
first), over several rounds; the reported ratio is the median over rounds of
(pipeline time / decode time) (target: at most 1.25). A breakdown times the stages in
isolation on already-decoded photos.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from darkpose.bench._common import argument, json_target_refused, parse_size, positive_int, threads, write_json
from darkpose.data import CocoKeypointDataset, TopDownTransform, TransformConfig
from darkpose.data.image import read_image

TARGET_RATIO = 1.25


def measure(
    ann: str | Path,
    images: str | Path,
    size: tuple[int, int] = (192, 256),
    rounds: int = 5,
    batch_size: int = 32,
    progress: bool = False,
) -> dict:
    """Time JPEG decode alone and the full training sample, per person, on one core.

    Two ways to make the targets are timed: per sample (``targets="sample"``, what
    ``dataset[(epoch, i)]`` returns) and per batch (``targets="batch"``: the same without
    targets plus one :meth:`TopDownTransform.encode` call per ``batch_size`` persons, the
    work :meth:`TopDownTransform.collate` adds; stacking the batch is left out of both).

    Parameters
    ----------
    ann, images : COCO keypoint annotation file and image folder
    size : (W, H) network input
    rounds : timed rounds (after one warm-up round)
    batch_size : persons per encode call in the batched mode

    Returns
    -------
    dict: persons, image_size, batch_size, decode_ms, sample_ms, batch_ms (median
    per-person times), ratio_sample, ratio_batch (median over rounds of time / decode
    time), samples_per_s {sample, batch} (one core), stages_ms, rounds_ms
    """
    if rounds < 1 or batch_size < 1:
        raise ValueError(f"rounds and batch_size must be at least 1, got {rounds} and {batch_size}")
    with threads(1):
        return _measure(ann, images, size, rounds, batch_size, progress)


def _measure(ann, images, size, rounds, batch_size, progress) -> dict:
    per_sample = TopDownTransform(TransformConfig(image_size=size, targets="sample"), train=True)
    batched = TopDownTransform(TransformConfig(image_size=size, targets="batch"), train=True)
    ds_sample = CocoKeypointDataset(ann, images, transform=per_sample)
    ds_batch = CocoKeypointDataset(ann, images, transform=batched)
    n = len(ds_sample)
    if n == 0:
        raise ValueError(f"{ann}: no person with keypoints to time")
    paths = [str(p) for p in ds_sample.image_paths]
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION

    def one_round(epoch: int) -> tuple[float, float, float]:
        """Per person, decode alone and both pipelines back to back (rotating which goes
        first), so that a load change on the machine hits all three alike."""
        spent = [0.0, 0.0, 0.0]
        pending = []
        for i in range(n):
            for step in range(3):
                which = (step + i) % 3
                t0 = time.perf_counter()
                if which == 0:
                    cv2.imread(paths[i], flags)
                elif which == 1:
                    ds_sample[(epoch, i)]
                else:
                    pending.append(ds_batch[(epoch, i)].meta.keypoints_heatmap)
                    if len(pending) == batch_size or i == n - 1:
                        batched.encode(np.stack(pending))
                        pending = []
                spent[which] += time.perf_counter() - t0
        return spent[0] / n, spent[1] / n, spent[2] / n

    one_round(0)  # warm-up
    dec, smp, bat = [], [], []
    for r in tqdm(range(rounds), desc="rounds", disable=not progress, file=sys.stderr,
                  leave=False):
        d, s_, b = one_round(r + 1)  # fresh augmentation draws each round
        dec.append(d)
        smp.append(s_)
        bat.append(b)
    stages = _stages(ds_sample, per_sample, paths, flags, batch_size)
    med = statistics.median
    return {
        "persons": n,
        "image_size": list(size),
        "batch_size": batch_size,
        "decode_ms": med(dec) * 1e3,
        "sample_ms": med(smp) * 1e3,
        "batch_ms": med(bat) * 1e3,
        "ratio_sample": med(s_ / d for s_, d in zip(smp, dec, strict=True)),
        "ratio_batch": med(b / d for b, d in zip(bat, dec, strict=True)),
        "samples_per_s": {"sample": 1.0 / med(smp), "batch": 1.0 / med(bat)},
        "stages_ms": stages,
        "rounds_ms": {
            "decode": [v * 1e3 for v in dec],
            "sample": [v * 1e3 for v in smp],
            "batch": [v * 1e3 for v in bat],
        },
    }


def _stages(ds, transform: TopDownTransform, paths, flags, batch_size) -> dict[str, float]:
    """Median per-person time (ms) of each stage in isolation, on decoded photos."""
    cfg = transform.config
    n = len(paths)
    photos = [cv2.imread(p, flags) for p in paths]
    draws = []
    for i in range(n):
        inst = ds.instance(i)
        c, s, r, f, _ = transform.draw(inst.keypoints, inst.center, inst.scale, ds.draws(i, 0))
        a_in, a_hm = transform.affines(c, s, r, f, photos[i].shape[1])
        kp = inst.keypoints.copy()
        kp[:, :2] = kp[:, :2] @ a_hm[:, :2].T + a_hm[:, 2]
        draws.append((a_in, kp))
    crops = [cv2.warpAffine(photos[i], draws[i][0], cfg.image_size, flags=cv2.INTER_LINEAR)
             for i in range(n)]
    kp_all = np.stack([d[1] for d in draws])

    def timed(fn, count=n) -> float:
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(count):
                fn(i)
            runs.append((time.perf_counter() - t0) / n * 1e3)
        return statistics.median(runs)

    batches = [kp_all[i : i + batch_size] for i in range(0, n, batch_size)]
    return {
        "decode": timed(lambda i: read_image(paths[i], "bgr")),
        "crop": timed(lambda i: cv2.warpAffine(photos[i], draws[i][0], cfg.image_size,
                                               flags=cv2.INTER_LINEAR)),
        "normalise": timed(lambda i: transform.normalize(crops[i], True)),
        "encode_per_sample": timed(lambda i: transform.encode(kp_all[i : i + 1])),
        "encode_batched": timed(lambda j: transform.encode(batches[j]), len(batches)),
        "transform_total": timed(lambda i: transform(photos[i], ds.instance(i), ds.draws(i, 0))),
    }


def format_report(r: dict) -> str:
    w, h = r["image_size"]
    sps = r["samples_per_s"]
    lines = [
        f"training samples {h}x{w} on one core, {r['persons']} persons "
        f"(medians of {len(r['rounds_ms']['decode'])} rounds)",
        f"  JPEG decode alone (cv2.imread)      {r['decode_ms']:7.3f} ms/person   ratio 1.000",
        f"  training sample, batched targets    {r['batch_ms']:7.3f} ms/person   ratio "
        f"{r['ratio_batch']:.3f}  ({sps['batch']:.0f} samples/s per core; one encode per "
        f"{r['batch_size']})",
        f"  training sample, per-sample targets {r['sample_ms']:7.3f} ms/person   ratio "
        f"{r['ratio_sample']:.3f}  ({sps['sample']:.0f} samples/s per core)",
        "  stages in isolation (ms/person): "
        + ", ".join(f"{k} {v:.3f}" for k, v in r["stages_ms"].items()),
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ann", required=True, type=Path, help="COCO person_keypoints JSON")
    parser.add_argument("--images", required=True, type=Path, help="its image folder")
    parser.add_argument("--size", type=argument(parse_size), default=(192, 256),
                        help="input HEIGHTxWIDTH, multiples of 4 and at least 8 (256x192)")
    parser.add_argument("--rounds", type=positive_int, default=5, help="timed rounds (%(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=32,
                        help="persons per encode call in the batched mode (%(default)s)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this path")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")


def run(args: argparse.Namespace) -> int:
    if json_target_refused("bench pipeline", args.json, args.force):
        return 2
    try:
        report = measure(args.ann, args.images, args.size, args.rounds, args.batch_size,
                         progress=True)
    except (FileNotFoundError, ValueError) as e:
        print(f"darkpose bench pipeline: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    for mode in ("batch", "sample"):
        ok = report[f"ratio_{mode}"] <= TARGET_RATIO
        print(f"{mode + 'ed' if mode == 'batch' else 'per-sample'} targets within "
              f"{TARGET_RATIO}x of JPEG decode: {'yes' if ok else 'NO'}")
    write_json(args.json, report, force=args.force)
