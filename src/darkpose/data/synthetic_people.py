"""Synthetic people: a COCO-format keypoint dataset drawn from an articulated body model.

    make_synthetic_dataset(out, num_train, num_val, seed) -> SyntheticSummary

writes, under ``out``, the official COCO layout that :class:`darkpose.data.CocoKeypointDataset`
and pycocotools read unchanged::

    annotations/person_keypoints_train.json   annotations/person_keypoints_val.json
    images/train/000000000001.jpg ...         images/val/000000100001.jpg ...

Each image holds one to three figures with the 17 COCO keypoints, drawn over a cluttered
background (gradients, noise, random shapes and limb-like strokes). The body model, in
units of the figure's height ``h`` (head top to feet, standing):

- pelvis -> neck 0.30 h; shoulders 0.23 h apart, hips 0.16 h, both narrowed by cos(yaw);
  upper arm 0.17 h, forearm 0.15 h, thigh 0.24 h, shin 0.23 h, each foreshortened by a
  factor in [0.7, 1] (a limb leaving the image plane);
- the body leans by N(0, 12 deg) (now and then a tumble of up to 90), the head tilts by
  N(0, 10 deg); arms swing 0-170 deg out from hanging and bend 0-150 deg at the elbow; legs
  swing -25..60 deg and bend 0-110 deg at the knee;
- the figure faces the camera, turned by a yaw in [-60, 60] deg: its left side is on the
  image's right, as in a frontal photo; eyes, nose and ears move with the yaw.

Figures are drawn as solid limbs (rounded strokes), a torso polygon and a head disc, in
varied clothing and skin colours and widths; each arm is in front of or behind the torso
at random. Every pixel drawn is labelled with its figure and part in an id map, so the
visibility flags follow the drawing: v = 2 where the keypoint's own part is on top, v = 1
where another part or figure covers it (and for the far ear of a figure turned by more
than 35 deg), v = 0 (and x = y = 0, as COCO) outside the image. The box and area are those
COCO derives from a person's mask: the tight box of the figure's visible pixels (width
``x_max - x_min + 1``) and their count.

Deterministic: image ``i`` of a split is a function of (seed, split, i) alone (its own
Philox stream), JPEGs are encoded at a fixed quality and the JSON with sorted keys, so a
seed gives byte-identical files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from darkpose.data.keypoint_metadata import load_metadata

__all__ = ["SyntheticSummary", "draw_image", "make_synthetic_dataset"]

JPEG_QUALITY = 92
IMAGE_SIDES = (200, 320)  # width and height drawn uniformly in this range (px)
SPLIT_OFFSETS = {"train": 0, "val": 100_000}  # image ids: offset + 1, + 2, ...

# parts, in the id map (id = 1 + figure * len(PARTS) + part)
PARTS = ("torso", "head", "l_upper_arm", "l_forearm", "r_upper_arm", "r_forearm",
         "l_thigh", "l_shin", "r_thigh", "r_shin")
_P = {name: i for i, name in enumerate(PARTS)}
# the parts a COCO keypoint belongs to: it is visible where one of them is on top
_OWN_PARTS = (
    ("head",), ("head",), ("head",), ("head",), ("head",),
    ("torso", "l_upper_arm"), ("torso", "r_upper_arm"),
    ("l_upper_arm", "l_forearm"), ("r_upper_arm", "r_forearm"),
    ("l_forearm",), ("r_forearm",),
    ("torso", "l_thigh"), ("torso", "r_thigh"),
    ("l_thigh", "l_shin"), ("r_thigh", "r_shin"),
    ("l_shin",), ("r_shin",),
)


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`make_synthetic_dataset` wrote: per split, the image and person counts."""

    root: Path
    images: dict[str, int]
    persons: dict[str, int]
    annotation_files: dict[str, Path]


