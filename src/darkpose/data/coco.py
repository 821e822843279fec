"""COCO-format keypoint datasets: COCO itself or any dataset described by a metadata file.

The annotation file is the COCO keypoints format (``images``, ``annotations``,
``categories``); the person boxes come either from the ground truth or from a detection
results file (COCO results format: a list of ``{"image_id", "bbox", "score",
"category_id"}``) filtered by a score threshold.

Ground-truth instances follow the reference loader: crowd annotations and annotations
without a labelled keypoint are left out; boxes are clipped to the image; annotations with
zero area or a degenerate box are skipped and counted in the log. Detection boxes are used
as given (not clipped), as in the reference. Every instance's area, ground truth or
detected, is (200 s_w)(200 s_h), the area the reference's OKS NMS uses; the annotation's
``area`` only decides validity. Values are validated at load: an error names the file, the
record and the field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from darkpose.data._io import (
    read_json,
    require_field,
    require_id,
    require_number,
    require_numbers,
)
from darkpose.data.base import TopDownDataset, open_annotations
from darkpose.data.image import excluded_mask
from darkpose.data.keypoint_metadata import KeypointMetadata
from darkpose.geometry import area_from_scale, boxes_to_center_scale, clean_boxes

logger = logging.getLogger(__name__)


def read_detection_file(
    path: str | Path, category_id: int | None, score_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The detections of a COCO results file: a JSON list of ``{"image_id", "category_id",
    "bbox": [x, y, w, h], "score"}`` (``category_id`` optional).

    Kept, in file order: entries of ``category_id`` (None: any; entries without the field are
    kept) with ``score >= score_threshold``. Returns image_ids (M,) int64, boxes (M, 4)
    float64, scores (M,) float64 and the number left out below the threshold. A file that is
    not a list, or an entry with a missing or wrong field, is a ValueError naming the file
    and the entry's index.
    """
    path = Path(path)
    dets = read_json(path, "detection results file")
    if not isinstance(dets, list):
        raise ValueError(f"{path}: expected a JSON list of detections, got {type(dets).__name__}")
    image_ids, boxes, scores = [], [], []
    num_low = 0
    for i, det in enumerate(dets):
        rec = f"{path}: detection [{i}]"
        if not isinstance(det, dict):
            raise ValueError(f"{rec} is not a JSON object")
        if category_id is not None and "category_id" in det and require_id(det, "category_id", rec) != category_id:
            continue
        image_id = require_id(det, "image_id", rec)
        bbox = require_numbers(det, "bbox", rec, 4, "[x, y, w, h]")
        score = require_number(det, "score", rec)
        if score < score_threshold:
            num_low += 1
            continue
        image_ids.append(image_id)
        boxes.append(bbox)
        scores.append(score)
    n = len(image_ids)
    return (np.asarray(image_ids, dtype=np.int64), np.asarray(boxes, dtype=np.float64).reshape(n, 4),
            np.asarray(scores, dtype=np.float64), num_low)


def _read_images(raw: dict, where: str) -> dict[int, tuple[str, float, float]]:
    """image id -> (file_name, width, height); ids unique, sizes finite and positive."""
    images = require_field(raw, "images", list, where)
    out: dict[int, tuple[str, float, float]] = {}
    for i, img in enumerate(images):
        rec = f"{where}: images[{i}]"
        img_id = require_id(img, "id", rec)
        if img_id in out:
            raise ValueError(f"{rec}: duplicate image id {img_id} (also {out[img_id][0]!r})")
        name = require_field(img, "file_name", str, rec)
        width = require_number(img, "width", rec)
        height = require_number(img, "height", rec)
        if not (width > 0 and height > 0):
            raise ValueError(f"{rec}: 'width' and 'height' must be positive, got {width}x{height}")
        out[img_id] = (name, width, height)
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
    rec = f"{where}: category {cat.get('id')!r}"
    names = cat.get("keypoints")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{rec}: field 'keypoints' must be a list of keypoint names")
        if len(names) != num_keypoints:
            raise ValueError(
                f"{rec} lists {len(names)} keypoints, the metadata has {num_keypoints}"
            )
    return require_id(cat, "id", rec)


