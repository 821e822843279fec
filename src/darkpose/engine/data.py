"""Datasets of an experiment, built from its config (paths follow the official layouts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from darkpose.config import Config, ConfigError, transform_config

__all__ = ["SplitPaths", "build_dataset", "split_paths"]


@dataclass(frozen=True)
class SplitPaths:
    """The files of one split. ``pckh_gt`` is MPII's ``gt_<set>.mat`` (None for COCO)."""

    annotations: Path
    images: Path
    pckh_gt: Path | None = None


def split_paths(cfg: Config, split: str) -> SplitPaths:
    """Where the ``"train"`` or ``"val"`` split of ``cfg.data`` lives.

    Explicit paths (``data.train_ann``, ``data.val_images``, ...) win; otherwise the official
    layout under ``data.root``: COCO ``annotations/person_keypoints_<set>.json`` and
    ``images/<set>/``; MPII (HRNet's layout) ``annot/<set>.json``, ``annot/gt_<set>.mat`` and
    ``images/``.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    d = cfg.data
    root = Path(d.root)
    name = d.train_set if split == "train" else d.val_set
    ann = d.train_ann if split == "train" else d.val_ann
    images = d.train_images if split == "train" else d.val_images
    if d.dataset == "coco":
        return SplitPaths(
            Path(ann) if ann else root / "annotations" / f"person_keypoints_{name}.json",
            Path(images) if images else root / "images" / name,
        )
    if d.dataset == "mpii":
        return SplitPaths(
            Path(ann) if ann else root / "annot" / f"{name}.json",
            Path(images) if images else root / "images",
            root / "annot" / f"gt_{name}.mat",
        )
    raise ConfigError(f"data.dataset: expected 'coco' or 'mpii', got {d.dataset!r}")


def _require(path: Path, field: str, kind: str) -> Path:
    ok = path.is_dir() if kind == "folder" else path.is_file()
    if not ok:
        raise FileNotFoundError(f"{field}: {kind} not found: {path} (set it with --set {field}=PATH)")
    return path


def build_dataset(cfg: Config, split: str, *, train: bool | None = None, targets: str = "batch"):
    """The top-down dataset of a split with its transform (training augmentation when
    ``train``, default: split == "train"). Test splits of COCO use ``test.detections`` when
    ``test.use_gt_boxes`` is off. Missing files raise ``FileNotFoundError`` naming the
    config field that sets them."""
    from darkpose.data import CocoKeypointDataset, MpiiDataset, TopDownTransform, load_metadata

    train = split == "train" if train is None else train
    paths = split_paths(cfg, split)
    prefix = "data.train" if split == "train" else "data.val"
    _require(paths.annotations, f"{prefix}_ann", "file")
    _require(paths.images, f"{prefix}_images", "folder")
    metadata = load_metadata(cfg.data.metadata)
    transform = TopDownTransform(transform_config(cfg, targets if train else "none"), metadata, train=train)
    common = dict(
        metadata=metadata,
        transform=transform,  # the crop geometry (input size, convention) comes with it
        color=cfg.data.color,
        seed=cfg.train.seed,
    )
    if cfg.data.dataset == "mpii":
        return MpiiDataset(paths.annotations, paths.images, **common)
    detections = None
    if split == "val" and not cfg.test.use_gt_boxes:
        if cfg.test.detections is None:
            raise ConfigError("test.detections: required when test.use_gt_boxes is false")
        detections = _require(Path(cfg.test.detections), "test.detections", "file")
    return CocoKeypointDataset(
        paths.annotations, paths.images, detections=detections,
        det_score_threshold=cfg.test.det_score_threshold, **common,
    )