def _rotate(v: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _figure(rng: np.random.Generator, pelvis: np.ndarray, height: float) -> dict:
    """One figure's keypoints (17, 2) in image pixels and the drawing of its parts."""
    lean = rng.normal(0.0, 12.0) if rng.random() > 0.08 else rng.uniform(-90.0, 90.0)
    up = _rotate(np.array([0.0, -1.0]), lean)        # image y points down
    right = _rotate(np.array([1.0, 0.0]), lean)      # towards the image's right
    yaw = rng.uniform(-60.0, 60.0)
    narrow = math.cos(math.radians(yaw))
    turn = math.sin(math.radians(yaw))

    def shorten(length: float) -> float:
        return length * height * rng.uniform(0.7, 1.0)

    neck = pelvis + up * 0.30 * height
    # the figure's left (COCO "left_*") is on the image's right: it faces the camera
    shoulder = {"l": neck + right * 0.115 * height * narrow, "r": neck - right * 0.115 * height * narrow}
    hip = {"l": pelvis + right * 0.08 * height * narrow, "r": pelvis - right * 0.08 * height * narrow}
    tilt = rng.normal(0.0, 10.0)
    h_up, h_right = _rotate(up, tilt), _rotate(right, tilt)
    head = neck + h_up * 0.11 * height
    radius = 0.068 * height
    face = h_right * turn * 0.035 * height  # the face slides towards the turn
    nose = head + face - h_up * 0.005 * height
    eyes = {s: head + face + h_up * 0.018 * height + sign * h_right * 0.026 * height * narrow
            for s, sign in (("l", 1.0), ("r", -1.0))}
    ears = {s: head + h_up * 0.01 * height + sign * h_right * 0.06 * height * narrow
            for s, sign in (("l", 1.0), ("r", -1.0))}

    def limb(start: np.ndarray, side: float, swing: float, bend: float, first: float, second: float):
        down = -up
        d1 = _rotate(down, -side * swing)  # out from hanging, away from the body's midline
        joint = start + d1 * shorten(first)
        end = joint + _rotate(d1, -side * bend) * shorten(second)
        return joint, end

    elbow, wrist, knee, ankle = {}, {}, {}, {}
    for s, side in (("l", 1.0), ("r", -1.0)):
        # rotating "down" by -side * angle turns it towards the figure's own side
        elbow[s], wrist[s] = limb(shoulder[s], -side, rng.uniform(-20.0, 170.0),
                                  rng.uniform(0.0, 150.0) * rng.choice([-1.0, 1.0]), 0.17, 0.15)
        knee[s], ankle[s] = limb(hip[s], -side, rng.uniform(-25.0, 60.0),
                                 -rng.uniform(0.0, 110.0) * rng.choice([-1.0, 1.0]), 0.24, 0.23)
    keypoints = np.array([
        nose, eyes["l"], eyes["r"], ears["l"], ears["r"], shoulder["l"], shoulder["r"],
        elbow["l"], elbow["r"], wrist["l"], wrist["r"], hip["l"], hip["r"],
        knee["l"], knee["r"], ankle["l"], ankle["r"],
    ])
    far_ear = None if abs(yaw) <= 35.0 else (3 if yaw < 0 else 4)  # left ear hidden turning right
    return {
        "keypoints": keypoints, "far_ear": far_ear, "head": head, "radius": radius,
        "torso": np.array([shoulder["l"], shoulder["r"], hip["r"], hip["l"]]),
        "limbs": {
            "l_upper_arm": (shoulder["l"], elbow["l"]), "l_forearm": (elbow["l"], wrist["l"]),
            "r_upper_arm": (shoulder["r"], elbow["r"]), "r_forearm": (elbow["r"], wrist["r"]),
            "l_thigh": (hip["l"], knee["l"]), "l_shin": (knee["l"], ankle["l"]),
            "r_thigh": (hip["r"], knee["r"]), "r_shin": (knee["r"], ankle["r"]),
        },
        "arms_in_front": {s: rng.random() < 0.5 for s in ("l", "r")},
        "eyes": (eyes["l"], eyes["r"]), "nose": nose,
    }


def _colour(rng: np.random.Generator, low: int = 20, high: int = 235) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A gradient, smoothed noise, and random shapes and strokes."""
    t = np.linspace(0.0, 1.0, width)[None, :, None] * rng.uniform(-1, 1) + \
        np.linspace(0.0, 1.0, height)[:, None, None] * rng.uniform(-1, 1)
    t = (t - t.min()) / max(np.ptp(t), 1e-9)
    a, b = np.array(_colour(rng), float), np.array(_colour(rng), float)
    image = a + (b - a) * t
    scale = int(rng.integers(2, 24))
    noise = rng.normal(0.0, rng.uniform(5.0, 30.0), (height // scale + 2, width // scale + 2, 3))
    image += cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 16))):
        kind = rng.integers(0, 4)
        p = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        q = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = _colour(rng, 0, 256)
        if kind == 0:
            cv2.rectangle(image, p, q, colour, -1 if rng.random() < 0.6 else int(rng.integers(1, 5)))
        elif kind == 1:
            cv2.circle(image, p, int(rng.integers(3, max(4, min(width, height) // 4))), colour, -1)
        else:  # strokes, some limb-like
            cv2.line(image, p, q, colour, int(rng.integers(1, 12)), cv2.LINE_AA)
    return image


def _point(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]) * 16)), int(round(float(p[1]) * 16))  # 4 fractional bits


def _draw_figure(image: np.ndarray, ids: np.ndarray, fig: dict, figure_index: int,
                 rng: np.random.Generator, height: float) -> None:
    """Draw one figure on ``image`` and label its parts in ``ids`` (back to front)."""
    shirt, trousers, skin = _colour(rng), _colour(rng), _colour(rng, 60, 240)
    sleeves = shirt if rng.random() < 0.5 else skin
    width = {"arm": max(2, int(height * rng.uniform(0.045, 0.075))),
             "leg": max(2, int(height * rng.uniform(0.06, 0.09)))}
    base = 1 + figure_index * len(PARTS)

    def stroke(part: str, colour, thickness: int) -> None:
        a, b = (_point(p) for p in fig["limbs"][part])
        cv2.line(image, a, b, colour, thickness, cv2.LINE_AA, shift=4)
        cv2.line(ids, a, b, base + _P[part], thickness, cv2.LINE_8, shift=4)

    def arm(s: str) -> None:
        stroke(f"{s}_upper_arm", sleeves, width["arm"])
        stroke(f"{s}_forearm", skin, max(2, width["arm"] - 1))

    for s in ("l", "r"):
        if not fig["arms_in_front"][s]:
            arm(s)
    for s in ("l", "r"):
        stroke(f"{s}_thigh", trousers, width["leg"])
        stroke(f"{s}_shin", trousers, max(2, width["leg"] - 1))
    torso = np.array([_point(p) for p in fig["torso"]], dtype=np.int32)
    cv2.fillConvexPoly(image, torso, shirt, cv2.LINE_AA, shift=4)
    cv2.fillConvexPoly(ids, torso, base + _P["torso"], cv2.LINE_8, shift=4)
    for s in ("l", "r"):
        if fig["arms_in_front"][s]:
            arm(s)
    centre, r16 = _point(fig["head"]), int(round(fig["radius"] * 16))
    cv2.circle(image, centre, r16, skin, -1, cv2.LINE_AA, shift=4)
    cv2.circle(ids, centre, r16, base + _P["head"], -1, cv2.LINE_8, shift=4)
    dot = max(1, int(round(fig["radius"] * 0.18 * 16)))
    for eye in fig["eyes"]:
        cv2.circle(image, _point(eye), dot, (30, 30, 30), -1, cv2.LINE_AA, shift=4)
    cv2.circle(image, _point(fig["nose"]), dot, (40, 40, 160), -1, cv2.LINE_AA, shift=4)


def _visibility(ids: np.ndarray, fig: dict, figure_index: int) -> np.ndarray:
    """COCO flags (17,) of a figure from the final id map."""
    height, width = ids.shape
    base = 1 + figure_index * len(PARTS)
    flags = np.zeros(17, dtype=np.int64)
    for k, (x, y) in enumerate(fig["keypoints"]):
        # a keypoint is in the image when its pixel is: [-0.5, W - 0.5) x [-0.5, H - 0.5)
        col, row = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
        if not (0 <= col < width and 0 <= row < height):
            continue
        on_top = int(ids[row, col])
        own = {base + _P[p] for p in _OWN_PARTS[k]}
        flags[k] = 2 if on_top in own and k != fig["far_ear"] else 1
    return flags


def draw_image(seed: int, split: str, index: int) -> tuple[np.ndarray, list[dict]]:
    """Image ``index`` of a split: the BGR picture and its persons.

    Returns (image (H, W, 3) uint8, persons): per person ``keypoints`` (17, 3) float64 (x, y,
    v) as COCO writes them (v = 0 entries at (0, 0)), ``bbox`` [x, y, w, h] and ``area`` of its
    visible pixels; persons left with no visible pixel are dropped.
    """
    bits = np.random.Philox(key=np.array([seed, SPLIT_OFFSETS[split] + index], dtype=np.uint64))
    rng = np.random.Generator(bits)
    width, height = (int(v) for v in rng.integers(IMAGE_SIDES[0], IMAGE_SIDES[1] + 1, 2))
    image = _background(rng, width, height)
    ids = np.zeros((height, width), dtype=np.int32)
    count = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
    figures = []
    for f in range(count):
        h = height * rng.uniform(0.4, 0.9)
        pelvis = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.45, 0.8) * height])
        fig = _figure(rng, pelvis, h)
        _draw_figure(image, ids, fig, f, rng, h)
        figures.append(fig)
    persons = []
    for f, fig in enumerate(figures):
        base = 1 + f * len(PARTS)
        mask = (ids >= base) & (ids < base + len(PARTS))
        area = int(mask.sum())
        if area == 0:
            continue
        rows, cols = np.nonzero(mask)
        x0, y0 = int(cols.min()), int(rows.min())
        flags = _visibility(ids, fig, f)
        kp = np.zeros((17, 3))
        kp[flags > 0, :2] = fig["keypoints"][flags > 0]
        kp[:, 2] = flags
        persons.append({
            "keypoints": kp,
            "bbox": [float(x0), float(y0), float(cols.max() - x0 + 1), float(rows.max() - y0 + 1)],
            "area": float(area),
        })
    return image, persons


def _category() -> dict:
    meta = load_metadata("coco")
    names = list(meta.keypoint_names)
    return {
        "id": 1, "name": "person", "supercategory": "person", "keypoints": names,
        "skeleton": [[i + 1, j + 1] for i, j in meta.skeleton],  # COCO: 1-based
    }


def _write_split(root: Path, split: str, count: int, seed: int, progress: bool) -> tuple[Path, int]:
    from tqdm import tqdm

    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in tqdm(range(count), desc=f"{split} images", disable=not progress, leave=False):
        image_id = SPLIT_OFFSETS[split] + i + 1
        picture, persons = draw_image(seed, split, i)
        name = f"{image_id:012d}.jpg"
        ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR array
            raise RuntimeError(f"{folder / name}: JPEG encoding failed")
        (folder / name).write_bytes(data.tobytes())
        images.append({"id": image_id, "file_name": name, "width": picture.shape[1],
                       "height": picture.shape[0]})
        for person in persons:
            kp = person["keypoints"]
            annotations.append({
                "id": len(annotations) + 1 + SPLIT_OFFSETS[split] * 10,
                "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "bbox": person["bbox"], "area": person["area"],
                "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                "num_keypoints": int((kp[:, 2] > 0).sum()),
            })
    ann = root / "annotations" / f"person_keypoints_{split}.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"info": {"description": f"darkpose synthetic people, seed {seed}"},
                       "images": images, "annotations": annotations, "categories": [_category()]},
                      sort_keys=True, separators=(",", ":"))
    ann.write_text(text, encoding="utf-8")
    return ann, len(annotations)


def make_synthetic_dataset(root: str | Path, num_train: int, num_val: int, seed: int = 0,
                           *, overwrite: bool = False, progress: bool = False) -> SyntheticSummary:
    """Write a synthetic COCO-format keypoint dataset under ``root`` (see the module
    docstring for the layout and the body model).

    ``root`` must not exist or be empty, unless ``overwrite`` (then the files of this
    layout are replaced; nothing else in the folder is touched). Counts are integers >= 0
    (at least one image in all); ``seed`` an integer in [0, 2**63).
    """
    root = Path(root)
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
    if num_train + num_val == 0:
        raise ValueError("num_train, num_val: expected at least one image in all, got 0 and 0")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"seed: expected an integer in [0, 2**63), got {seed!r}")
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root}: exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise FileExistsError(f"{root}: the folder is not empty; give another folder, or "
                              "--overwrite to replace the synthetic dataset in it")
    files, persons, images = {}, {}, {}
    for split, count in (("train", int(num_train)), ("val", int(num_val))):
        files[split], persons[split] = _write_split(root, split, count, int(seed), progress)
        images[split] = count
    return SyntheticSummary(root, images, persons, files)
