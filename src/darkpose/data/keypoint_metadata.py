"""Keypoint metadata: what a dataset's keypoints are, how they flip, how OKS weighs them.

A metadata file is a small JSON object (COCO and MPII ship as ``coco.json`` and
``mpii.json`` in ``darkpose/data/metadata/``)::

    {
      "name": "my-dataset",                       # optional
      "keypoints": ["head", "left_hand", "right_hand"],   # required: K names, unique
      "flip_pairs": [["left_hand", "right_hand"]],        # required (may be []): names or
                                                          #   0-based indices
      "sigmas": [0.026, 0.062, 0.062],            # required: K OKS sigmas (COCO units),
                                                  #   finite and > 0
      "joint_weights": [1.0, 1.5, 1.5],           # optional, default all 1; finite, >= 0
                                                  #   (0 leaves a joint out of the loss)
      "upper_body": ["head", "left_hand", "right_hand"],  # optional: half-body split;
                                                          #   default [] (no half-body)
      "skeleton": [["head", "left_hand"]],        # optional: pairs, for drawing
      "keypoint_colors": [[255, 0, 0], [0, 255, 0], [0, 0, 255]],  # optional: K colours
      "limb_colors": [[255, 128, 0]]              # optional: one colour per skeleton pair
    }

Colours are ``[R, G, B]`` integers in 0..255; without them :func:`darkpose.viz.draw_poses`
colours the left and right sides distinctly.

Every error names the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from darkpose.data._io import check_numbers, read_json

BUILTIN = ("coco", "mpii")


@dataclass(frozen=True)
class KeypointMetadata:
    """Description of a keypoint set.

    Attributes
    ----------
    name : str
    keypoint_names : tuple of K str
    flip_pairs : tuple of (i, j) 0-based index pairs (left, right)
    sigmas : (K,) float64 OKS sigmas
    joint_weights : (K,) float32 per-joint loss weights
    upper_body_ids : tuple of int (the rest are the lower body)
    skeleton : tuple of (i, j) 0-based index pairs
    keypoint_colors : tuple of K (r, g, b) int triples, or () when the file gives none
    limb_colors : tuple of (r, g, b) int triples, one per skeleton pair, or ()
    """

    name: str
    keypoint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: np.ndarray
    joint_weights: np.ndarray
    upper_body_ids: tuple[int, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = field(default=())
    keypoint_colors: tuple[tuple[int, int, int], ...] = field(default=())
    limb_colors: tuple[tuple[int, int, int], ...] = field(default=())

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def lower_body_ids(self) -> tuple[int, ...]:
        upper = set(self.upper_body_ids)
        return tuple(i for i in range(self.num_keypoints) if i not in upper)

    def flip_index(self) -> np.ndarray:
        """(K,) index that swaps left and right keypoints: ``kpts[flip_index()]``
        (:func:`darkpose.geometry.flip_index`)."""
        from darkpose.geometry import flip_index

        return flip_index(self.num_keypoints, self.flip_pairs)


def _index_of(value: Any, names: list[str], where: str, fld: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{where}: field {fld!r}: {value!r} is not a keypoint name or index")
    if isinstance(value, int):
        if not 0 <= value < len(names):
            raise ValueError(
                f"{where}: field {fld!r}: index {value} out of range for {len(names)} keypoints"
            )
        return value
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"{where}: field {fld!r}: unknown keypoint name {value!r}")
        return names.index(value)
    raise ValueError(f"{where}: field {fld!r}: {value!r} is not a keypoint name or index")


def _pairs(raw: Any, names: list[str], where: str, fld: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: field {fld!r} must be a list of pairs")
    out = []
    for pair in raw:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"{where}: field {fld!r}: {pair!r} is not a pair")
        out.append((_index_of(pair[0], names, where, fld), _index_of(pair[1], names, where, fld)))
    return tuple(out)


def _numbers(raw: Any, k: int, where: str, fld: str, positive: bool) -> np.ndarray:
    """K finite numbers, each > 0 (``positive``) or >= 0."""
    arr = np.asarray(check_numbers(raw, fld, where, k, "(one per keypoint)"), dtype=np.float64)
    if positive and not np.all(arr > 0):
        raise ValueError(f"{where}: field {fld!r} must be positive, got {raw!r}")
    if not positive and not np.all(arr >= 0):
        raise ValueError(f"{where}: field {fld!r} must not be negative, got {raw!r}")
    return arr


def _colors(raw: Any, n: int, where: str, fld: str, per: str) -> tuple[tuple[int, int, int], ...]:
    """``n`` colours ``[R, G, B]``, integers in 0..255."""
    if not isinstance(raw, list) or len(raw) != n:
        got = f"{len(raw)} entries" if isinstance(raw, list) else type(raw).__name__
        raise ValueError(f"{where}: field {fld!r} must be a list of {n} colours (one per {per}), got {got}")
    out = []
    for j, c in enumerate(raw):
        if not (
            isinstance(c, list)
            and len(c) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
        ):
            raise ValueError(
                f"{where}: field {fld!r}: entry {j} is {c!r}, expected [R, G, B] integers in 0..255"
            )
        out.append((c[0], c[1], c[2]))
    return tuple(out)


def metadata_from_dict(raw: Any, where: str = "metadata") -> KeypointMetadata:
    """Build and validate :class:`KeypointMetadata` from the parsed JSON object.

    ``where`` names the source (a file path) in error messages.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    for fld in ("keypoints", "flip_pairs", "sigmas"):
        if fld not in raw:
            raise ValueError(f"{where}: missing field {fld!r}")
    names = raw["keypoints"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}: field 'keypoints' must be a non-empty list of names")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: field 'keypoints' has duplicate names")
    k = len(names)
    flip_pairs = _pairs(raw["flip_pairs"], names, where, "flip_pairs")
    used = [i for p in flip_pairs for i in p]
    if len(set(used)) != len(used) or any(i == j for i, j in flip_pairs):
        raise ValueError(f"{where}: field 'flip_pairs': each keypoint may appear in one pair only")
    sigmas = _numbers(raw["sigmas"], k, where, "sigmas", positive=True)
    weights = (
        _numbers(raw["joint_weights"], k, where, "joint_weights", positive=False)
        if "joint_weights" in raw
        else np.ones(k)
    )
    if not np.all(weights <= np.finfo(np.float32).max):  # stored as float32
        raise ValueError(f"{where}: field 'joint_weights' must be below 3.4e38 (float32)")
    upper_raw = raw.get("upper_body", [])
    if not isinstance(upper_raw, list):
        raise ValueError(f"{where}: field 'upper_body' must be a list of keypoints")
    upper = tuple(sorted({_index_of(v, names, where, "upper_body") for v in upper_raw}))
    skeleton = _pairs(raw.get("skeleton", []), names, where, "skeleton")
    keypoint_colors = (
        _colors(raw["keypoint_colors"], k, where, "keypoint_colors", "keypoint")
        if "keypoint_colors" in raw
        else ()
    )
    limb_colors = (
        _colors(raw["limb_colors"], len(skeleton), where, "limb_colors", "skeleton pair")
        if "limb_colors" in raw
        else ()
    )
    name = raw.get("name", Path(where).stem)
    if not isinstance(name, str):
        raise ValueError(f"{where}: field 'name' must be a string")
    return KeypointMetadata(
        name=name,
        keypoint_names=tuple(names),
        flip_pairs=flip_pairs,
        sigmas=sigmas,
        joint_weights=weights.astype(np.float32),
        upper_body_ids=upper,
        skeleton=skeleton,
        keypoint_colors=keypoint_colors,
        limb_colors=limb_colors,
    )


def load_metadata(spec: str | Path | KeypointMetadata | dict) -> KeypointMetadata:
    """Metadata by built-in name (``"coco"``, ``"mpii"``), by file path, or from a dict.

    Returns ``spec`` unchanged when it is already :class:`KeypointMetadata`.
    """
    if isinstance(spec, KeypointMetadata):
        return spec
    if isinstance(spec, dict):
        return metadata_from_dict(spec)
    if isinstance(spec, str) and spec in BUILTIN:
        ref = resources.files("darkpose.data") / "metadata" / f"{spec}.json"
        import json

        return metadata_from_dict(json.loads(ref.read_text(encoding="utf-8")), where=str(ref))
    path = Path(spec)
    return metadata_from_dict(read_json(path, "metadata file"), where=str(path))
