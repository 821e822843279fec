"""``darkpose bench pipeline``: training-sample throughput per core against JPEG decode.

One core (``torch.set_num_threads(1)``, ``cv2.setNumThreads(1)``). The baseline reads and
decodes each person's photo with ``cv2.imread`` (the same flags the dataset uses); the
pipeline makes the full training sample ``dataset[i]``: read + decode the JPEG,
half-body/scale/rotation/flip draws, affine crop, normalisation to a float tensor, target
heatmaps through the codec. Per person the two run back to back (alternating which goes
first), over several rounds; the reported ratio is the median over rounds of
(pipeline time / decode time) (target: at most 1.25). A breakdown times the stages in
isolation on already-decoded photos.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import torch
from tqdm import tqdm

from darkpose.data import CocoKeypointDataset, TopDownTransform, TransformConfig
from darkpose.data.image import read_image

TARGET_RATIO = 1.25


def _parse_size(text: str) -> tuple[int, int]:
    from darkpose.bench.oracle import parse_size

    return parse_size(text)


def measure(
    ann: str | Path,
    images: str | Path,
    size: tuple[int, int] = (192, 256),
    rounds: int = 5,
    progress: bool = False,
) -> dict:
    """Time JPEG decode alone and the full training sample, per person, on one core.

    Parameters
    ----------
    ann, images : COCO keypoint annotation file and image folder
    size : (W, H) network input
    rounds : timed passes of each (after one warm-up pass)

    Returns
    -------
    dict: persons, decode_ms, pipeline_ms (median per-person times), ratio,
    samples_per_s (pipeline, one core), stages_ms {decode, crop, normalise, encode, rest},
    rounds_ms {decode: [...], pipeline: [...]}
    """
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    transform = TopDownTransform(TransformConfig(image_size=size), train=True)
    ds = CocoKeypointDataset(ann, images, image_size=size, transform=transform)
    n = len(ds)
    if n == 0:
        raise ValueError(f"{ann}: no person with keypoints to time")
    paths = [str(p) for p in ds.image_paths]
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION

    def one_round() -> tuple[float, float]:
        """Per person: decode alone and the full sample back to back (alternating which
        goes first), so that a load change on the machine hits both alike."""
        dec = pipe = 0.0
        for i in range(n):
            first_decode = i % 2 == 0
            for step in (0, 1):
                t0 = time.perf_counter()
                if (step == 0) == first_decode:
                    cv2.imread(paths[i], flags)
                    dec += time.perf_counter() - t0
                else:
                    ds[i]
                    pipe += time.perf_counter() - t0
        return dec / n, pipe / n

    one_round()  # warm-up
    dec, pipe = [], []
    for r in tqdm(range(rounds), desc="rounds", disable=not progress, file=sys.stderr,
                  leave=False):
        ds.set_epoch(r + 1)  # fresh augmentation draws each round
        d, p = one_round()
        dec.append(d)
        pipe.append(p)
    decode_s = statistics.median(dec)
    pipeline_s = statistics.median(pipe)
    ratio = statistics.median(p / d for p, d in zip(pipe, dec, strict=True))
    stages = _stages(ds, transform, paths, flags)
    stages["rest"] = max(0.0, pipeline_s * 1e3 - sum(stages.values()))
    return {
        "persons": n,
        "image_size": list(size),
        "decode_ms": decode_s * 1e3,
        "pipeline_ms": pipeline_s * 1e3,
        "ratio": ratio,
        "samples_per_s": 1.0 / pipeline_s,
        "stages_ms": stages,
        "rounds_ms": {"decode": [v * 1e3 for v in dec], "pipeline": [v * 1e3 for v in pipe]},
    }


def _stages(ds, transform: TopDownTransform, paths, flags) -> dict[str, float]:
    """Median per-person time (ms) of each stage in isolation."""
    from darkpose import geometry
    from darkpose.codec import encode

    cfg = transform.config
    n = len(paths)
    photos = [cv2.imread(p, flags) for p in paths]
    draws = []
    for i in range(n):
        inst = ds.instance(i)
        c, s, r, f, _ = transform.draw(inst.keypoints, inst.center, inst.scale, ds.rng(i))
        a_in, a_hm = transform.affines(c, s, r, f, photos[i].shape[1])
        draws.append((a_in, a_hm, inst))
    crops = [cv2.warpAffine(photos[i], draws[i][0], cfg.image_size, flags=cv2.INTER_LINEAR)
             for i in range(n)]

    def timed(fn) -> float:
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(n):
                fn(i)
            runs.append((time.perf_counter() - t0) / n * 1e3)
        return statistics.median(runs)

    def do_encode(i):
        a_hm, inst = draws[i][1], draws[i][2]
        kp = geometry.transform_points(inst.keypoints[None, :, :2], a_hm[None])
        encode(kp, inst.keypoints[None, :, 2], cfg.heatmap_size, cfg.sigma,
               method=cfg.encode_method)

    return {
        "decode": timed(lambda i: read_image(paths[i], "bgr")),
        "crop": timed(lambda i: cv2.warpAffine(photos[i], draws[i][0], cfg.image_size,
                                               flags=cv2.INTER_LINEAR)),
        "normalise": timed(lambda i: transform.normalize(crops[i], True)),
        "encode": timed(do_encode),
    }


def format_report(r: dict) -> str:
    w, h = r["image_size"]
    lines = [
        f"training samples {h}x{w} on one core, {r['persons']} persons "
        f"(medians of {len(r['rounds_ms']['decode'])} rounds)",
        f"  JPEG decode alone      {r['decode_ms']:8.3f} ms/person",
        f"  full training sample   {r['pipeline_ms']:8.3f} ms/person "
        f"({r['samples_per_s']:.0f} samples/s per core)",
        f"  ratio                  {r['ratio']:8.3f}  (target <= {TARGET_RATIO})",
        "  stages in isolation (ms/person): "
        + ", ".join(f"{k} {v:.3f}" for k, v in r["stages_ms"].items()),
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ann", required=True, type=Path, help="COCO person_keypoints JSON")
    parser.add_argument("--images", required=True, type=Path, help="its image folder")
    parser.add_argument("--size", default="256x192", help="input HEIGHTxWIDTH (%(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (%(default)s)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this path")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")


def run(args: argparse.Namespace) -> int:
    if args.json is not None and args.json.exists() and not args.force:
        print(f"darkpose bench pipeline: {args.json} exists (pass --force to overwrite)",
              file=sys.stderr)
        return 2
    if args.rounds < 1:
        print("darkpose bench pipeline: --rounds must be at least 1", file=sys.stderr)
        return 2
    try:
        size = _parse_size(args.size)
        report = measure(args.ann, args.images, size, args.rounds, progress=True)
    except (FileNotFoundError, ValueError) as e:
        print(f"darkpose bench pipeline: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    verdict = "yes" if report["ratio"] <= TARGET_RATIO else "NO"
    print(f"pipeline within {TARGET_RATIO}x of JPEG decode: {verdict}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