class CocoKeypointDataset(TopDownDataset):
    """Person instances of a COCO-format keypoint annotation file.

    Parameters
    ----------
    ann_file : path
        ``person_keypoints_*.json`` or any COCO-format keypoint file.
    image_dir : path
        Folder of the images (``file_name`` is relative to it).
    metadata : "coco", "mpii", a metadata file path or :class:`KeypointMetadata`
    image_size : (W, H) or None
        Network input size; boxes are padded to its aspect ratio. None: the transform's
        (its config is the one home of the crop geometry), or (192, 256) without one.
    convention : {"darkpose", "hrnet"} or None
        None: the transform's, or "darkpose" without one. Values given must agree with
        the transform's.
    detections : path or None
        A detection results JSON to take the person boxes from instead of the ground
        truth; keypoints are then zeros.
    det_score_threshold : float
        Keep detections with score >= this (the reference ``IMAGE_THRE``, 0.0).
    category_id : int or None
        The keypoint category (default: id 1 if it has keypoints, else the first that does).
    exclude_images : iterable of paths
        Images (as in ``image_paths``, e.g. the result of
        :func:`darkpose.data.image.check_images`) whose persons are left out, with a count
        in the log.
    transform, color, seed
        As in :class:`TopDownDataset`.

    Raises
    ------
    ValueError
        Naming the file and the record (``images[i]``, ``annotation id A``,
        ``detection [i]``) and the field: a missing or wrong-typed field, an id that is no
        int64 integer, a duplicate image or annotation id, a box, keypoint, area, size or
        score that is not a finite number, a keypoint list of the wrong length; also when
        no person instance is left.

    Attributes
    ----------
    ann_file : Path
    category_id : int
    image_sizes : (N, 2) float64
        (width, height) of each instance's image from the annotation file; reading an
        image of another size is an error.
    num_skipped_degenerate : int
        Annotations or detections skipped for a zero-area or degenerate box.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        metadata: str | Path | KeypointMetadata = "coco",
        image_size: tuple[int, int] | None = None,
        convention: str | None = None,
        detections: str | Path | None = None,
        det_score_threshold: float = 0.0,
        category_id: int | None = None,
        exclude_images: Iterable[str | Path] = (),
        transform=None,
        color: str = "rgb",
        seed: int = 0,
    ) -> None:
        meta, self.ann_file, image_dir, raw, image_size, convention = open_annotations(
            ann_file, image_dir, metadata, transform, image_size, convention, (192, 256)
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
        image_ids, ann_ids, boxes, kpts, ann_areas, scores = rows
        n = len(image_ids)
        sizes = np.array([images[i][1:] for i in image_ids], dtype=np.float64).reshape(n, 2)
        if detections is None:
            boxes, valid = clean_boxes(boxes, sizes, convention)  # type: ignore[arg-type]
            valid &= ann_areas > 0
        else:
            _, valid = clean_boxes(boxes, sizes, convention)  # type: ignore[arg-type]  # used unclipped
        self.num_skipped_degenerate = int((~valid).sum())
        if self.num_skipped_degenerate:
            what = "annotations" if detections is None else f"detections in {detections}"
            logger.warning(
                "%s: skipped %d %s with a zero-area or degenerate box",
                where, self.num_skipped_degenerate, what,
            )
        paths = [image_dir / images[i][0] for i in image_ids]
        excluded = excluded_mask(paths, exclude_images, where) & valid
        valid &= ~excluded
        if not valid.any():
            if detections is None:
                kind = f"non-crowd annotations of category {self.category_id} with a labelled keypoint"
            else:
                kind = f"detections in {detections} with score >= {det_score_threshold:g}"
            raise ValueError(
                f"{where}: no person instances: {n} {kind}, {self.num_skipped_degenerate} of "
                f"them with a degenerate box, {int(excluded.sum())} in excluded images"
            )
        image_ids, ann_ids, boxes = image_ids[valid], ann_ids[valid], boxes[valid]
        kpts, scores, sizes = kpts[valid], scores[valid], sizes[valid]
        centers, scales = boxes_to_center_scale(
            boxes, image_size[0] / image_size[1], convention=convention  # type: ignore[arg-type]
        )
        self.image_size = tuple(image_size)
        self.convention = convention
        super().__init__(
            image_paths=[p for p, v in zip(paths, valid, strict=True) if v],
            image_ids=image_ids,
            annotation_ids=ann_ids,
            boxes=boxes,
            centers=centers,
            scales=scales,
            keypoints=kpts,
            areas=area_from_scale(scales),  # as the reference's OKS NMS, GT or detection
            scores=scores,
            metadata=meta,
            transform=transform,
            color=color,
            seed=seed,
            image_sizes=sizes,
        )
        logger.info("%s: %d person instances", where, len(self))

    def _ground_truth_rows(self, raw, where, images, k):
        anns = require_field(raw, "annotations", list, where)
        image_ids, ann_ids, boxes, kpts, areas = [], [], [], [], []
        seen: set[int] = set()
        num_crowd = num_unlabelled = 0
        for i, ann in enumerate(anns):
            if not isinstance(ann, dict):
                raise ValueError(f"{where}: annotations[{i}] is not a JSON object")
            ann_id = require_id(ann, "id", f"{where}: annotations[{i}]")
            if ann_id in seen:
                raise ValueError(f"{where}: annotations[{i}]: duplicate annotation id {ann_id}")
            seen.add(ann_id)
            if ann.get("category_id") != self.category_id:
                continue
            rec = f"{where}: annotation id {ann_id}"
            if ann.get("iscrowd", 0):
                num_crowd += 1
                continue
            img_id = require_id(ann, "image_id", rec)
            if img_id not in images:
                raise ValueError(f"{rec}: image_id {img_id} is not in 'images'")
            bbox = require_numbers(ann, "bbox", rec, 4, "[x, y, w, h]")
            kp = require_numbers(ann, "keypoints", rec, 3 * k, f"({k} keypoints x (x, y, v))")
            if not any(v > 0 for v in kp[2::3]):
                num_unlabelled += 1
                continue
            area = require_number(ann, "area", rec) if "area" in ann else bbox[2] * bbox[3]
            image_ids.append(img_id)
            ann_ids.append(ann_id)
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
        image_ids, boxes, scores, num_low = read_detection_file(path, self.category_id, threshold)
        known = np.isin(image_ids, np.fromiter(images, dtype=np.int64, count=len(images)))
        if not known.all():
            logger.warning(
                "%s: skipped %d detections of images not in %s",
                path, int((~known).sum()), self.ann_file,
            )
        logger.info("%s: %d detections below score %g left out", path, num_low, threshold)
        image_ids, boxes, scores = image_ids[known], boxes[known], scores[known]
        n = len(image_ids)
        return image_ids, -np.ones(n, dtype=np.int64), boxes, np.zeros((n, k, 3)), np.ones(n), scores
