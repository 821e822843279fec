"""COCO keypoint AP through pycocotools, with the reference post-processing.

Pipeline (DESIGN.md section 4): per person candidate, rescore = box score x mean of the
keypoint scores above ``in_vis_thre`` (0.2; 0 when none is); then OKS NMS (or soft OKS
NMS) at 0.9 per image with the areas (200 s_w)(200 s_h); then pycocotools ``COCOeval``
with iouType "keypoints". AP itself is never re-implemented here.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import numbers
import reprlib
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from darkpose.evaluation.nms import check_finite, check_sigmas, oks_nms, soft_oks_nms

logger = logging.getLogger(__name__)

STATS_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
"""Names of the ten numbers of ``COCOeval.stats`` for keypoints, in order."""


def rescore(keypoints: np.ndarray, box_scores: np.ndarray, in_vis_thre: float = 0.2) -> np.ndarray:
    """Box score x mean of the keypoint scores above ``in_vis_thre`` (0 when none is).

    keypoints (N, K, 3) with scores last, box_scores (N,) -> (N,) float64
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    s = keypoints[:, :, 2]
    above = s > in_vis_thre
    count = above.sum(axis=1)
    total = np.where(above, s, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return mean * np.asarray(box_scores, dtype=np.float64).reshape(-1)


def _per_prediction(values, n: int, name: str, dtype=None) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.size != n:
        raise ValueError(f"{name} must have one value per prediction ({n}), got shape {arr.shape}")
    return arr.reshape(n)


def keypoint_results(
    keypoints: np.ndarray,
    image_ids: np.ndarray,
    box_scores: np.ndarray | None = None,
    areas: np.ndarray | None = None,
    *,
    category_id: int = 1,
    in_vis_thre: float = 0.2,
    nms: str = "oks",
    oks_thre: float = 0.9,
    sigmas: np.ndarray | None = None,
    rescoring: bool = True,
) -> list[dict[str, Any]]:
    """Predictions -> COCO results (list of dicts), rescored and OKS-NMSed per image.

    Parameters
    ----------
    keypoints : (N, K, 3) array
        (x, y, score) in image pixels.
    image_ids : (N,) int array
    box_scores : (N,) array, default ones
    areas : (N,) array
        Areas for OKS NMS, (200 s_w)(200 s_h) (see :func:`darkpose.geometry.area_from_scale`);
        required unless ``nms="none"``.
    category_id : int
    in_vis_thre : float
        Keypoint score threshold of the rescoring (reference ``IN_VIS_THRE``, 0.2).
    nms : {"oks", "soft", "none"}
    oks_thre : float
        NMS threshold (reference ``OKS_THRE``, 0.9).
    sigmas : (K,) OKS sigmas for NMS, default COCO's
    rescoring : bool
        Multiply in the mean keypoint score (else the box score is the score).

    Returns
    -------
    list of {"image_id", "category_id", "keypoints" (3K floats), "score"}, plain Python
    numbers; per image (in order of first appearance) the kept poses best first.

    Raises
    ------
    ValueError
        Arrays of the wrong length, or a prediction whose keypoints, box score or area is
        not finite (an area also when negative): the message names the prediction's index
        and image id.
    TypeError
        Image ids that are not integers.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[2] != 3:
        raise ValueError(f"keypoints must be (N, K, 3), got shape {keypoints.shape}")
    n, k = keypoints.shape[:2]
    if nms not in ("oks", "soft", "none"):
        raise ValueError(f"nms must be 'oks', 'soft' or 'none', got {nms!r}")
    image_ids = _per_prediction(image_ids, n, "image_ids")
    if n and image_ids.dtype.kind not in "iu":
        raise TypeError(f"image_ids must be integers, got dtype {image_ids.dtype}")
    box_scores = np.ones(n) if box_scores is None else _per_prediction(
        box_scores, n, "box_scores", np.float64
    )

    def label(i: int) -> str:
        return f"prediction {i} (image id {image_ids[i]})"

    check_finite("keypoints", keypoints, label)
    check_finite("box score", box_scores, label)
    if nms != "none":
        if areas is None:
            raise ValueError("areas are required for OKS NMS")
        areas = _per_prediction(areas, n, "areas", np.float64)
        check_finite("area", areas, label, nonnegative=True)
        sigmas = check_sigmas(sigmas, k)
    scores = rescore(keypoints, box_scores, in_vis_thre) if rescoring else box_scores
    by_image: dict[int, list[int]] = defaultdict(list)
    for i, img in enumerate(image_ids.tolist()):
        by_image[img].append(i)
    results = []
    for img, idx in by_image.items():
        idx_a = np.asarray(idx)
        if nms == "none":
            kept = idx_a
        else:
            suppress = oks_nms if nms == "oks" else soft_oks_nms
            kept = idx_a[
                suppress(keypoints[idx_a], scores[idx_a], areas[idx_a], oks_thre, sigmas)  # type: ignore[index]
            ]
        for i in kept:
            results.append(
                {
                    "image_id": img,
                    "category_id": int(category_id),
                    "keypoints": keypoints[i].reshape(-1).tolist(),
                    "score": float(scores[i]),
                }
            )
    return results


# -- checks of annotation files and results (what COCOeval reads) -------------------------


def _integer(entry: dict, field: str, where: str) -> int:
    if field not in entry:
        raise ValueError(f"{where}: missing field {field!r}, expected an integer")
    v = entry[field]
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{where}: field {field!r} must be an integer, got {v!r}")
    return int(v)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _real(entry: dict, field: str, where: str) -> float:
    if field not in entry:
        raise ValueError(f"{where}: missing field {field!r}, expected a finite number")
    v = entry[field]
    if not _is_real(v):
        raise ValueError(f"{where}: field {field!r} must be a finite number, got {v!r}")
    return float(v)


def _reals(entry: dict, field: str, where: str, count: int | None, expected: str) -> list[float]:
    """entry[field]: a list of finite numbers, ``count`` of them unless None."""
    if field not in entry:
        raise ValueError(f"{where}: missing field {field!r}, expected {expected}")
    v = entry[field]
    if not isinstance(v, list | tuple | np.ndarray) or not all(_is_real(x) for x in v):
        raise ValueError(f"{where}: field {field!r} must be {expected}, got {reprlib.repr(v)}")
    if count is not None and len(v) != count:
        raise ValueError(f"{where}: field {field!r} has {len(v)} values, expected {expected}")
    return [float(x) for x in v]


def _check_ground_truth(data: Any, where: str) -> int:
    """Check what COCOeval reads of a keypoint annotation file; the number of keypoints K."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{where}: missing field {key!r} (a list of objects)")
        entries = data[key]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError(f"{where}: '{key}' must be a list of objects, got {type(entries).__name__}")
    if not data["annotations"]:
        raise ValueError(f"{where}: no annotations to evaluate against")
    image_ids = {_integer(e, "id", f"{where}: images[{i}]") for i, e in enumerate(data["images"])}
    k, k_source = None, ""
    cat_ids = set()
    for i, c in enumerate(data["categories"]):
        cid = _integer(c, "id", f"{where}: categories[{i}]")
        cat_ids.add(cid)
        names = c.get("keypoints")
        if names is None:
            continue
        if not isinstance(names, list) or (k is not None and len(names) != k):
            raise ValueError(
                f"{where}: categories[{i}] (id {cid}): field 'keypoints' must be a list of "
                f"{k if k is not None else 'K'} keypoint names{k_source}, got {reprlib.repr(names)}"
            )
        k, k_source = len(names), f" of category {cid}"
    seen = set()
    for i, a in enumerate(data["annotations"]):
        aid = _integer(a, "id", f"{where}: annotations[{i}]")
        at = f"{where}: annotations[{i}] (id {aid})"
        if aid in seen:
            raise ValueError(f"{at}: duplicate annotation id")
        seen.add(aid)
        if (img := _integer(a, "image_id", at)) not in image_ids:
            raise ValueError(f"{at}: image_id {img} is not in 'images'")
        if (cat := _integer(a, "category_id", at)) not in cat_ids:
            raise ValueError(f"{at}: category_id {cat} is not in 'categories'")
        if k is None:
            kp = _reals(a, "keypoints", at, None, "finite numbers, 3 per keypoint")
            if not kp or len(kp) % 3:
                raise ValueError(f"{at}: field 'keypoints' has {len(kp)} values, expected 3 per keypoint")
            k, k_source = len(kp) // 3, f" as annotations[{i}]"
        _reals(a, "keypoints", at, 3 * k, f"{3 * k} finite numbers (3 x {k} keypoints{k_source})")
        _reals(a, "bbox", at, 4, "4 finite numbers (x, y, w, h)")
        _real(a, "area", at)
        _integer(a, "num_keypoints", at)
        _integer(a, "iscrowd", at)
    return k  # type: ignore[return-value]


