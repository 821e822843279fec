"""Augmentation randomness: the nine draws of a sample are a pure function of
(seed, epoch, index), have the right laws and are independent; the epoch travels with
the index (``dataset[(epoch, index)]``, :class:`EpochSampler`), never as dataset state."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from darkpose.data import Augmentation, EpochSampler, TopDownDataset, TopDownTransform, TransformConfig
from darkpose.data.keypoint_metadata import load_metadata, metadata_from_dict

ONE_KEYPOINT = metadata_from_dict({"keypoints": ["a"], "flip_pairs": [], "sigmas": [0.1]})


def table_dataset(n: int, seed: int = 5) -> TopDownDataset:
    """n instances without images: enough to read the draws."""
    return TopDownDataset(
        image_paths=["none"] * n, image_ids=np.zeros(n), annotation_ids=np.zeros(n),
        boxes=np.zeros((n, 4)), centers=np.zeros((n, 2)), scales=np.ones((n, 2)),
        keypoints=np.zeros((n, 1, 3)), areas=np.ones(n), scores=np.ones(n),
        metadata=ONE_KEYPOINT, seed=seed,
    )


def image_dataset(tmp_path, n: int = 4, seed: int = 3) -> TopDownDataset:
    """n people on two small textured photos, through a training transform."""
    rng = np.random.default_rng(0)
    paths = []
    for j in range(2):
        path = tmp_path / f"photo{j}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
        paths.append(path)
    kp = np.concatenate([rng.uniform(30, 90, (n, 17, 2)), np.full((n, 17, 1), 2.0)], axis=2)
    cfg = TransformConfig(image_size=(24, 32), augment=Augmentation(color_jitter=0.3))
    return TopDownDataset(
        image_paths=[paths[i % 2] for i in range(n)], image_ids=np.arange(n) % 2,
        annotation_ids=np.arange(n), boxes=np.zeros((n, 4)),
        centers=np.tile([60.0, 45.0], (n, 1)), scales=np.tile([0.3, 0.4], (n, 1)),
        keypoints=kp, areas=np.ones(n), scores=np.ones(n), metadata=load_metadata("coco"),
        transform=TopDownTransform(cfg, "coco", train=True), seed=seed,
    )


def normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


# -- the laws and independence of the draws ---------------------------------------------

N = 40_000
SE = 1.0 / math.sqrt(N)  # standard error of a mean of unit variance / of a correlation


def test_draws_have_their_laws_and_are_independent():
    ds = table_dataset(N)
    table = np.stack([ds.draws(i, epoch=3) for i in range(N)])
    u, z = table[:, :7], table[:, 7:]
    assert np.all((u >= 0) & (u < 1))
    # uniform: mean 1/2 (sd 0.289 SE), variance 1/12 (sd 0.075 SE); measured max
    # |mean - 1/2| 2.1e-3 (limit 7.2e-3), |var - 1/12| 4.2e-4 (limit 1.9e-3)
    assert np.abs(u.mean(0) - 0.5).max() < 5 * 0.289 * SE
    assert np.abs(u.var(0) - 1 / 12).max() < 5 * 0.075 * SE
    # normal: mean 0 (sd SE), variance 1 (sd sqrt(2) SE); measured 5.0e-3, 5.7e-3
    # (limits 2.5e-2, 3.5e-2)
    assert np.abs(z.mean(0)).max() < 5 * SE
    assert np.abs(z.var(0) - 1).max() < 5 * math.sqrt(2) * SE
    # Kolmogorov-Smirnov distance to U(0, 1) and N(0, 1), below the 1% critical value
    # 1.63 / sqrt(N) = 8.2e-3; measured max 5.2e-3 (uniform), 5.2e-3 (normal)
    grid = np.arange(1, N + 1) / N
    assert max(np.abs(np.sort(c) - grid).max() for c in u.T) < 1.63 * SE
    assert max(np.abs(normal_cdf(np.sort(c)) - grid).max() for c in z.T) < 1.63 * SE + 1 / N
    # independence: every pair of the nine columns uncorrelated (sd SE each), also their
    # squares (a dependence that keeps zero correlation would show there), and the
    # quadrant odds of the two normals at 1/4 (sd 0.433 SE). Measured max |r| 1.4e-2
    # over the 36 pairs (2.9 SE), 1.6e-2 for the squares (limit 2.5e-2); quadrant 0.2469
    # (limit 0.25 -+ 1.1e-2). Equal normals (Box-Muller's sin replaced by cos) give r = 1.
    off = ~np.eye(9, dtype=bool)
    assert np.abs(np.corrcoef(table.T)[off]).max() < 5 * SE
    assert np.abs(np.corrcoef((table - table.mean(0)).T ** 2)[off]).max() < 5 * SE
    assert abs(np.mean((z[:, 0] > 0) & (z[:, 1] > 0)) - 0.25) < 5 * 0.433 * SE
    # and of the next row (the table is one stream, nine values a row) and of the next
    # epoch; measured max |r| 7.2e-3 (limit 2.5e-2) and 1.6e-2 (limit 5e-2)
    lag = [np.corrcoef(table[:-1, j], table[1:, j])[0, 1] for j in range(9)]
    assert np.abs(lag).max() < 5 * SE
    nxt = np.stack([ds.draws(i, epoch=4) for i in range(0, N, 4)])
    cross = [np.corrcoef(table[::4, j], nxt[:, j])[0, 1] for j in range(9)]
    assert np.abs(cross).max() < 5 * 2 * SE  # N / 4 pairs


def test_draws_depend_on_seed_epoch_index_only():
    big = table_dataset(86)
    table = np.stack([big.draws(i, epoch=3) for i in range(86)])
    # the same (seed, epoch, index) gives the same row in any order, after other epochs,
    # in another dataset object (no state), and in a shorter dataset (no dependence on
    # the length)
    assert np.array_equal(big.draws(7, 5), table_dataset(86).draws(7, 5))
    np.testing.assert_array_equal(table_dataset(86).draws(40, 3), table[40])
    small = table_dataset(10)
    np.testing.assert_array_equal(np.stack([small.draws(i, 3) for i in range(10)]), table[:10])
    np.testing.assert_array_equal(big.draws(-1, 3), table[85])
    # epoch 0 is the default; other epochs, indices and seeds give other rows
    np.testing.assert_array_equal(big.draws(5), big.draws(5, epoch=0))
    rows = [big.draws(5, 0), big.draws(5, 1), big.draws(6, 0), table_dataset(86, 6).draws(5, 0)]
    assert len({r.tobytes() for r in rows}) == 4
    # a returned row is a copy: writing to it changes nothing
    row = big.draws(5, 3)
    row[:] = 0
    np.testing.assert_array_equal(big.draws(5, 3), table[5])


def test_seed_epoch_and_key_validation(tmp_path):
    with pytest.raises(ValueError, match="seed must be"):
        table_dataset(3, seed=-1)
    ds = table_dataset(3)
    with pytest.raises(ValueError, match=r"epoch: expected an int in \[0, 2\*\*64\)"):
        ds.draws(0, epoch=-2)
    with pytest.raises(TypeError, match="epoch: expected an int"):
        ds.draws(0, epoch=1.5)
    with pytest.raises(IndexError, match="index 3 out of range for 3"):
        ds.draws(3)
    images = image_dataset(tmp_path)
    for key, error in [((1, 2, 3), TypeError), ((True, 1), TypeError), (("1", 1), TypeError),
                       ((1, 1.0), TypeError), ("0", TypeError), ((2**64, 0), ValueError)]:
        with pytest.raises(error, match="epoch|index|key"):
            images[key]
    with pytest.raises(IndexError):
        images[(1, 4)]


# -- the epoch travels with the index ---------------------------------------------------


def test_keys_select_the_epoch(tmp_path):
    ds = image_dataset(tmp_path)
    a, a0, b = ds[2], ds[(0, 2)], ds[(1, 2)]
    torch.testing.assert_close(a.image, a0.image, rtol=0, atol=0)
    assert not torch.equal(a.image, b.image)
    assert (a.meta.epoch, b.meta.epoch, b.meta.index) == (0, 1, 2)
    # the sample of (1, 2) is the transform of the draws of (1, 2)
    image = cv2.imread(str(ds.image_paths[2]))
    direct = ds.transform(image, ds.instance(2), ds.draws(2, epoch=1))
    torch.testing.assert_close(direct.image, b.image, rtol=0, atol=0)
    torch.testing.assert_close(ds[(np.int64(1), np.int64(2))].image, b.image, rtol=0, atol=0)


def test_epoch_sampler_yields_epoch_index_pairs_and_forwards_set_epoch():
    s = EpochSampler(range(3))
    assert list(s) == [(0, 0), (0, 1), (0, 2)] and len(s) == 3
    s.set_epoch(4)
    assert list(s) == [(4, 0), (4, 1), (4, 2)]
    assert list(EpochSampler([2, 0], epoch=7)) == [(7, 2), (7, 0)]
    # a DistributedSampler keeps its own shuffle by epoch: the wrapper forwards it
    data = list(range(10))
    inner = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=0)
    wrapped = EpochSampler(inner)
    wrapped.set_epoch(3)
    reference = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=0)
    reference.set_epoch(3)
    assert inner.epoch == 3
    assert list(wrapped) == [(3, i) for i in reference]
    with pytest.raises(ValueError, match="epoch"):
        s.set_epoch(-1)


def test_persistent_workers_see_each_epoch(tmp_path):
    ds = image_dataset(tmp_path)
    sampler = EpochSampler(range(len(ds)))
    loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2,
                        persistent_workers=True, collate_fn=ds.transform.collate)
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        epochs.append(torch.cat([b.image for b in loader]))
    for epoch, images in enumerate(epochs):
        direct = torch.stack([ds[(epoch, i)].image for i in range(len(ds))])
        torch.testing.assert_close(images, direct, rtol=0, atol=0)
    assert not torch.equal(epochs[0], epochs[1])
