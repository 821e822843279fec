"""``darkpose bench oracle``: the COCO AP that perfect heatmaps would give.

For every COCO person with keypoints: its ground-truth box, the test-time crop of the
photo (:func:`darkpose.engine.evaluate.crop_person`) at each input size, the ground-truth
keypoints encoded as target heatmaps (stride 4, sigma H/128) through the heatmap-space
affine. A :class:`GroundTruthModel` returns these targets for its crops, and the test loop
that ``darkpose test`` runs (:func:`darkpose.engine.evaluate.predict`: crops, optional flip
test, decode with each codec and the config's blur kernel, 3 at 128x96, 11 otherwise,
recovery to image coordinates) gives the keypoints, scored by pycocotools against the same
annotations. Every prediction has score 1 (box and keypoints) and there is no NMS, so the
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
import dataclasses
import hashlib
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from darkpose import geometry
from darkpose.bench._common import argument, json_target_refused, parse_size, parse_sizes, write_json
from darkpose.codec import DARK_MAX_STEP, encode
from darkpose.config import Config, blur_kernel, transform_config
from darkpose.data import CocoKeypointDataset, read_image
from darkpose.engine.evaluate import crop_person, predict
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


def _key(pixels: torch.Tensor) -> bytes:
    return hashlib.sha1(pixels.contiguous().cpu().numpy().tobytes()).digest()


class GroundTruthModel(nn.Module):
    """A "network" whose output is the encoded ground truth of each input crop it was given
    with :meth:`add` (looked up by the crop's pixels): perfect heatmaps, through the code
    users run (:func:`darkpose.engine.evaluate.predict`)."""

    def __init__(self) -> None:
        super().__init__()
        self.table: dict[bytes, torch.Tensor] = {}

    def add(self, pixels: torch.Tensor, heatmaps: torch.Tensor, where: str = "") -> None:
        key = _key(pixels)
        if key in self.table:
            raise ValueError(f"two crops with the same pixels ({where}): the model cannot tell them apart")
        self.table[key] = heatmaps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.table[_key(x)] for x in images])


def ground_truth_models(
    dataset, cfg: Config, encode_methods=("unbiased",), flip: bool = False, progress: bool = False
) -> dict:
    """A :class:`GroundTruthModel` per encode method for the test-time crops of ``dataset``
    (:func:`darkpose.engine.evaluate.crop_person` with ``cfg.input``), its targets at the
    heatmap size with sigma ``cfg.target.sigma`` (default H / 128); with ``flip``, also the
    targets of each crop's mirror image (the keypoints mirrored in the input crop, left and
    right swapped), what flip test feeds the model.

    Returns
    -------
    dict with "models" {method: GroundTruthModel}, "targets" {method: (N, K, h, w)} of the
    plain crops, "heatmap_to_image" (N, 2, 3), "keypoints_heatmap" (N, K, 2) exact
    heatmap-space ground truth, "labelled" (N, K) bool, "heatmap_size" (w, h), "sigma".
    """
    t = transform_config(cfg, "none")
    pairs = dataset.metadata.flip_pairs
    n = len(dataset)
    models = {m: GroundTruthModel() for m in encode_methods}
    targets = {m: [] for m in encode_methods}
    to_image = np.zeros((n, 2, 3))
    sizes = dataset.image_sizes
    for i in tqdm(range(n), desc=f"crop+encode {t.image_size[1]}x{t.image_size[0]}",
                  disable=not progress, file=sys.stderr, leave=False):
        inst = dataset.instance(i)
        image = read_image(inst.image_path, "bgr", None if sizes is None else sizes[i])
        crop = crop_person(image, inst.center, inst.scale, t.image_size, t.convention,
                           heatmap_size=t.heatmap_size, to_rgb=dataset.color == "rgb",
                           mean=t.mean, std=t.std)
        to_image[i] = crop.heatmap_to_image
        to_heatmap = crop.image_to_heatmap
        pixels = torch.from_numpy(crop.pixels)
        views = [(inst.keypoints[None, :, :2], inst.keypoints[None, :, 2], to_heatmap, pixels)]
        if flip:  # in the input crop: mirror x' = W - 1 - x and swap left and right
            kp_in = inst.keypoints.copy()
            kp_in[:, :2] = geometry.transform_points(kp_in[None, :, :2], crop.image_to_input[None])[0]
            kp_in = geometry.flip_keypoints(kp_in, t.image_size[0], pairs)
            input_to_heatmap = geometry.compose_affine(to_heatmap, geometry.invert_affine(crop.image_to_input))
            views.append((kp_in[None, :, :2], kp_in[None, :, 2], input_to_heatmap,
                          torch.flip(pixels, dims=(-1,))))
        for v, (kp, visible, affine, x) in enumerate(views):
            hm = geometry.transform_points(kp, affine[None])
            for m in encode_methods:
                target = np.asarray(encode(hm, visible, t.heatmap_size, t.sigma, m)[0][0], np.float32)
                target = torch.from_numpy(target)
                models[m].add(x, target, f"{inst.image_path}, annotation id {inst.annotation_id}")
                if v == 0:
                    targets[m].append(target)
    kp_hm = geometry.transform_points(dataset.keypoints[..., :2], geometry.invert_affine(to_image))
    return {
        "models": models,
        "targets": {m: torch.stack(v).numpy() for m, v in targets.items()},
        "heatmap_to_image": to_image,
        "keypoints_heatmap": kp_hm,
        "labelled": dataset.keypoints[..., 2] > 0,
        "heatmap_size": t.heatmap_size,
        "sigma": t.sigma,
    }


def oracle_config(ann: str | Path, images: str | Path, size: tuple[int, int], convention: str = "darkpose",
                  flip: bool = False) -> Config:
    """The experiment config of the oracle: ``ann``/``images`` as the validation split, input
    ``size`` (W, H), the official sigma and blur kernel of that size, no workers."""
    cfg = Config()
    cfg.data = dataclasses.replace(cfg.data, val_ann=str(ann), val_images=str(images), workers=0)
    cfg.input = dataclasses.replace(cfg.input, image_size=tuple(size), convention=convention)
    cfg.test = dataclasses.replace(cfg.test, flip_test=flip)
    return cfg


def oracle_heatmaps(
    ann: str | Path,
    images: str | Path,
    size: tuple[int, int],
    encode_methods=("quantized", "unbiased"),
    convention: str = "darkpose",
    progress: bool = False,
    flip: bool = False,
) -> dict:
    """Test-time crops of every person of ``ann`` at input ``size`` (W, H), with the
    ground truth encoded as targets by each encode method (:func:`ground_truth_models`).

    Returns
    -------
    the dict of :func:`ground_truth_models` with "dataset" (:class:`CocoKeypointDataset`)
    and "config" (:func:`oracle_config`) added.
    """
    cfg = oracle_config(ann, images, size, convention, flip)
    ds = CocoKeypointDataset(ann, images, image_size=size, convention=convention)
    data = ground_truth_models(ds, cfg, encode_methods, flip, progress)
    return {**data, "dataset": ds, "config": cfg}


def _clip(kp: np.ndarray, w: int, h: int, margin: float) -> np.ndarray:
    out = kp.copy()
    out[..., 0] = out[..., 0].clip(-margin, w - 1 + margin)
    out[..., 1] = out[..., 1].clip(-margin, h - 1 + margin)
    return out


def _ap(xy: np.ndarray, data: dict, gt) -> float:
    """AP of image coordinates (N, K, 2), every prediction scored 1, no NMS."""
    kps = np.concatenate([xy, np.ones(xy.shape[:2] + (1,))], axis=-1)
    res = keypoint_results(kps, data["dataset"].image_ids, nms="none", rescoring=False)
    return evaluate_coco(res, gt)["AP"]


def _ap_heatmap(coords_hm: np.ndarray, data: dict, gt) -> float:
    return _ap(geometry.transform_points(coords_hm, data["heatmap_to_image"]), data, gt)


def oracle_table(
    ann: str | Path,
    images: str | Path,
    sizes=SIZES,
    codecs=CODECS,
    convention: str = "darkpose",
    progress: bool = False,
    flip: bool = False,
) -> tuple[dict[str, dict[str, float]], dict[str, dict]]:
    """AP per input size x codec pair, plus the ceiling.

    The codec rows run the test loop users run: :func:`darkpose.engine.evaluate.predict`
    with a :class:`GroundTruthModel` (its crops, flip test when ``flip``, the decode with the
    config's blur kernel, recovery), then ``keypoint_results`` and ``evaluate_coco``.

    Parameters
    ----------
    ann, images : the COCO keypoint annotation file and its image folder
    sizes : input sizes "HxW" as the paper writes them
    codecs : (encode, decode) pairs
    convention : geometry convention
    flip : flip test (the model also returns the targets of the mirrored crops)

    Returns
    -------
    table : {"<W>x<H>": {"<encode>+<decode>": AP, ..., "ceiling": AP,
        "ceiling+1.5px": AP, "ceiling+tails": AP}} (the last two only when unbiased targets
        are among the codecs)
    details : {"<W>x<H>": {"out_of_frame": int, "labelled": int, "errors": {...}}} where
        errors[codec] = per-keypoint |decoded - exact| in heatmap pixels for labelled
        keypoints inside the frame, split by distance to the frame edge.
    """
    parsed = [parse_size(text) for text in sizes]  # every size checked before any work
    if not parsed:
        raise ValueError("sizes: expected at least one input size HEIGHTxWIDTH, got none")
    gt = load_coco_gt(ann)
    table: dict[str, dict[str, float]] = {}
    details: dict[str, dict] = {}
    for size in parsed:
        methods = tuple(dict.fromkeys(e for e, _ in codecs))
        data = oracle_heatmaps(ann, images, size, methods, convention, progress, flip)
        to_heatmap = geometry.invert_affine(data["heatmap_to_image"])
        w, h = data["heatmap_size"]
        kp = data["keypoints_heatmap"]
        lab = data["labelled"]
        inside = (kp[..., 0] >= 0) & (kp[..., 0] <= w - 1)
        inside &= (kp[..., 1] >= 0) & (kp[..., 1] <= h - 1)
        edge = np.minimum.reduce([kp[..., 0], w - 1 - kp[..., 0], kp[..., 1], h - 1 - kp[..., 1]])
        row: dict[str, float] = {}
        errs: dict[str, dict[str, float]] = {}
        blur = blur_kernel(data["config"])
        for enc, dec in codecs:
            cfg = data["config"]
            cfg.test = dataclasses.replace(cfg.test, decode=dec)
            preds = predict(data["models"][enc], data["dataset"], cfg, progress=False)
            row[f"{enc}+{dec}"] = _ap(preds.keypoints[..., :2], data, gt)
            coords = geometry.transform_points(preds.keypoints[..., :2], to_heatmap)
            err = np.linalg.norm(coords - kp, axis=-1)
            errs[f"{enc}+{dec}"] = {
                band: float(err[lab & inside & m].mean()) if (lab & inside & m).any() else 0.0
                for band, m in (
                    ("edge<2", edge < 2),
                    ("2<=edge<6", (edge >= 2) & (edge < 6)),
                    ("edge>=6", edge >= 6),
                )
            }
        row["ceiling"] = _ap_heatmap(_clip(kp, w, h, 0.0), data, gt)
        if "unbiased" in data["targets"]:
            reach = _clip(kp, w, h, DARK_REACH)
            empty = data["targets"]["unbiased"].max(axis=(2, 3)) <= 0
            reach[empty] = 0.0
            row[f"ceiling+{DARK_REACH:g}px"] = _ap_heatmap(reach, data, gt)
            tails = np.where(empty[..., None], _clip(kp, w, h, 0.0), kp)
            row["ceiling+tails"] = _ap_heatmap(tails, data, gt)
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
    parser.add_argument("--flip-test", action="store_true",
                        help="flip test (the model also returns the targets of the mirrored crops)")
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
                                      progress=True, flip=args.flip_test)
    except (FileNotFoundError, ValueError) as e:
        print(f"darkpose bench oracle: {e}", file=sys.stderr)
        return 2
    any_d = next(iter(details.values()))
    print(
        f"COCO AP of perfect heatmaps: {args.ann} ({any_d['persons']} persons, "
        f"{any_d['labelled']} labelled keypoints), convention {args.convention}, stride 4, "
        f"flip test {'on' if args.flip_test else 'off'}"
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
