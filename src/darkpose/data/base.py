"""The top-down dataset: one item per person instance, images read lazily.

:class:`TopDownDataset` holds its instances as arrays (centres, scales, keypoints, ...),
so the box geometry is computed once for all boxes; the COCO and MPII loaders only fill
these arrays. ``dataset[i]`` reads the photo; with a transform it returns a training or
test sample, otherwise the instance with its image.

Randomness: every sample's augmentation uses nine numbers (seven uniform, two normal),
``dataset.draws(index, epoch)``: row ``index`` of a table drawn from a Philox generator
keyed by (seed, epoch), the uniform stream's values 9i .. 9i+8 (the last two turned into
two independent normals by Box-Muller). A sample is a pure function of (seed, epoch,
index): the dataset holds no epoch. ``dataset[index]`` is epoch 0 and
``dataset[(epoch, index)]`` that epoch; for training, wrap the index sampler in
:class:`EpochSampler`, which yields ``(epoch, index)`` keys and is told the epoch in the
main process (``sampler.set_epoch(e)``), so persistent DataLoader workers and DDP ranks
see each epoch without any state of theirs changing::

    sampler = EpochSampler(RandomSampler(dataset))   # or DistributedSampler(dataset)
    loader = DataLoader(dataset, batch_size=32, sampler=sampler, num_workers=8,
                        persistent_workers=True, collate_fn=dataset.transform.collate)
    for epoch in range(210):
        sampler.set_epoch(epoch)
        for batch in loader: ...

Nothing depends on which worker makes a sample, in what order, or on the dataset's
length. Each process caches the table of the last (seed, epoch) it was asked for (72 bytes
per instance, a few milliseconds to draw); the cache only saves time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from darkpose.data.image import check_color, read_image
from darkpose.data.keypoint_metadata import KeypointMetadata
from darkpose.data.sample import RawItem, Sample


@dataclass(frozen=True)
class PersonInstance:
    """One person to crop.

    Attributes
    ----------
    image_path : Path
    image_id : int
    annotation_id : int
        COCO annotation id (-1 for detections); MPII: index in the annotation file.
    box : (4,) float64, (x, y, w, h), the clean box the crop is built from
    center : (2,) float64
    scale : (2,) float64, (w, h) / 200 after aspect padding and enlargement
    keypoints : (K, 3) float64, (x, y, v) in image pixels, v as in the file (COCO 0/1/2);
        zeros for detections
    area : float, (200 s_w)(200 s_h), as the reference uses for OKS NMS
    score : float, detection score (1.0 for ground-truth boxes)
    """

    image_path: Path
    image_id: int
    annotation_id: int
    box: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    keypoints: np.ndarray
    area: float
    score: float


class TopDownDataset(Dataset):
    """Person instances as arrays, read lazily, optionally through a transform.

    Parameters
    ----------
    image_paths : sequence of N paths
    image_ids, annotation_ids : (N,) int arrays
    boxes : (N, 4), centers : (N, 2), scales : (N, 2), keypoints : (N, K, 3)
    areas, scores : (N,)
    metadata : KeypointMetadata
    transform : callable or None
        ``transform(image_bgr, instance, draws, to_rgb) -> sample`` (``draws``: the
        sample's nine random numbers, :meth:`draws` of its (epoch, index)), e.g.
        :class:`darkpose.data.transforms.TopDownTransform`.
    color : {"rgb", "bgr"}
        Channel order of the images this dataset yields (raw or transformed).
    seed : int
        Base seed of the augmentation.
    """

    def __init__(
        self,
        *,
        image_paths,
        image_ids,
        annotation_ids,
        boxes,
        centers,
        scales,
        keypoints,
        areas,
        scores,
        metadata: KeypointMetadata,
        transform=None,
        color: str = "rgb",
        seed: int = 0,
        image_sizes=None,
    ) -> None:
        n = len(image_paths)
        k = metadata.num_keypoints
        self.image_paths = [Path(p) for p in image_paths]
        self._path_strings = [str(p) for p in self.image_paths]
        self.image_ids = np.asarray(image_ids, dtype=np.int64).reshape(n)
        self.annotation_ids = np.asarray(annotation_ids, dtype=np.int64).reshape(n)
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(n, 4)
        self.centers = np.asarray(centers, dtype=np.float64).reshape(n, 2)
        self.scales = np.asarray(scales, dtype=np.float64).reshape(n, 2)
        self.keypoints = np.asarray(keypoints, dtype=np.float64).reshape(n, k, 3)
        self.areas = np.asarray(areas, dtype=np.float64).reshape(n)
        self.scores = np.asarray(scores, dtype=np.float64).reshape(n)
        # (N, 2) (W, H) the annotation file gives for each instance's image, or None: a decoded
        # image of another size is an error naming the file
        self.image_sizes = (
            None if image_sizes is None else np.asarray(image_sizes, dtype=np.float64).reshape(n, 2)
        )
        self.metadata = metadata
        self.transform = transform
        self.color = check_color(color)
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        self.seed = int(seed)
        self._cache: tuple[tuple[int, int, int], np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.image_paths)

    def draws(self, index: int, epoch: int = 0) -> np.ndarray:
        """The nine numbers of a sample's augmentation: seven uniform in [0, 1), two
        independent standard normals (see :data:`darkpose.data.transforms.DRAW_SLOTS`).

        A function of (seed, epoch, index) only: row ``index`` of the (seed, epoch) table
        (see the module docstring). Returns a (9,) float64 array (a copy).
        """
        i = self._index(index)
        epoch = _check_epoch(epoch)
        key = (self.seed, epoch, len(self))
        cache = self._cache  # one read: the (key, table) pair is replaced whole
        if cache is None or cache[0] != key:
            bits = np.random.Philox(key=np.array(key[:2], dtype=np.uint64))
            u = np.random.Generator(bits).random((len(self), 9))
            r = np.sqrt(-2.0 * np.log1p(-u[:, 7]))  # 1 - u in (0, 1]: finite log
            angle = 2.0 * np.pi * u[:, 8]
            u[:, 7], u[:, 8] = r * np.cos(angle), r * np.sin(angle)
            cache = self._cache = (key, u)
        return cache[1][i].copy()

    def _index(self, index) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(
                f"index: expected an int or an (epoch, index) pair of ints, got {index!r}"
            )
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} instances")
        return int(index) % len(self)

    def instance(self, index: int) -> PersonInstance:
        """The ``index``-th person instance (no image read); its arrays are copies."""
        i = self._index(index)
        return PersonInstance(
            image_path=self.image_paths[i],
            image_id=int(self.image_ids[i]),
            annotation_id=int(self.annotation_ids[i]),
            box=self.boxes[i].copy(),
            center=self.centers[i].copy(),
            scale=self.scales[i].copy(),
            keypoints=self.keypoints[i].copy(),
            area=float(self.areas[i]),
            score=float(self.scores[i]),
        )

    def _expected_size(self, index: int):
        return None if self.image_sizes is None else self.image_sizes[index]

    def __getitem__(self, key: int | tuple[int, int]) -> Sample | RawItem:
        """The sample of ``key``: an index (epoch 0) or an ``(epoch, index)`` pair; without a
        transform, the :class:`~darkpose.data.sample.RawItem` (instance and photo)."""
        epoch, index = (0, key) if not isinstance(key, tuple) else _split_key(key)
        if self.transform is None:
            inst = self.instance(index)
            image = read_image(inst.image_path, self.color, self._expected_size(index))
            return RawItem(inst, image, self._index(index))
        i = self._index(index)
        draws = self.draws(i, epoch)
        inst = PersonInstance(  # read-only views: the transform does not modify them
            image_path=self._path_strings[i],
            image_id=int(self.image_ids[i]),
            annotation_id=int(self.annotation_ids[i]),
            box=self.boxes[i],
            center=self.centers[i],
            scale=self.scales[i],
            keypoints=self.keypoints[i],
            area=float(self.areas[i]),
            score=float(self.scores[i]),
        )
        image = read_image(inst.image_path, "bgr", self._expected_size(i))
        sample = self.transform(image, inst, draws, to_rgb=self.color == "rgb")
        return sample.at(i, epoch)


def _check_epoch(epoch) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
        raise TypeError(f"epoch: expected an int in [0, 2**64), got {epoch!r}")
    if not 0 <= epoch < 2**64:
        raise ValueError(f"epoch: expected an int in [0, 2**64), got {epoch}")
    return int(epoch)


def _split_key(key: tuple) -> tuple[int, Any]:
    if len(key) != 2:
        raise TypeError(f"key: expected an index or an (epoch, index) pair, got {key!r}")
    return _check_epoch(key[0]), key[1]


class EpochSampler:
    """Wrap an index sampler so that it yields ``(epoch, index)`` keys for
    :class:`TopDownDataset`: the epoch travels with each index, so a sample is the same
    wherever it is made (persistent workers, DDP ranks).

    Parameters
    ----------
    sampler : iterable of indices
        Any index sampler (``RandomSampler``, ``DistributedSampler``, ...) or iterable,
        e.g. ``range(len(dataset))``. Iterated anew each epoch.
    epoch : int
        The epoch of the keys, until :meth:`set_epoch`.
    """

    def __init__(self, sampler: Iterable[int], epoch: int = 0) -> None:
        self.sampler = sampler
        self.epoch = _check_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the keys; also the inner sampler's (e.g. ``DistributedSampler``
        shuffles by it) when it has ``set_epoch``. Call it in the main process."""
        self.epoch = _check_epoch(epoch)
        inner = getattr(self.sampler, "set_epoch", None)
        if callable(inner):
            inner(self.epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for index in self.sampler:
            yield epoch, int(index)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


def check_transform(transform, image_size, convention) -> None:
    """A transform must crop with the geometry the boxes were prepared for."""
    cfg = getattr(transform, "config", None)
    if cfg is None:
        return
    t_size = tuple(cfg.image_size)
    if abs(t_size[0] / t_size[1] - image_size[0] / image_size[1]) > 1e-9:
        raise ValueError(
            f"transform image_size {t_size} has another aspect ratio than the dataset's "
            f"image_size {tuple(image_size)}"
        )
    if cfg.convention != convention:
        raise ValueError(
            f"transform convention {cfg.convention!r} differs from the dataset's {convention!r}"
        )


def crop_geometry(transform, image_size, convention, default_size) -> tuple[tuple[int, int], str]:
    """The (W, H) input size and the convention a dataset prepares its boxes for.

    A transform with a config is their one home: arguments left None take its values, and
    arguments given must agree with it (:func:`check_transform`). Without one, the given
    values or ``default_size`` and ``"darkpose"``.
    """
    cfg = getattr(transform, "config", None)
    if cfg is not None:
        image_size = tuple(cfg.image_size) if image_size is None else image_size
        convention = cfg.convention if convention is None else convention
        check_transform(transform, image_size, convention)
    size = tuple(default_size if image_size is None else image_size)
    return (int(size[0]), int(size[1])), "darkpose" if convention is None else convention


def open_annotations(ann_file, image_dir, metadata, transform, image_size, convention, default_size):
    """The shared start of a dataset constructor: the metadata, the annotation path, the image
    folder (which must exist), the crop geometry (:func:`crop_geometry`), the parsed JSON.

    Returns (metadata, ann_path, image_dir, parsed JSON, image_size, convention)."""
    from darkpose.data._io import read_json
    from darkpose.data.keypoint_metadata import load_metadata

    meta = load_metadata(metadata)
    ann_path = Path(ann_file)
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    image_size, convention = crop_geometry(transform, image_size, convention, default_size)
    return meta, ann_path, image_dir, read_json(ann_path, "annotation file"), image_size, convention
