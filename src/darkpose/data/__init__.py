"""Datasets and the top-down transform.

- :class:`CocoKeypointDataset`: COCO or any COCO-format keypoint file + metadata file.
- :class:`MpiiDataset`: the MPII annotation JSON of the official HRNet code.
- :class:`TopDownTransform`: training augmentation / test-time crop, normalisation, targets;
  it makes a :class:`Sample` (and :meth:`TopDownTransform.collate` a :class:`Batch`).
- :func:`crop_person` -> :class:`Crop`: the test-time crop of one person, a pure function of
  the photo, centre, scale, size and convention (test, predict, the oracle and
  ``TopDownTransform(train=False)`` use it).
- :class:`EpochSampler`: wraps an index sampler to yield ``(epoch, index)`` keys, so the
  augmentation epoch travels with each index (no dataset state).
- :func:`check_images`: decode every image of a dataset once and list the bad files (for
  ``exclude_images=``) before a long run.
- :func:`load_metadata`: keypoint names, flip pairs, OKS sigmas, joint weights.
"""

from darkpose.data.base import EpochSampler, PersonInstance, TopDownDataset
from darkpose.data.coco import CocoKeypointDataset
from darkpose.data.crop import Crop, crop_person
from darkpose.data.image import check_images, read_image
from darkpose.data.keypoint_metadata import KeypointMetadata, load_metadata
from darkpose.data.mpii import MpiiDataset
from darkpose.data.sample import Batch, RawItem, Sample, SampleMeta
from darkpose.data.transforms import Augmentation, TopDownTransform, TransformConfig

__all__ = [
    "Augmentation",
    "Batch",
    "CocoKeypointDataset",
    "Crop",
    "EpochSampler",
    "KeypointMetadata",
    "MpiiDataset",
    "PersonInstance",
    "RawItem",
    "Sample",
    "SampleMeta",
    "TopDownDataset",
    "TopDownTransform",
    "TransformConfig",
    "check_images",
    "crop_person",
    "load_metadata",
    "read_image",
]
