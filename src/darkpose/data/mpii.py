"""MPII in the annotation format of the official HRNet code.

The annotation file is a JSON list, one entry per person::

    {"image": "015601864.jpg", "center": [594.0, 257.0], "scale": 3.021,
     "joints": [[620.0, 394.0], ...16], "joints_vis": [1, 1, 0, ...16]}

(``joints``/``joints_vis`` are absent from the test split.) Coordinates are MATLAB
1-based; as in the reference loader they are made 0-based, the centre is moved down by
15*scale pixels and the scale enlarged by 1.25 (MPII's scale is the person height / 200,
and is used for both axes: no aspect padding). PCKh against ``gt_valid.mat`` lives in
:mod:`darkpose.evaluation.pckh`; it expects one prediction per entry of ``valid.json``
in file order (``dataset.annotation_ids`` is the entry index).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from darkpose.data._io import check_numbers, require_field, require_number, require_numbers
from darkpose.data.base import TopDownDataset, open_annotations
from darkpose.data.image import excluded_mask
from darkpose.data.keypoint_metadata import KeypointMetadata
from darkpose.geometry import BOX_PADDING, area_from_scale, center_scale_to_boxes

logger = logging.getLogger(__name__)

CENTER_SHIFT = 15.0
"""The reference moves MPII centres down by 15 * scale pixels "to avoid cropping limbs"."""


class MpiiDataset(TopDownDataset):
    """Person instances of an MPII annotation JSON (official HRNet format).

    Parameters
    ----------
    ann_file : path to ``train.json`` / ``valid.json`` / ``test.json``
    image_dir : path to the images folder
    metadata : default "mpii"
    image_size : (W, H) or None, only checked against the transform (MPII crops are
        square); None: the transform's, or (256, 256) without one
    convention : {"darkpose", "hrnet"} or None: the transform's, or "darkpose" without one
    exclude_images : iterable of paths
        Images whose persons are left out (e.g. :func:`darkpose.data.image.check_images`).
    transform, color, seed : as in :class:`TopDownDataset`

    A field that is missing, of the wrong type or length, or not a finite number is a
    ``ValueError`` naming the file, the entry and the field, as is a file with no person
    left. Entries with a non-positive scale are skipped and counted in the log;
    ``annotation_ids`` keeps each instance's index in the file; ``image_ids`` number the
    distinct image names in order of first appearance.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        metadata: str | Path | KeypointMetadata = "mpii",
        image_size: tuple[int, int] | None = None,
        convention: str | None = None,
        exclude_images: Iterable[str | Path] = (),
        transform=None,
        color: str = "rgb",
        seed: int = 0,
    ) -> None:
        meta, self.ann_file, image_dir, entries, image_size, convention = open_annotations(
            ann_file, image_dir, metadata, transform, image_size, convention, (256, 256)
        )
        k = meta.num_keypoints
        where = str(self.ann_file)
        if not isinstance(entries, list):
            raise ValueError(
                f"{where}: expected a JSON list of people, got {type(entries).__name__}"
            )
        names, index, centers, scales, kpts = [], [], [], [], []
        skipped = 0
        for i, e in enumerate(entries):
            rec = f"{where}: entry {i}"
            name = require_field(e, "image", str, rec)
            center = require_numbers(e, "center", rec, 2, "[x, y]")
            scale = require_number(e, "scale", rec)
            joints = np.zeros((k, 3))
            if "joints" in e:
                j = e["joints"]
                if not isinstance(j, list) or len(j) != k:
                    got = f"{len(j)} entries" if isinstance(j, list) else type(j).__name__
                    raise ValueError(f"{rec}: field 'joints' must be {k} [x, y] pairs, got {got}")
                for m, xy in enumerate(j):
                    check_numbers(xy, f"joints[{m}]", rec, 2, "[x, y]")
                joints[:, :2] = np.asarray(j, dtype=np.float64) - 1.0
                vis = e.get("joints_vis", [1] * k)
                joints[:, 2] = check_numbers(vis, "joints_vis", rec, k, "(one per joint)")
            if not scale > 0:
                skipped += 1
                continue
            names.append(name)
            index.append(i)
            # 1-based -> 0-based, shift down, enlarge (reference MPII loader).
            centers.append([center[0] - 1.0, center[1] - 1.0 + CENTER_SHIFT * scale])
            scales.append([scale * BOX_PADDING, scale * BOX_PADDING])
            kpts.append(joints)
        if skipped:
            logger.warning("%s: skipped %d entries with a non-positive scale", where, skipped)
        self.num_skipped_degenerate = skipped
        keep = ~excluded_mask([image_dir / nm for nm in names], exclude_images, where)
        if not keep.any():
            raise ValueError(
                f"{where}: no person instances: {len(entries)} entries, {skipped} with a "
                f"non-positive scale, {int((~keep).sum())} in excluded images"
            )
        names = [nm for nm, kp in zip(names, keep, strict=True) if kp]
        centers_a = np.asarray(centers, dtype=np.float64)[keep]
        scales_a = np.asarray(scales, dtype=np.float64)[keep]
        self.image_size = tuple(image_size)
        self.convention = convention
        image_index: dict[str, int] = {}
        for nm in names:
            image_index.setdefault(nm, len(image_index))
        super().__init__(
            image_paths=[image_dir / nm for nm in names],
            image_ids=np.asarray([image_index[nm] for nm in names], dtype=np.int64),
            annotation_ids=np.asarray(index, dtype=np.int64)[keep],
            boxes=center_scale_to_boxes(centers_a, scales_a, convention=convention),  # type: ignore[arg-type]
            centers=centers_a,
            scales=scales_a,
            keypoints=np.asarray(kpts, dtype=np.float64)[keep],
            areas=area_from_scale(scales_a),
            scores=np.ones(len(names)),
            metadata=meta,
            transform=transform,
            color=color,
            seed=seed,
        )
        logger.info("%s: %d person instances", where, len(self))
