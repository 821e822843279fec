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
import math
from pathlib import Path

import numpy as np

from darkpose.data._io import require_field
from darkpose.data.base import TopDownDataset, open_annotations
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
    image_size : (W, H), only checked against the transform (MPII crops are square)
    convention : {"darkpose", "hrnet"}
    transform, color, seed : as in :class:`TopDownDataset`

    Entries with a non-positive or non-finite scale are skipped and counted in the log;
    ``annotation_ids`` keeps each instance's index in the file; ``image_ids`` number the
    distinct image names in order of first appearance.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        metadata: str | Path | KeypointMetadata = "mpii",
        image_size: tuple[int, int] = (256, 256),
        convention: str = "darkpose",
        transform=None,
        color: str = "rgb",
        seed: int = 0,
    ) -> None:
        meta, self.ann_file, image_dir, entries = open_annotations(
            ann_file, image_dir, metadata, transform, image_size, convention
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
            center = require_field(e, "center", list, rec)
            if len(center) != 2 or not all(isinstance(v, int | float) for v in center):
                raise ValueError(f"{rec}: 'center' must be 2 numbers, got {center!r}")
            scale = require_field(e, "scale", int | float, rec)
            joints = np.zeros((k, 3))
            if "joints" in e:
                j = e["joints"]
                if not isinstance(j, list) or len(j) != k:
                    got = len(j) if isinstance(j, list) else type(j).__name__
                    raise ValueError(f"{rec}: 'joints' has {got} entries, expected {k}")
                if not all(isinstance(p, list) and len(p) >= 2 for p in j):
                    raise ValueError(f"{rec}: 'joints' must be {k} [x, y] pairs")
                joints[:, :2] = np.asarray([p[:2] for p in j], dtype=np.float64) - 1.0
                vis = e.get("joints_vis", [1] * k)
                if not isinstance(vis, list) or len(vis) != k:
                    got = len(vis) if isinstance(vis, list) else type(vis).__name__
                    raise ValueError(f"{rec}: 'joints_vis' has {got} entries, expected {k}")
                joints[:, 2] = np.asarray(vis, dtype=np.float64)
            if not (math.isfinite(scale) and scale > 0) or not all(map(math.isfinite, center)):
                skipped += 1
                continue
            names.append(name)
            index.append(i)
            # 1-based -> 0-based, shift down, enlarge (reference MPII loader).
            centers.append([center[0] - 1.0, center[1] - 1.0 + CENTER_SHIFT * scale])
            scales.append([scale * BOX_PADDING, scale * BOX_PADDING])
            kpts.append(joints)
        if skipped:
            logger.warning(
                "%s: skipped %d entries with a non-positive or non-finite scale", where, skipped
            )
        self.num_skipped_degenerate = skipped
        n = len(names)
        centers_a = np.asarray(centers, dtype=np.float64).reshape(n, 2)
        scales_a = np.asarray(scales, dtype=np.float64).reshape(n, 2)
        self.image_size = tuple(image_size)
        self.convention = convention
        image_index: dict[str, int] = {}
        for nm in names:
            image_index.setdefault(nm, len(image_index))
        super().__init__(
            image_paths=[image_dir / nm for nm in names],
            image_ids=np.asarray([image_index[nm] for nm in names], dtype=np.int64),
            annotation_ids=np.asarray(index, dtype=np.int64),
            boxes=center_scale_to_boxes(centers_a, scales_a, convention=convention),  # type: ignore[arg-type]
            centers=centers_a,
            scales=scales_a,
            keypoints=np.asarray(kpts, dtype=np.float64).reshape(n, k, 3),
            areas=area_from_scale(scales_a),
            scores=np.ones(n),
            metadata=meta,
            transform=transform,
            color=color,
            seed=seed,
        )
        logger.info("%s: %d person instances", where, len(self))
