"""``darkpose bench oracle``: the COCO AP that perfect heatmaps would give.

For every COCO person with keypoints: its ground-truth box, the test-time crop of the
photo (:class:`darkpose.data.TopDownTransform`, ``train=False``) at each input size, the
ground-truth keypoints encoded as target heatmaps (stride 4, sigma H/128) through the
heatmap-space affine, decoded with each codec (blur kernel 3 at 128x96, 11 otherwise),
recovered to image coordinates with the inverse heatmap affine and scored by pycocotools
against the same annotations. Every prediction has score 1 (box and keypoints), so the
rows differ only by where the keypoints land.

The "ceiling" row: the exact ground-truth coordinates clipped to the heatmap frame
[0, w-1] x [0, h-1] and recovered the same way; labelled keypoints outside the padded crop
cannot be recovered by a decode that stays inside the frame.

The codec's "dark" decode does not stay inside the frame: it continues a border peak's
Gaussian beyond the edge and takes the Taylor step up to 1.5 px from the argmax, so it
recovers keypoints just outside the frame and scores *above* that ceiling. The
"ceiling+1.5px" row is the ceiling of that reach: exact coordinates clipped to the frame
grown by 1.5 px, and keypoints whose (unbiased) target is empty (the encoder gives weight 0
when the 3-sigma box lies outside the frame) at (0, 0), where every decoder puts them.
The "ceiling+tails" row bounds any decode of these targets: the exact coordinates wherever
the target is not empty (an uncapped continuation of the Gaussian tail would find them on
noise-free targets), clipped to the frame where it is.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from darkpose import geometry
from darkpose.bench._common import argument, json_target_refused, parse_size, parse_sizes, write_json
from darkpose.codec import DARK_MAX_STEP
from darkpose.data import CocoKeypointDataset, TopDownTransform, TransformConfig, read_image
from darkpose.data.transforms import default_blur_kernel, default_sigma
from darkpose.evaluation import evaluate_coco, keypoint_results, load_coco_gt

SIZES: tuple[str, ...] = ("128x96", "256x192", "384x288")
"""Input sizes as the paper writes them: height x width."""

CODECS: tuple[tuple[str, str], ...] = (
    ("quantized", "argmax"),
    ("quantized", "shift"),
    ("unbiased", "dark-reference"),
    ("unbiased", "dark"),
)
"""(encode method, decode method) pairs of the table."""

ACCEPTANCE = 0.002
"""unbiased+dark must lose at most this AP to the ceiling."""

DARK_REACH = DARK_MAX_STEP
"""How far beyond the frame the codec's "dark" decode can land: its Taylor step is capped
at ``darkpose.codec.DARK_MAX_STEP`` (1.5) px per axis from the argmax."""


def json_key(size: tuple[int, int]) -> str:
    """(W, H) -> "WxH", width first like the official configs (e.g. "192x256")."""
    return f"{size[0]}x{size[1]}"


def oracle_heatmaps(
    ann: str | Path,
    images: str | Path,
    size: tuple[int, int],
    encode_methods=("quantized", "unbiased"),
    convention: str = "darkpose",
    progress: bool = False,
) -> dict:
    """Test-time crops of every person of ``ann`` at input ``size`` (W, H), with the
    ground truth encoded as targets by each encode method.

    Returns
    -------
    dict with "dataset" (:class:`CocoKeypointDataset`), "targets" {method: (N, K, h, w)},
    "heatmap_to_image" (N, 2, 3), "keypoints_heatmap" (N, K, 2) exact heatmap-space ground
    truth, "labelled" (N, K) bool, "heatmap_size" (w, h), "sigma".
    """
    sigma = default_sigma(size)
    transforms = {
        m: TopDownTransform(
            TransformConfig(image_size=size, sigma=sigma, encode_method=m, convention=convention),
            train=False,
        )
        for m in encode_methods
    }
    ds = CocoKeypointDataset(ann, images, image_size=size, convention=convention)
    n = len(ds)
    targets: dict[str, list[np.ndarray]] = {m: [] for m in encode_methods}
    to_image = np.zeros((n, 2, 3))
    for i in tqdm(range(n), desc=f"crop+encode {size[1]}x{size[0]}", disable=not progress,
                  file=sys.stderr, leave=False):
        inst = ds.instance(i)
        image = read_image(inst.image_path, "bgr")
        for m, t in transforms.items():
            s = t(image, inst)
            targets[m].append(s["target"].numpy())
        to_image[i] = s["meta"]["heatmap_to_image"]
    hm_size = transforms[encode_methods[0]].config.heatmap_size
    kp_hm = geometry.transform_points(ds.keypoints[..., :2], geometry.invert_affine(to_image))
    return {
        "dataset": ds,
        "targets": {m: np.stack(v) for m, v in targets.items()},
        "heatmap_to_image": to_image,
        "keypoints_heatmap": kp_hm,
        "labelled": ds.keypoints[..., 2] > 0,
        "heatmap_size": hm_size,
        "sigma": sigma,
    }


def _clip(kp: np.ndarray, w: int, h: int, margin: float) -> np.ndarray:
    out = kp.copy()
    out[..., 0] = out[..., 0].clip(-margin, w - 1 + margin)
    out[..., 1] = out[..., 1].clip(-margin, h - 1 + margin)
    return out


def _ap(coords_hm: np.ndarray, data: dict, gt) -> float:
    ds = data["dataset"]
    xy = geometry.transform_points(coords_hm, data["heatmap_to_image"])
    kps = np.concatenate([xy, np.ones(xy.shape[:2] + (1,))], axis=-1)
    res = keypoint_results(kps, ds.image_ids, nms="none", rescoring=False)
    return evaluate_coco(res, gt)["AP"]


def oracle_table(
    ann: str | Path,
    images: str | Path,
    sizes=SIZES,
    codecs=CODECS,
    convention: str = "darkpose",
    progress: bool = False,
) -> tuple[dict[str, dict[str, float]], dict[str, dict]]:
    """AP per input size x codec pair, plus the ceiling.

    Parameters
    ----------
    ann, images : the COCO keypoint annotation file and its image folder
    sizes : input sizes "HxW" as the paper writes them
    codecs : (encode, decode) pairs
    convention : geometry convention

    Returns
    -------
    table : {"<W>x<H>": {"<encode>+<decode>": AP, ..., "ceiling": AP,
        "ceiling+1.5px": AP, "ceiling+tails": AP}} (the last two only when unbiased targets
        are among the codecs)
    details : {"<W>x<H>": {"out_of_frame": int, "labelled": int, "errors": {...}}} where
        errors[codec] = per-keypoint |decoded - exact| in heatmap pixels for labelled
        keypoints inside the frame, split by distance to the frame edge.
    """
    from darkpose.codec import decode

    parsed = [parse_size(text) for text in sizes]  # every size checked before any work
    if not parsed:
        raise ValueError("sizes: expected at least one input size HEIGHTxWIDTH, got none")
    gt = load_coco_gt(ann)
    table: dict[str, dict[str, float]] = {}
    details: dict[str, dict] = {}
    for size in parsed:
        methods = tuple(dict.fromkeys(e for e, _ in codecs))
        data = oracle_heatmaps(ann, images, size, methods, convention, progress)
        w, h = data["heatmap_size"]
        kp = data["keypoints_heatmap"]
        lab = data["labelled"]
        inside = (kp[..., 0] >= 0) & (kp[..., 0] <= w - 1)
        inside &= (kp[..., 1] >= 0) & (kp[..., 1] <= h - 1)
        edge = np.minimum.reduce([kp[..., 0], w - 1 - kp[..., 0], kp[..., 1], h - 1 - kp[..., 1]])
        row: dict[str, float] = {}
        errs: dict[str, dict[str, float]] = {}
        blur = default_blur_kernel(size)
        for enc, dec in codecs:
            coords, _ = decode(data["targets"][enc], method=dec, blur_kernel=blur)
            coords = np.asarray(coords, dtype=np.float64)
            row[f"{enc}+{dec}"] = _ap(coords, data, gt)
            err = np.linalg.norm(coords - kp, axis=-1)
            errs[f"{enc}+{dec}"] = {
                band: float(err[lab & inside & m].mean()) if (lab & inside & m).any() else 0.0
                for band, m in (
                    ("edge<2", edge < 2),
                    ("2<=edge<6", (edge >= 2) & (edge < 6)),
                    ("edge>=6", edge >= 6),
                )
            }
        row["ceiling"] = _ap(_clip(kp, w, h, 0.0), data, gt)
        if "unbiased" in data["targets"]:
            reach = _clip(kp, w, h, DARK_REACH)
            empty = data["targets"]["unbiased"].max(axis=(2, 3)) <= 0
            reach[empty] = 0.0
            row[f"ceiling+{DARK_REACH:g}px"] = _ap(reach, data, gt)
            tails = np.where(empty[..., None], _clip(kp, w, h, 0.0), kp)
            row["ceiling+tails"] = _ap(tails, data, gt)
        key = json_key(size)
        table[key] = row
        details[key] = {
            "out_of_frame": int((lab & ~inside).sum()),
            "labelled": int(lab.sum()),
            "persons": len(data["dataset"]),
            "sigma": data["sigma"],
            "blur_kernel": blur,
            "mean_error_px": errs,
        }
    return table, details


def format_table(table: dict[str, dict[str, float]], details: dict[str, dict]) -> str:
    keys = list(table)
    heads = []
    for k in keys:
        w, h = (int(v) for v in k.split("x"))
        heads.append(f"{h}x{w}")
    rows = list(next(iter(table.values())))
    width = max(len(r) for r in rows + ["out-of-frame keypoints"]) + 2
    lines = ["input (HxW)".ljust(width) + "".join(f"{h:>10}" for h in heads)]
    for r in rows:
        lines.append(r.ljust(width) + "".join(f"{table[k][r]:>10.4f}" for k in keys))
    if "unbiased+dark" in rows:
        lines.append(
            "dark - ceiling".ljust(width)
            + "".join(f"{table[k]['unbiased+dark'] - table[k]['ceiling']:>+10.4f}" for k in keys)
        )
    lines.append(
        "out-of-frame keypoints".ljust(width)
        + "".join(f"{details[k]['out_of_frame']:>6}/{details[k]['labelled']:<3}" for k in keys)
    )
    return "\n".join(lines)


def format_errors(details: dict[str, dict]) -> str:
    lines = ["mean |decoded - exact| in heatmap px, labelled keypoints inside the frame,",
             "by distance to the frame edge:"]
    for k, d in details.items():
        w, h = (int(v) for v in k.split("x"))
        lines.append(f"  {h}x{w} (sigma {d['sigma']:g}, blur {d['blur_kernel']}):")
        for codec, bands in d["mean_error_px"].items():
            cells = "  ".join(f"{b} {v:.4f}" for b, v in bands.items())
            lines.append(f"    {codec:<26}{cells}")
    return "\n".join(lines)


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ann", required=True, type=Path, help="COCO person_keypoints JSON")
    parser.add_argument("--images", required=True, type=Path, help="its image folder")
    parser.add_argument(
        "--sizes", type=argument(parse_sizes), default=list(SIZES),
        help="input sizes HEIGHTxWIDTH, comma-separated, multiples of 4 and at least 8 "
        f"(default: {','.join(SIZES)})",
    )
    parser.add_argument("--convention", default="darkpose", choices=geometry.CONVENTIONS)
    parser.add_argument("--json", type=Path, help="write the table as JSON to this path")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    parser.add_argument("--errors", action="store_true",
                        help="also print decode errors in heatmap pixels by distance to the edge")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if json_target_refused("bench oracle", args.json, args.force):
        return 2
    try:
        table, details = oracle_table(args.ann, args.images, args.sizes, CODECS, args.convention,
                                      progress=True)
    except (FileNotFoundError, ValueError) as e:
        print(f"darkpose bench oracle: {e}", file=sys.stderr)
        return 2
    any_d = next(iter(details.values()))
    print(
        f"COCO AP of perfect heatmaps: {args.ann} ({any_d['persons']} persons, "
        f"{any_d['labelled']} labelled keypoints), convention {args.convention}, stride 4"
    )
    print(format_table(table, details))
    if args.errors:
        print(format_errors(details))
    reach_key = f"ceiling+{DARK_REACH:g}px"
    no_loss = all(r["unbiased+dark"] >= r["ceiling"] - ACCEPTANCE for r in table.values())
    within = all(abs(r["unbiased+dark"] - r["ceiling"]) <= ACCEPTANCE for r in table.values())
    at_reach = all(abs(r["unbiased+dark"] - r[reach_key]) <= ACCEPTANCE for r in table.values())
    print(f"unbiased+dark within {ACCEPTANCE} of the ceiling at every size: {_yes(within)}")
    print(f"unbiased+dark loses at most {ACCEPTANCE} to the ceiling at every size: "
          f"{_yes(no_loss)}")
    print(f"unbiased+dark within {ACCEPTANCE} of the ceiling of its reach ({reach_key}) at "
          f"every size: {_yes(at_reach)}")
    write_json(args.json, table, force=args.force)
