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
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from darkpose.evaluation.nms import oks_nms, soft_oks_nms

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
    list of {"image_id", "category_id", "keypoints" (3K floats), "score"}
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[2] != 3:
        raise ValueError(f"keypoints must be (N, K, 3), got shape {keypoints.shape}")
    n = len(keypoints)
    image_ids = np.asarray(image_ids).reshape(n)
    box_scores = np.ones(n) if box_scores is None else np.asarray(box_scores, float).reshape(n)
    scores = rescore(keypoints, box_scores, in_vis_thre) if rescoring else box_scores
    if nms not in ("oks", "soft", "none"):
        raise ValueError(f"nms must be 'oks', 'soft' or 'none', got {nms!r}")
    if nms != "none":
        if areas is None:
            raise ValueError("areas are required for OKS NMS")
        areas = np.asarray(areas, dtype=np.float64).reshape(n)
    by_image: dict[int, list[int]] = defaultdict(list)
    for i, img in enumerate(image_ids.tolist()):
        by_image[int(img)].append(i)
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
                    "keypoints": [float(v) for v in keypoints[i].reshape(-1)],
                    "score": float(scores[i]),
                }
            )
    return results


def load_coco_gt(ann, quiet: bool = True):
    """A ``pycocotools.coco.COCO`` of an annotation file (returned as is if already one);
    a missing file or malformed JSON raises an error naming the file."""
    from pycocotools.coco import COCO

    if not isinstance(ann, str | Path):
        return ann
    path = Path(ann)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        entries = data.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError(f"{path}: '{key}' must be a list of objects, got {type(entries).__name__}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
    return coco


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
    sigmas : (K,) OKS sigmas, default COCO's (needed for datasets with K != 17)
    quiet : bool
        Swallow pycocotools' printing.

    Returns
    -------
    dict with the ten stats of :data:`STATS_NAMES` (AP, AP50, AP75, APm, APl, AR, ...).
    """
    from pycocotools.cocoeval import COCOeval

    if results_file is not None:
        results_file = Path(results_file)
        if results_file.exists() and not overwrite:
            raise FileExistsError(
                f"results file exists: {results_file} (pass overwrite=True to replace it)"
            )
    gt = load_coco_gt(ann, quiet)
    if not results:
        logger.warning("no predictions to evaluate: every stat is 0")
        return dict.fromkeys(STATS_NAMES, 0.0)
    unknown = {r["image_id"] for r in results} - set(gt.getImgIds())
    if unknown:
        some = sorted(unknown)[:5]
        raise ValueError(
            f"{len(unknown)} predicted image ids are not in the annotations (e.g. {some})"
        )
    with contextlib.ExitStack() as stack:
        if results_file is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="darkpose-eval-"))
            path = Path(tmp) / "keypoint_results.json"
        else:
            path = results_file
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(results, f)
        out = io.StringIO()
        with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
            dt = gt.loadRes(str(path))
            ev = COCOeval(gt, dt, "keypoints")
            ev.params.useSegm = None
            if sigmas is not None:
                ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
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
