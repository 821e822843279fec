"""The typed sample and batch: what the transform makes and what collate stacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from darkpose.data import Augmentation, Batch, Sample, SampleMeta, TopDownTransform, TransformConfig
from darkpose.data.base import PersonInstance

NO_AUG = Augmentation(flip_prob=0.0, scale_factor=0.0, rotation_prob=0.0, half_body_prob=0.0)


def _person(shift: float) -> PersonInstance:
    kp = np.zeros((17, 3))
    kp[:, 0] = np.linspace(40, 80, 17) + shift
    kp[:, 1] = np.linspace(30, 110, 17)
    kp[::2, 2] = 2  # every other keypoint labelled
    return PersonInstance(image_path="photo.jpg", image_id=7, annotation_id=int(10 + shift),
                          box=np.array([30.0, 20, 60, 100]), center=np.array([60.0, 70]),
                          scale=np.array([0.5, 0.6667]), keypoints=kp, area=4000.0, score=1.0)


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (140, 150, 3), dtype=np.uint8)


@pytest.mark.parametrize("targets", ["sample", "batch", "none"])
def test_collate_stacks_samples_into_a_batch(targets):
    t = TopDownTransform(TransformConfig(image_size=(48, 64), targets=targets, augment=NO_AUG))
    samples = [t(_image(), _person(s), np.full(9, 0.5)).at(i, 3) for i, s in enumerate((0.0, 5.0, 9.5))]
    assert all(isinstance(s, Sample) and isinstance(s.meta, SampleMeta) for s in samples)
    assert [(s.meta.index, s.meta.epoch) for s in samples] == [(0, 3), (1, 3), (2, 3)]
    assert (samples[0].target is None) == (targets != "sample")
    batch = t.collate(samples)
    assert isinstance(batch, Batch) and len(batch) == 3
    assert batch.image.shape == (3, 3, 64, 48)
    torch.testing.assert_close(batch.image[1], samples[1].image, rtol=0, atol=0)
    assert batch.stacked("heatmap_to_image").shape == (3, 2, 3)
    np.testing.assert_array_equal(batch.stacked("annotation_id"), [10, 15, 19])
    if targets == "none":
        assert batch.target is None and batch.target_weight is None
        return
    assert batch.target.shape == (3, 17, 16, 12) and batch.target_weight.shape == (3, 17)
    # the targets are those of each sample's keypoints in heatmap pixels, however made
    want, weight = t.encode(batch.stacked("keypoints_heatmap"))
    np.testing.assert_allclose(batch.target.numpy(), want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(batch.target_weight.numpy()[0, :4], [1, 0, 1, 0])


def test_batch_to_moves_tensors_and_sets_the_memory_format():
    t = TopDownTransform(TransformConfig(image_size=(48, 64), targets="batch", augment=NO_AUG))
    batch = t.collate([t(_image(), _person(s), np.full(9, 0.5)) for s in (0.0, 3.0)])
    moved = batch.to("cpu", channels_last=True)
    assert moved.image.is_contiguous(memory_format=torch.channels_last)
    assert not batch.image.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(moved.image, batch.image, rtol=0, atol=0)
    assert moved.meta is batch.meta and moved.target is batch.target  # already on the device
    plain = batch.to("cpu")
    assert plain.image.is_contiguous() and plain.target_weight.dtype == torch.float32