def _check_results(results: Any, k: int, gt) -> list[dict[str, Any]]:
    """Results as plain Python numbers, checked against the ground truth's images,
    categories and keypoint count."""
    fields = "'image_id', 'category_id', 'keypoints', 'score'"
    if not isinstance(results, list | tuple):
        raise TypeError(f"results must be a list of dicts with {fields}, got {type(results).__name__}")
    cat_ids = set(gt.getCatIds())
    clean, unknown = [], set()
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise ValueError(f"results[{i}]: expected a dict with {fields}, got {type(r).__name__}")
        img = _integer(r, "image_id", f"results[{i}]")
        at = f"results[{i}] (image id {img})"
        cat = _integer(r, "category_id", at)
        if cat not in cat_ids:
            raise ValueError(f"{at}: category_id {cat} is not a category of the ground truth {sorted(cat_ids)}")
        kp = _reals(r, "keypoints", at, 3 * k, f"{3 * k} finite numbers (x, y, score x {k} keypoints)")
        clean.append({"image_id": img, "category_id": cat, "keypoints": kp, "score": _real(r, "score", at)})
        if img not in gt.imgs:
            unknown.add(img)
    if unknown:
        some = sorted(unknown)[:5]
        raise ValueError(f"{len(unknown)} predicted image ids are not in the annotations (e.g. {some})")
    return clean


