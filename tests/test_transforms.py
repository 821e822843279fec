"""The top-down transform: crop, normalisation, flip, rotation, scale, half-body, jitter,
targets, seeds and DataLoader workers."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from darkpose import geometry as g
from darkpose.codec import decode
from darkpose.data import CocoKeypointDataset, TopDownTransform, TransformConfig
from darkpose.data.base import PersonInstance

ANN = "annotations/person_keypoints_train2017.json"
NO_AUG = dict(flip_prob=0.0, scale_factor=0.0, rotation_prob=0.0, half_body_prob=0.0)


def person(keypoints=None, center=(100.0, 80.0), scale=(0.6, 0.8)) -> PersonInstance:
    if keypoints is None:
        rng = np.random.default_rng(0)
        keypoints = np.column_stack(
            [rng.uniform(60, 140, 17), rng.uniform(20, 140, 17), np.full(17, 2.0)]
        )
    return PersonInstance(
        image_path="synthetic", image_id=1, annotation_id=2, box=np.zeros(4),
        center=np.asarray(center, float), scale=np.asarray(scale, float),
        keypoints=np.asarray(keypoints, float), area=1.0, score=1.0,
    )


def textured_image(h=180, w=220, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def config(**kw) -> TransformConfig:
    base = dict(image_size=(48, 64), targets=False)
    base.update(kw)
    return TransformConfig(**base)


# -- crop and normalisation --------------------------------------------------------------


def test_crop_puts_image_points_where_the_affine_says():
    img = np.zeros((180, 220, 3), np.uint8)
    img[70, 120] = 255  # a bright pixel at (x, y) = (120, 70)
    t = TopDownTransform(config(), train=False)
    inst = person(center=(110.0, 80.0), scale=(0.3, 0.4))  # zoom (47/59): one pixel stays sharp
    s = t(img, inst, to_rgb=True)
    a_in = s["meta"]["image_to_input"]
    q = g.transform_points(np.array([[[120.0, 70.0]]]), a_in[None])[0, 0]
    plane = s["image"][0].numpy()
    y, x = np.unravel_index(np.argmax(plane), plane.shape)
    assert abs(x - q[0]) <= 0.5 and abs(y - q[1]) <= 0.5
    assert s["image"].shape == (3, 64, 48) and s["image"].dtype == torch.float32


def test_normalisation_per_colour_in_either_channel_order():
    img = np.zeros((50, 50, 3), np.uint8)
    img[:] = (10, 20, 30)  # B, G, R
    t = TopDownTransform(config(), train=False)
    inst = person(center=(25.0, 25.0), scale=(0.1, 0.1))
    rgb = t(img, inst, to_rgb=True)["image"].numpy()
    bgr = t(img, inst, to_rgb=False)["image"].numpy()
    centre = (slice(None), 32, 24)
    np.testing.assert_allclose(
        rgb[centre], [(30 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224,
                      (10 / 255 - 0.406) / 0.225], rtol=1e-6
    )
    np.testing.assert_allclose(bgr[centre], rgb[centre][::-1], rtol=1e-6)


def test_test_time_sample_has_recovery_meta():
    t = TopDownTransform(config(), train=False)
    inst = person()
    s = t(textured_image(), inst)
    meta = s["meta"]
    assert not meta["flipped"] and meta["rotation"] == 0.0
    np.testing.assert_array_equal(meta["center"], inst.center)
    a_hm = g.crop_affine(inst.center, inst.scale, 0.0, (12, 16))
    kp_hm = g.transform_points(inst.keypoints[None, :, :2], a_hm)
    back = g.transform_points(kp_hm, meta["heatmap_to_image"][None])
    assert np.abs(back - inst.keypoints[None, :, :2]).max() < 1e-4


# -- flip, rotation, scale, half-body ---------------------------------------------------


def test_flip_mirrors_the_crop_and_swaps_pairs():
    img = textured_image()
    inst = person()
    plain = TopDownTransform(config(**NO_AUG), train=True)
    flip = TopDownTransform(config(**{**NO_AUG, "flip_prob": 1.0}), train=True)
    rng = np.random.default_rng(0)
    a = plain(img, inst, rng)
    b = flip(img, inst, np.random.default_rng(0))
    assert b["meta"]["flipped"] and not a["meta"]["flipped"]
    # darkpose convention: the crop of the mirrored photo is the mirrored crop (to rounding
    # of OpenCV's fixed-point bilinear weights)
    diff = (b["image"].numpy() - a["image"].numpy()[:, :, ::-1]) * 0.229 * 255
    assert np.abs(diff).max() <= 1.01
    idx = flip.metadata.flip_index()
    xy = inst.keypoints[None, :, :2]
    ka = g.transform_points(xy, a["meta"]["image_to_input"][None])[0]
    kb = g.transform_points(xy, b["meta"]["image_to_input"][None])[0][idx]  # labels swap
    np.testing.assert_allclose(kb[:, 0], 47 - ka[idx, 0], atol=1e-9)
    np.testing.assert_allclose(kb[:, 1], ka[idx, 1], atol=1e-9)
    # flipping the flipped keypoints gives back the original ones
    np.testing.assert_allclose(g.flip_keypoints(kb, 48, flip.metadata.flip_pairs), ka, atol=1e-9)
    # in heatmap space (the codec's input) the same holds on the 12 x 16 heatmap
    ha, hb = a["meta"]["keypoints_heatmap"], b["meta"]["keypoints_heatmap"]
    np.testing.assert_allclose(hb[:, 0], 11 - ha[idx, 0], atol=1e-9)
    np.testing.assert_array_equal(hb[:, 2], ha[idx, 2])
    # recovery through the flipped heatmap affine lands on the (swapped) image keypoints
    a_hm_inv = b["meta"]["heatmap_to_image"]
    kp_hm = g.transform_points(inst.keypoints[None, :, :2], g.invert_affine(a_hm_inv)[None])
    np.testing.assert_allclose(
        g.transform_points(kp_hm, a_hm_inv[None])[0], inst.keypoints[:, :2], atol=1e-4
    )


def test_rotation_by_90_degrees_turns_right_into_up():
    t = TopDownTransform(config(image_size=(64, 64), **NO_AUG), train=True)
    yy, xx = np.mgrid[:200, :200]
    blob = 255 * np.exp(-((xx - 130.0) ** 2 + (yy - 100.0) ** 2) / (2 * 4.0**2))
    img = np.repeat(blob[..., None], 3, axis=2).astype(np.float32)  # 30 px right of (100, 100)
    a_in, _ = t.affines(np.array([100.0, 100.0]), np.array([0.5, 0.5]), 90.0, False, 200)
    crop = cv2.warpAffine(img, a_in, (64, 64), flags=cv2.INTER_LINEAR)[:, :, 0].astype(float)
    ys, xs = np.mgrid[:64, :64]
    centroid = np.array([(xs * crop).sum(), (ys * crop).sum()]) / crop.sum()
    k = 63 / 99  # (W - 1) / (200 s - 1)
    np.testing.assert_allclose(centroid, [31.5, 31.5 - 30 * k], atol=0.1)


def test_augmentation_draws_follow_the_recipe():
    t = TopDownTransform(config(half_body_prob=0.0), train=True)
    inst = person()
    scales, rots, flips = [], [], []
    for seed in range(400):
        c, s, r, f, _ = t.draw(inst.keypoints, inst.center, inst.scale,
                               np.random.default_rng(seed))
        np.testing.assert_array_equal(c, inst.center)
        scales.append(s[0] / inst.scale[0])
        rots.append(r)
        flips.append(f)
    scales, rots = np.array(scales), np.array(rots)
    assert scales.min() >= 0.65 - 1e-12 and scales.max() <= 1.35 + 1e-12
    assert np.abs(rots).max() <= 90.0
    assert 0.5 < np.mean(rots != 0) < 0.7  # p = 0.6
    assert 0.4 < np.mean(flips) < 0.6  # p = 0.5
    assert (scales == 0.65).any() and (scales == 1.35).any()  # clipped at 1 -+ 0.35


def test_half_body_crops_upper_or_lower_body():
    t = TopDownTransform(config(**{**NO_AUG, "half_body_prob": 1.0}), train=True)
    inst = person()
    kp = inst.keypoints
    seen = set()
    for seed in range(20):
        c, s, *_ = t.draw(kp, inst.center, inst.scale, np.random.default_rng(seed))
        part = kp[:11, :2] if np.allclose(c, kp[:11, :2].mean(0)) else kp[11:, :2]
        np.testing.assert_allclose(c, part.mean(0))
        w, h = part.max(0) - part.min(0) + 1.0
        w, h = max(w, 0.75 * h), max(h, w / 0.75)
        np.testing.assert_allclose(s, np.array([w, h]) / 200 * 1.5)
        seen.add(len(part))
    assert seen == {11, 6}
    upper = TopDownTransform(
        config(**{**NO_AUG, "half_body_prob": 1.0, "half_body_upper_prob": 1.0}), train=True
    )
    for seed in range(10):
        c, *_ = upper.draw(kp, inst.center, inst.scale, np.random.default_rng(seed))
        np.testing.assert_allclose(c, kp[:11, :2].mean(0))
    # at most 8 labelled keypoints: no half-body
    few = kp.copy()
    few[8:, 2] = 0
    c, *_ = t.draw(few, inst.center, inst.scale, np.random.default_rng(0))
    np.testing.assert_array_equal(c, inst.center)


def test_colour_jitter_changes_pixels_not_geometry():
    img = textured_image()
    inst = person()
    base = TopDownTransform(config(**NO_AUG), train=True)(img, inst, np.random.default_rng(3))
    jit = TopDownTransform(config(**NO_AUG, color_jitter=0.4), train=True)(
        img, inst, np.random.default_rng(3)
    )
    assert not torch.equal(base["image"], jit["image"])
    np.testing.assert_array_equal(base["meta"]["image_to_input"], jit["meta"]["image_to_input"])


# -- targets (through the codec) ---------------------------------------------------------


def test_targets_peak_at_heatmap_keypoints_with_joint_weights():
    img = textured_image()
    kp = person().keypoints.copy()
    kp[3, 2] = 0  # unlabelled
    kp[4] = [-500.0, 80.0, 2.0]  # far outside the crop
    inst = person(kp)
    cfg = config(image_size=(96, 128), targets=True, use_joint_weights=True, **NO_AUG)
    assert cfg.sigma == 1.0 and cfg.heatmap_size == (24, 32)
    t = TopDownTransform(cfg, train=True)
    s = t(img, inst, np.random.default_rng(0))
    target, weight = s["target"].numpy(), s["target_weight"].numpy()
    assert target.shape == (17, 32, 24) and weight.shape == (17,)
    expected = np.ones(17, np.float32) * t.metadata.joint_weights
    expected[[3, 4]] = 0.0
    np.testing.assert_allclose(weight, expected)
    assert not target[3].any() and not target[4].any()
    a_hm = g.invert_affine(s["meta"]["heatmap_to_image"])
    kp_hm = g.transform_points(kp[None, :, :2], a_hm[None])[0]
    # the peak of each target is the heatmap pixel nearest to the keypoint
    for j in np.flatnonzero(weight):
        y, x = np.unravel_index(np.argmax(target[j]), target[j].shape)
        assert (x, y) == tuple(np.clip(np.rint(kp_hm[j]), 0, [23, 31]).astype(int))
    coords, _ = decode(target[None], method="dark", blur_kernel=3)
    back = g.transform_points(coords.astype(np.float64), s["meta"]["heatmap_to_image"][None])[0]
    inside = (weight > 0) & (kp_hm.min(axis=1) > 3) & (kp_hm[:, 0] < 20) & (kp_hm[:, 1] < 28)
    assert inside.sum() >= 10
    # DARK decodes sigma-1 targets to within 0.02 heatmap px; recovery maps that back to
    # the image with the inverse heatmap affine (1 heatmap px = 1 / zoom image px)
    err_hm = np.abs(coords[0][inside] - kp_hm[inside]).max()
    assert err_hm < 0.02
    zoom = np.hypot(*a_hm[0, :2])
    assert np.abs(back[inside] - kp[inside, :2]).max() < 0.02 / zoom


def test_flipped_targets_are_the_flipped_unflipped_targets():
    img = textured_image()
    inst = person()
    cfg = config(targets=True, **NO_AUG)
    a = TopDownTransform(cfg, train=True)(img, inst, np.random.default_rng(0))
    flip = TopDownTransform(config(targets=True, **{**NO_AUG, "flip_prob": 1.0}), train=True)
    b = flip(img, inst, np.random.default_rng(0))
    back = g.flip_heatmaps(b["target"].numpy()[None], flip.metadata.flip_pairs)[0]
    np.testing.assert_allclose(back, a["target"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(
        b["target_weight"].numpy()[flip.metadata.flip_index()], a["target_weight"].numpy()
    )


# -- seeds and workers -------------------------------------------------------------------


def test_samples_depend_only_on_seed_epoch_index(coco_mini):
    t = TopDownTransform(config(), train=True)
    ds = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                             transform=t, seed=7)
    a, b = ds[5], ds[5]
    torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
    ds.set_epoch(1)
    c = ds[5]
    assert not torch.equal(a["image"], c["image"])
    ds.set_epoch(0)
    torch.testing.assert_close(ds[5]["image"], a["image"], rtol=0, atol=0)


def test_dataloader_workers_give_the_same_samples(coco_mini):
    t = TopDownTransform(config(), train=True)
    ds = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                             transform=t, seed=1)
    sub = torch.utils.data.Subset(ds, list(range(8)))
    one = list(DataLoader(sub, batch_size=4, num_workers=0))
    two = list(DataLoader(sub, batch_size=4, num_workers=2))
    for x, y in zip(one, two, strict=True):
        torch.testing.assert_close(x["image"], y["image"], rtol=0, atol=0)
        torch.testing.assert_close(x["meta"]["center"], y["meta"]["center"], rtol=0, atol=0)
    assert one[0]["image"].shape == (4, 3, 64, 48)


def test_batched_targets_equal_per_sample_targets(coco_mini):
    cfg = dict(image_size=(48, 64), sigma=1.0)
    per_sample = TopDownTransform(TransformConfig(**cfg, targets="sample"), train=True)
    batched = TopDownTransform(TransformConfig(**cfg, targets="batch"), train=True)
    a = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                            transform=per_sample, seed=3)
    b = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                            transform=batched, seed=3)
    assert "target" not in b[0]
    idx = list(range(6))
    one = next(iter(DataLoader(torch.utils.data.Subset(a, idx), batch_size=6)))
    two = next(iter(DataLoader(torch.utils.data.Subset(b, idx), batch_size=6, num_workers=1,
                               collate_fn=batched.collate)))
    assert two["target"].shape == (6, 17, 16, 12) and two["target_weight"].shape == (6, 17)
    torch.testing.assert_close(two["target"], one["target"], rtol=0, atol=1e-6)
    torch.testing.assert_close(two["target_weight"], one["target_weight"], rtol=0, atol=0)
    torch.testing.assert_close(two["image"], one["image"], rtol=0, atol=0)


def test_transform_and_dataset_must_agree(coco_mini, tmp_path):
    t = TopDownTransform(config(image_size=(64, 64)), train=False)
    with pytest.raises(ValueError, match="another aspect ratio"):
        CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", transform=t)
    t = TopDownTransform(config(convention="hrnet"), train=False)
    with pytest.raises(ValueError, match="convention"):
        CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                            transform=t)
    with pytest.raises(ValueError, match="needs a random generator"):
        TopDownTransform(config(), train=True)(textured_image(), person())


def test_config_validation():
    cfg = TransformConfig(image_size=(288, 384))
    assert cfg.heatmap_size == (72, 96) and cfg.sigma == 3.0
    assert TransformConfig(image_size=(96, 128)).sigma == 1.0
    with pytest.raises(ValueError, match="flip_prob"):
        TransformConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match="convention"):
        TransformConfig(convention="x")
    assert TransformConfig(targets=True).targets == "sample"
    assert TransformConfig(targets=False).targets == "none"
    with pytest.raises(ValueError, match="targets must be"):
        TransformConfig(targets="later")


def test_coco_mini_training_samples(coco_mini):
    t = TopDownTransform(TransformConfig(image_size=(192, 256)), train=True)
    ds = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", transform=t)
    s = ds[0]
    assert s["image"].shape == (3, 256, 192)
    assert s["target"].shape == (17, 64, 48)
    assert s["target_weight"].shape == (17,)
    raw = json.loads((coco_mini / ANN).read_text())
    assert any(a["id"] == s["meta"]["annotation_id"] for a in raw["annotations"])


@pytest.mark.parametrize("conv", ["darkpose", "hrnet"])
def test_scalar_affines_equal_the_geometry_module(conv):
    from darkpose.data.transforms import _invert

    t = TopDownTransform(config(convention=conv), train=True)
    rng = np.random.default_rng(9)
    for _ in range(20):
        c, s, r = rng.uniform(0, 600, 2), rng.uniform(0.2, 3, 2), float(rng.uniform(-90, 90))
        for flipped in (False, True):
            a_in, a_hm = t.affines(c, s, r, flipped, 640)
            cc = np.array([639 - c[0], c[1]]) if flipped else c
            for a, size in ((a_in, (48, 64)), (a_hm, (12, 16))):
                ref = g.crop_affine(cc, s, r, size, conv)[0]
                if flipped:
                    ref = g.compose_affine(ref, g.hflip_affine(640))
                np.testing.assert_allclose(a, ref, atol=1e-9)
                np.testing.assert_allclose(_invert(a), g.invert_affine(a), atol=1e-9)
