"""Datasets and the top-down transform.

- :class:`CocoKeypointDataset`: COCO or any COCO-format keypoint file + metadata file.
- :class:`MpiiDataset`: the MPII annotation JSON of the official HRNet code.
- :class:`TopDownTransform`: training augmentation / test-time crop, normalisation, targets.
- :class:`EpochSampler`: wraps an index sampler to yield ``(epoch, index)`` keys, so the
  augmentation epoch travels with each index (no dataset state).
- :func:`check_images`: decode every image of a dataset once and list the bad files (for
  ``exclude_images=``) before a long run.
- :func:`load_metadata`: keypoint names, flip pairs, OKS sigmas, joint weights.
"""

from darkpose.data.base import EpochSampler, PersonInstance, TopDownDataset
from darkpose.data.coco import CocoKeypointDataset
from darkpose.data.image import check_images, read_image
from darkpose.data.keypoint_metadata import KeypointMetadata, load_metadata
from darkpose.data.mpii import MpiiDataset
from darkpose.data.transforms import TopDownTransform, TransformConfig

__all__ = [
    "CocoKeypointDataset",
    "EpochSampler",
    "KeypointMetadata",
    "MpiiDataset",
    "PersonInstance",
    "TopDownDataset",
    "TopDownTransform",
    "TransformConfig",
    "check_images",
    "load_metadata",
    "read_image",
]
