"""COCO-format keypoint datasets: COCO itself or any dataset described by a metadata file.

The annotation file is the COCO keypoints format (``images``, ``annotations``,
``categories``); the person boxes come either from the ground truth or from a detection
results file (COCO results format: a list of ``{"image_id", "bbox", "score",
"category_id"}``) filtered by a score threshold.

Ground-truth instances follow the reference loader: crowd annotations and annotations
without a labelled keypoint are left out; boxes are clipped to the image; annotations with
zero area or a degenerate box are skipped and counted in the log. Detection boxes are used
as given (not clipped), as in the reference.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from darkpose.data._io import read_json, require_field
from darkpose.data.base import TopDownDataset, open_annotations
from darkpose.data.keypoint_metadata import KeypointMetadata
from darkpose.geometry import area_from_scale, boxes_to_center_scale, clean_boxes

logger = logging.getLogger(__name__)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _read_images(raw: dict, where: str) -> dict[int, tuple[str, float, float]]:
    images = require_field(raw, "images", list, where)
    out: dict[int, tuple[str, float, float]] = {}
    for i, img in enumerate(images):
        rec = f"{where}: images[{i}]"
        img_id = require_field(img, "id", int, rec)
        name = require_field(img, "file_name", str, rec)
        width = require_field(img, "width", int | float, rec)
        height = require_field(img, "height", int | float, rec)
        out[img_id] = (name, float(width), float(height))
    return out


def _keypoint_category(
    raw: dict, where: str, num_keypoints: int, category_id: int | None, required: bool
) -> int:
    """The id of the category whose annotations carry keypoints."""
    cats = raw.get("categories")
    if cats is None:
        if required:
            raise ValueError(f"{where}: missing field 'categories'")
        return 1 if category_id is None else category_id
    if not isinstance(cats, list):
        raise ValueError(f"{where}: field 'categories' must be list")
    with_kpts = [c for c in cats if isinstance(c, dict) and "keypoints" in c]
    if category_id is not None:
        chosen = [c for c in cats if isinstance(c, dict) and c.get("id") == category_id]
        if not chosen:
            raise ValueError(f"{where}: no category with id {category_id} in 'categories'")
        cat = chosen[0]
    elif any(c.get("id") == 1 for c in with_kpts):
        cat = next(c for c in with_kpts if c.get("id") == 1)
    elif with_kpts:
        cat = with_kpts[0]
    else:
        if required:
            raise ValueError(f"{where}: no category in 'categories' has a 'keypoints' field")
        return 1
    names = cat.get("keypoints")
    if names is not None and len(names) != num_keypoints:
        raise ValueError(
            f"{where}: category {cat.get('id')!r} lists {len(names)} keypoints, "
            f"the metadata has {num_keypoints}"
        )
    return int(cat.get("id", 1))


class CocoKeypointDataset(TopDownDataset):
    """Person instances of a COCO-format keypoint annotation file.

    Parameters
    ----------
    ann_file : path
        ``person_keypoints_*.json`` or any COCO-format keypoint file.
    image_dir : path
        Folder of the images (``file_name`` is relative to it).
    metadata : "coco", "mpii", a metadata file path or :class:`KeypointMetadata`
    image_size : (W, H)
        Network input size; boxes are padded to its aspect ratio.
    convention : {"darkpose", "hrnet"}
    detections : path or None
        A detection results JSON to take the person boxes from instead of the ground
        truth; keypoints are then zeros.
    det_score_threshold : float
        Keep detections with score >= this (the reference ``IMAGE_THRE``, 0.0).
    category_id : int or None
        The keypoint category (default: id 1 if it has keypoints, else the first that does).
    transform, color, seed
        As in :class:`TopDownDataset`.

    Attributes
    ----------
    ann_file : Path
    category_id : int
    num_skipped_degenerate : int
        Annotations or detections skipped for a zero-area or degenerate box.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        metadata: str | Path | KeypointMetadata = "coco",
        image_size: tuple[int, int] = (192, 256),
        convention: str = "darkpose",
        detections: str | Path | None = None,
        det_score_threshold: float = 0.0,
        category_id: int | None = None,
        transform=None,
        color: str = "rgb",
        seed: int = 0,
    ) -> None:
        meta, self.ann_file, image_dir, raw = open_annotations(
            ann_file, image_dir, metadata, transform, image_size, convention
        )
        k = meta.num_keypoints
        where = str(self.ann_file)
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected a JSON object with 'images', 'annotations', "
                             f"'categories', got {type(raw).__name__}")
        images = _read_images(raw, where)
        self.category_id = _keypoint_category(
            raw, where, k, category_id, required=detections is None
        )
        if detections is None:
            rows = self._ground_truth_rows(raw, where, images, k)
        else:
            rows = self._detection_rows(Path(detections), images, det_score_threshold, k)
        image_ids, ann_ids, boxes, kpts, areas, scores = rows
        n = len(image_ids)
        sizes = np.array([images[i][1:] for i in image_ids], dtype=np.float64).reshape(n, 2)
        if detections is None:
            boxes, valid = clean_boxes(boxes, sizes, convention)  # type: ignore[arg-type]
            valid &= areas > 0
        else:
            valid = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        self.num_skipped_degenerate = int((~valid).sum())
        if self.num_skipped_degenerate:
            what = "annotations" if detections is None else f"detections in {detections}"
            logger.warning(
                "%s: skipped %d %s with a zero-area or degenerate box",
                where, self.num_skipped_degenerate, what,
            )
        image_ids, ann_ids, boxes = image_ids[valid], ann_ids[valid], boxes[valid]
        kpts, areas, scores = kpts[valid], areas[valid], scores[valid]
        centers, scales = boxes_to_center_scale(
            boxes, image_size[0] / image_size[1], convention=convention  # type: ignore[arg-type]
        )
        if detections is not None:
            areas = area_from_scale(scales)
        self.image_size = tuple(image_size)
        self.convention = convention
        super().__init__(
            image_paths=[image_dir / images[i][0] for i in image_ids],
            image_ids=image_ids,
            annotation_ids=ann_ids,
            boxes=boxes,
            centers=centers,
            scales=scales,
            keypoints=kpts,
            areas=areas,
            scores=scores,
            metadata=meta,
            transform=transform,
            color=color,
            seed=seed,
        )
        logger.info("%s: %d person instances", where, len(self))

    def _ground_truth_rows(self, raw, where, images, k):
        anns = require_field(raw, "annotations", list, where)
        image_ids, ann_ids, boxes, kpts, areas = [], [], [], [], []
        num_crowd = num_unlabelled = 0
        for i, ann in enumerate(anns):
            if not isinstance(ann, dict):
                raise ValueError(f"{where}: annotations[{i}] is not a JSON object")
            if ann.get("category_id") != self.category_id:
                continue
            ann_id = ann.get("id", i)
            rec = f"{where}: annotation id {ann_id}"
            if ann.get("iscrowd", 0):
                num_crowd += 1
                continue
            img_id = require_field(ann, "image_id", int, rec)
            if img_id not in images:
                raise ValueError(f"{rec}: image_id {img_id} is not in 'images'")
            bbox = require_field(ann, "bbox", list, rec)
            if len(bbox) != 4 or not all(_is_number(v) for v in bbox):
                raise ValueError(f"{rec}: 'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}")
            kp = require_field(ann, "keypoints", list, rec)
            if len(kp) != 3 * k:
                raise ValueError(
                    f"{rec}: 'keypoints' has {len(kp)} values, expected {3 * k} "
                    f"({k} keypoints x (x, y, v))"
                )
            if not all(_is_number(v) for v in kp):
                raise ValueError(f"{rec}: 'keypoints' must be numbers")
            if not any(v > 0 for v in kp[2::3]):
                num_unlabelled += 1
                continue
            area = ann.get("area", bbox[2] * bbox[3])
            if not _is_number(area) or not math.isfinite(area):
                raise ValueError(f"{rec}: 'area' must be a number, got {area!r}")
            image_ids.append(img_id)
            ann_ids.append(int(ann_id))
            boxes.append(bbox)
            kpts.append(kp)
            areas.append(area)
        logger.info(
            "%s: left out %d crowd annotations and %d without labelled keypoints",
            where, num_crowd, num_unlabelled,
        )
        n = len(image_ids)
        return (
            np.asarray(image_ids, dtype=np.int64),
            np.asarray(ann_ids, dtype=np.int64),
            np.asarray(boxes, dtype=np.float64).reshape(n, 4),
            np.asarray(kpts, dtype=np.float64).reshape(n, k, 3),
            np.asarray(areas, dtype=np.float64).reshape(n),
            np.ones(n),
        )

    def _detection_rows(self, path: Path, images, threshold: float, k: int):
        dets = read_json(path, "detection results file")
        where = str(path)
        if not isinstance(dets, list):
            raise ValueError(
                f"{where}: expected a JSON list of detections, got {type(dets).__name__}"
            )
        image_ids, boxes, scores = [], [], []
        num_other_images = num_low = 0
        for i, det in enumerate(dets):
            rec = f"{where}: detection [{i}]"
            if not isinstance(det, dict):
                raise ValueError(f"{rec} is not a JSON object")
            if "category_id" in det and det["category_id"] != self.category_id:
                continue
            img_id = require_field(det, "image_id", int, rec)
            bbox = require_field(det, "bbox", list, rec)
            if len(bbox) != 4 or not all(_is_number(v) for v in bbox):
                raise ValueError(f"{rec}: 'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}")
            score = require_field(det, "score", int | float, rec)
            if score < threshold:
                num_low += 1
                continue
            if img_id not in images:
                num_other_images += 1
                continue
            image_ids.append(img_id)
            boxes.append(bbox)
            scores.append(float(score))
        if num_other_images:
            logger.warning(
                "%s: skipped %d detections of images not in %s",
                where, num_other_images, self.ann_file,
            )
        logger.info("%s: %d detections below score %g left out", where, num_low, threshold)
        n = len(image_ids)
        return (
            np.asarray(image_ids, dtype=np.int64),
            -np.ones(n, dtype=np.int64),
            np.asarray(boxes, dtype=np.float64).reshape(n, 4),
            np.zeros((n, k, 3)),
            np.zeros(n),
            np.asarray(scores, dtype=np.float64).reshape(n),
        )