def _ground_truth(ann, quiet: bool):
    """(COCO, K, name for messages) of an annotation file or a ``COCO``, checked."""
    from pycocotools.coco import COCO

    if not isinstance(ann, str | Path):
        return ann, _check_ground_truth(ann.dataset, "ground truth"), "the ground truth"
    path = Path(ann)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    k = _check_ground_truth(data, str(path))
    out = io.StringIO()
    with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
    return coco, k, str(path)


def load_coco_gt(ann, quiet: bool = True):
    """A ``pycocotools.coco.COCO`` of a keypoint annotation file (returned as is if already
    one). A missing file, malformed JSON, or anything COCOeval reads missing or malformed
    (ids, categories, keypoint arrays of one length, bbox, area, num_keypoints, iscrowd)
    raises an error naming the file, the entry and the field."""
    return _ground_truth(ann, quiet)[0]


def evaluate_coco(
    results: list[dict[str, Any]],
    ann,
    *,
    results_file: str | Path | None = None,
    overwrite: bool = False,
    sigmas: np.ndarray | None = None,
    quiet: bool = True,
) -> dict[str, float]:
    """COCO keypoint AP/AR of results with pycocotools ``COCOeval`` (iouType "keypoints").

    Parameters
    ----------
    results : list of {"image_id", "category_id", "keypoints", "score"} (COCO results)
    ann : path to the ground-truth annotation file, or a ``pycocotools.coco.COCO``
    results_file : path or None
        Where to write the results JSON (kept); None writes to a temporary folder.
    overwrite : bool
        Allow replacing an existing ``results_file``.
    sigmas : (K,) OKS sigmas, default COCO's (pycocotools' table; required for K != 17)
    quiet : bool
        Swallow pycocotools' printing.

    Returns
    -------
    dict with the ten stats of :data:`STATS_NAMES` (AP, AP50, AP75, APm, APl, AR, ...).

    Raises
    ------
    ValueError
        A result without one of the four fields, with keypoints of the wrong length or
        not finite, a score not finite, an image or category not in the ground truth
        (the message names ``results[i]`` and its image id); ground truth that COCOeval
        cannot read (see :func:`load_coco_gt`); sigmas of the wrong length.
    """
    from pycocotools.cocoeval import COCOeval, Params

    if results_file is not None:
        results_file = Path(results_file)
        if results_file.exists() and not overwrite:
            raise FileExistsError(
                f"results file exists: {results_file} (pass overwrite=True to replace it)"
            )
    gt, k, where = _ground_truth(ann, quiet)
    if sigmas is not None:
        sigmas = check_sigmas(sigmas, k, where)
    elif k != len(Params("keypoints").kpt_oks_sigmas):  # pycocotools' table: COCO's 17
        raise ValueError(
            f"{where} has {k} keypoints per annotation: pass sigmas (one per keypoint); "
            "the default is COCO's 17"
        )
    clean = _check_results(results, k, gt)
    if not clean:
        logger.warning("no predictions to evaluate: every stat is 0")
        return dict.fromkeys(STATS_NAMES, 0.0)
    with contextlib.ExitStack() as stack:
        if results_file is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="darkpose-eval-"))
            path = Path(tmp) / "keypoint_results.json"
        else:
            path = results_file
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(clean, f, allow_nan=False)
        out = io.StringIO()
        with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
            dt = gt.loadRes(str(path))
            ev = COCOeval(gt, dt, "keypoints")
            ev.params.useSegm = None
            if sigmas is not None:
                ev.params.kpt_oks_sigmas = sigmas
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
    return {name: float(v) for name, v in zip(STATS_NAMES, ev.stats, strict=True)}


def ground_truth_results(ann, category_id: int | None = None) -> list[dict[str, Any]]:
    """The ground truth itself in the results format (every keypoint score 1, score 1):
    non-crowd annotations with at least one labelled keypoint. A sanity check of the
    evaluation: these score AP = 1.0.
    """
    if isinstance(ann, str | Path):
        with open(ann, encoding="utf-8") as f:
            raw = json.load(f)
        anns = raw["annotations"]
    else:
        anns = list(ann.anns.values())
    out = []
    for a in anns:
        if category_id is not None and a.get("category_id") != category_id:
            continue
        kp = np.asarray(a.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        if a.get("iscrowd", 0) or not (kp[:, 2] > 0).any():
            continue
        kp[:, 2] = 1.0
        out.append(
            {
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "keypoints": kp.reshape(-1).tolist(),
                "score": 1.0,
            }
        )
    return out
