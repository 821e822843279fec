"""The typed values a top-down dataset yields: a sample, a batch of them, a raw item.

    TopDownTransform(image, instance, draws) -> Sample (image, targets, SampleMeta)
    TopDownTransform.collate([Sample, ...])   -> Batch  (stacked tensors, list of SampleMeta)
    TopDownDataset(transform=None)[i]         -> RawItem (the PersonInstance and its photo)

Small dataclasses with their shapes written down, so a reader (and a type checker) knows
what a batch holds without running the loader. A :class:`Batch` is what a DataLoader gives
with ``collate_fn=transform.collate``; it pins its tensors when the loader asks
(``pin_memory=True`` calls :meth:`Batch.pin_memory`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from darkpose.data.base import PersonInstance

__all__ = ["Batch", "RawItem", "Sample", "SampleMeta"]


@dataclass(frozen=True)
class SampleMeta:
    """What a sample was made from, and the geometry that made it.

    Attributes
    ----------
    image_id, annotation_id : int
        As in the :class:`darkpose.data.PersonInstance` (annotation id -1 for detections).
    image_path : str
    score, area : float
        Box score (1 for ground truth) and (200 s_w)(200 s_h).
    center : (2,) float64
    scale : (2,) float64
        The centre and scale actually cropped (after half-body and scale augmentation).
    rotation : float
        Degrees, as drawn (0 at test time).
    flipped : bool
    keypoints : (K, 3) float64
        (x, y, v) in the image as annotated.
    keypoints_heatmap : (K, 3) float64
        In heatmap pixels, the codec's input (left/right swapped when flipped).
    image_to_input : (2, 3) float64
        Image pixels -> input crop pixels (e.g. for drawing).
    heatmap_to_image : (2, 3) float64
        Heatmap pixels of this crop -> image pixels (resolution recovery).
    index : int
        Position in the dataset (-1 when the transform was called directly).
    epoch : int
        The augmentation epoch of the sample's draws.
    """

    image_id: int
    annotation_id: int
    image_path: str
    score: float
    area: float
    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flipped: bool
    keypoints: np.ndarray
    keypoints_heatmap: np.ndarray
    image_to_input: np.ndarray
    heatmap_to_image: np.ndarray
    index: int = -1
    epoch: int = 0


@dataclass(frozen=True)
class Sample:
    """One person's network input, with its targets.

    Attributes
    ----------
    image : (3, H, W) float32 tensor
        Normalised with the ImageNet mean and std; channels in the dataset's order.
    meta : SampleMeta
    target : (K, h, w) float32 tensor or None
        Present when the transform makes targets per sample (``targets="sample"``).
    target_weight : (K,) float32 tensor or None
    """

    image: torch.Tensor
    meta: SampleMeta
    target: torch.Tensor | None = None
    target_weight: torch.Tensor | None = None

    def at(self, index: int, epoch: int) -> Sample:
        """The same sample with its dataset position and epoch recorded in ``meta``."""
        return dataclasses.replace(self, meta=dataclasses.replace(self.meta, index=index, epoch=epoch))


@dataclass(frozen=True)
class Batch:
    """Samples stacked along a first axis of length B.

    Attributes
    ----------
    image : (B, 3, H, W) float32 tensor
    meta : list of B SampleMeta
    target : (B, K, h, w) float32 tensor or None
        Encoded once for the batch (``targets="batch"``) or stacked from the samples.
    target_weight : (B, K) float32 tensor or None
    """

    image: torch.Tensor
    meta: list[SampleMeta]
    target: torch.Tensor | None = None
    target_weight: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.meta)

    def stacked(self, name: str) -> np.ndarray:
        """One :class:`SampleMeta` field of every sample as an array, e.g.
        ``batch.stacked("heatmap_to_image")`` -> (B, 2, 3)."""
        return np.stack([np.asarray(getattr(m, name)) for m in self.meta])

    def to(self, device, *, channels_last: bool = False, non_blocking: bool = True) -> Batch:
        """The batch with its tensors on ``device`` (the image in channels-last memory
        format with ``channels_last``); ``meta`` is shared."""
        def move(t):
            return None if t is None else t.to(device, non_blocking=non_blocking)

        image = move(self.image)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return Batch(image, self.meta, move(self.target), move(self.target_weight))

    def pin_memory(self) -> Batch:
        """The batch with its tensors in pinned memory (called by a DataLoader with
        ``pin_memory=True``)."""
        def pin(t):
            return None if t is None else t.pin_memory()

        return Batch(pin(self.image), self.meta, pin(self.target), pin(self.target_weight))


@dataclass(frozen=True)
class RawItem:
    """An item of a dataset without a transform: the person and the photo it is in.

    Attributes
    ----------
    instance : PersonInstance
        Its arrays are copies.
    image : (H_img, W_img, 3) uint8
        The photo, channels in the dataset's order.
    index : int
        Position in the dataset.
    """

    instance: PersonInstance
    image: np.ndarray
    index: int
