"""The top-down transform: crop, normalisation, flip, rotation, scale, half-body, jitter,
targets, seeds and DataLoader workers."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from darkpose import geometry as g
from darkpose.codec import decode
from darkpose.data import Augmentation, CocoKeypointDataset, TopDownTransform
from darkpose.data import TransformConfig as _TransformConfig
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


AUGMENT = {f.name for f in dataclasses.fields(Augmentation)}


def TransformConfig(**kw) -> _TransformConfig:  # noqa: N802
    """The transform's config with the augmentation keys given flat, as the tests write them."""
    augment = Augmentation(**{k: kw.pop(k) for k in list(kw) if k in AUGMENT})
    return _TransformConfig(augment=augment, **kw)


def config(**kw) -> _TransformConfig:
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
    a_in = s.meta.image_to_input
    q = g.transform_points(np.array([[[120.0, 70.0]]]), a_in[None])[0, 0]
    plane = s.image[0].numpy()
    y, x = np.unravel_index(np.argmax(plane), plane.shape)
    assert abs(x - q[0]) <= 0.5 and abs(y - q[1]) <= 0.5
    assert s.image.shape == (3, 64, 48) and s.image.dtype == torch.float32


def test_normalisation_per_colour_in_either_channel_order():
    img = np.zeros((50, 50, 3), np.uint8)
    img[:] = (10, 20, 30)  # B, G, R
    t = TopDownTransform(config(), train=False)
    inst = person(center=(25.0, 25.0), scale=(0.1, 0.1))
    rgb = t(img, inst, to_rgb=True).image.numpy()
    bgr = t(img, inst, to_rgb=False).image.numpy()
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
    meta = s.meta
    assert not meta.flipped and meta.rotation == 0.0
    np.testing.assert_array_equal(meta.center, inst.center)
    a_hm = g.crop_affine(inst.center, inst.scale, 0.0, (12, 16))
    kp_hm = g.transform_points(inst.keypoints[None, :, :2], a_hm)
    back = g.transform_points(kp_hm, meta.heatmap_to_image[None])
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
    assert b.meta.flipped and not a.meta.flipped
    # darkpose convention: the crop of the mirrored photo is the mirrored crop (to rounding
    # of OpenCV's fixed-point bilinear weights)
    diff = (b.image.numpy() - a.image.numpy()[:, :, ::-1]) * 0.229 * 255
    assert np.abs(diff).max() <= 1.01
    idx = flip.metadata.flip_index()
    xy = inst.keypoints[None, :, :2]
    ka = g.transform_points(xy, a.meta.image_to_input[None])[0]
    kb = g.transform_points(xy, b.meta.image_to_input[None])[0][idx]  # labels swap
    np.testing.assert_allclose(kb[:, 0], 47 - ka[idx, 0], atol=1e-9)
    np.testing.assert_allclose(kb[:, 1], ka[idx, 1], atol=1e-9)
    # flipping the flipped keypoints gives back the original ones
    np.testing.assert_allclose(g.flip_keypoints(kb, 48, flip.metadata.flip_pairs), ka, atol=1e-9)
    # in heatmap space (the codec's input) the same holds on the 12 x 16 heatmap
    ha, hb = a.meta.keypoints_heatmap, b.meta.keypoints_heatmap
    np.testing.assert_allclose(hb[:, 0], 11 - ha[idx, 0], atol=1e-9)
    np.testing.assert_array_equal(hb[:, 2], ha[idx, 2])
    # recovery through the flipped heatmap affine lands on the (swapped) image keypoints
    a_hm_inv = b.meta.heatmap_to_image
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


def test_augmentation_draws_follow_the_recipe_independently():
    t = TopDownTransform(config(half_body_prob=0.0), train=True)
    inst = person()
    rng = np.random.default_rng(0)
    n = 4000
    scales, rots, flips = np.empty(n), np.empty(n), np.empty(n, bool)
    for i in range(n):
        c, s, r, f, _ = t.draw(inst.keypoints, inst.center, inst.scale, rng)
        np.testing.assert_array_equal(c, inst.center)
        np.testing.assert_allclose(s / inst.scale, s[0] / inst.scale[0])  # aspect kept
        scales[i], rots[i], flips[i] = s[0] / inst.scale[0], r, f
    rotated = rots != 0
    se = 1 / np.sqrt(n)  # a frequency p has sd sqrt(p (1 - p)) se; limits at 5 sd
    assert scales.min() == 0.65 and scales.max() == 1.35  # clipped at 1 -+ 0.35
    assert np.abs(rots).max() == 90.0  # clipped at 2 x 45
    # measured: rotated 0.607, flipped 0.490, both 0.299, scale clipped low 0.151, angle
    # clipped 0.046 of the rotated
    assert abs(rotated.mean() - 0.6) < 5 * 0.49 * se
    assert abs(flips.mean() - 0.5) < 5 * 0.5 * se
    assert abs((scales == 0.65).mean() - 0.1587) < 5 * 0.37 * se  # P(z < -1)
    assert abs((np.abs(rots[rotated]) == 90).mean() - 0.0455) < 5 * 0.21 / np.sqrt(rotated.sum())
    # independent decisions: P(rotated and flipped) = 0.6 x 0.5, and neither the scale nor
    # the angle correlates with the other decisions (|r| measured <= 0.027, sd se = 0.016)
    assert abs((rotated & flips).mean() - 0.3) < 5 * 0.46 * se
    pairs = [(scales, flips), (scales, rotated), (np.abs(rots), flips), (scales, np.abs(rots))]
    assert max(abs(np.corrcoef(a, b)[0, 1]) for a, b in pairs) < 5 * se


def test_each_decision_uses_its_own_draw():
    """Changing one of the nine numbers changes only the decision it is documented for
    (DRAW_SLOTS), with the documented value."""
    from darkpose.data.transforms import DRAW_SLOTS

    cfg = config(half_body_prob=0.5, rotation_prob=0.5, flip_prob=0.5, color_jitter=0.4)
    t = TopDownTransform(cfg, train=True)
    inst = person()
    base = np.array([0.2] * 7 + [0.5, 0.5])  # every decision on; z = 0.5

    def outputs(draws):
        c, s, r, f, jit = t.draw(inst.keypoints, inst.center, inst.scale, draws)
        return {"center": tuple(c), "scale": tuple(s), "rotation": r, "flipped": f,
                "brightness": jit[0], "contrast": jit[1], "saturation": jit[2]}

    ref = outputs(base)
    upper = inst.keypoints[:11, :2]
    assert ref["center"] == tuple(upper.mean(0))  # half body, upper first
    assert ref["rotation"] == 22.5 and ref["flipped"]  # 45 x 0.5
    assert ref["brightness"] == ref["contrast"] == ref["saturation"] == 1 + 0.4 * (0.4 - 1)
    changes = {  # slot -> new value, the outputs that must change
        "half_body": (0.9, {"center", "scale"}),
        "half_body_side": (0.9, {"center", "scale"}),
        "rotation_on": (0.9, {"rotation"}),
        "flip": (0.9, {"flipped"}),
        "brightness": (0.9, {"brightness"}),
        "contrast": (0.9, {"contrast"}),
        "saturation": (0.9, {"saturation"}),
        "scale_normal": (-0.5, {"scale"}),
        "rotation_normal": (-0.5, {"rotation"}),
    }
    assert tuple(changes) == DRAW_SLOTS
    for k, (slot, (value, expected)) in enumerate(changes.items()):
        draws = base.copy()
        draws[k] = value
        out = outputs(draws)
        changed = {name for name in ref if out[name] != ref[name]}
        assert changed == expected, slot
    # the values: no half body -> the box's centre; the lower body; no rotation; jitter
    # 1 + 0.4 (2 x 0.9 - 1); scale x (1 - 0.35 x 0.5); angle -22.5
    def one(k, value):
        return outputs(np.where(np.arange(9) == k, value, base))

    assert one(0, 0.9)["center"] == tuple(inst.center)
    np.testing.assert_allclose(one(0, 0.9)["scale"], inst.scale * 1.175, rtol=1e-15)
    assert one(1, 0.9)["center"] == tuple(inst.keypoints[11:, :2].mean(0))
    assert one(2, 0.9)["rotation"] == 0.0 and not one(3, 0.9)["flipped"]
    assert one(5, 0.9)["contrast"] == pytest.approx(1.32, abs=1e-15)
    np.testing.assert_allclose(np.array(one(7, -0.5)["scale"]) / ref["scale"], 0.825 / 1.175)
    assert one(8, -0.5)["rotation"] == -22.5


@pytest.mark.parametrize(("conv", "extra"), [("darkpose", 1.0), ("hrnet", 0.0)])
def test_half_body_crops_upper_or_lower_body(conv, extra):
    """The half-body box is the keypoints' extent, + 1 px in the darkpose convention only
    (geometry.box_extent), padded to 3:4, x 1.5; centred on the keypoints' mean."""
    t = TopDownTransform(config(**{**NO_AUG, "half_body_prob": 1.0}, convention=conv),
                         train=True)
    inst = person()
    kp = inst.keypoints
    seen = set()
    for seed in range(20):
        c, s, *_ = t.draw(kp, inst.center, inst.scale, np.random.default_rng(seed))
        part = kp[:11, :2] if np.allclose(c, kp[:11, :2].mean(0)) else kp[11:, :2]
        np.testing.assert_allclose(c, part.mean(0))
        w, h = part.max(0) - part.min(0) + extra
        w, h = max(w, 0.75 * h), max(h, w / 0.75)
        np.testing.assert_allclose(s, np.array([w, h]) / 200 * 1.5, rtol=1e-15)
        seen.add(len(part))
    assert seen == {11, 6}
    upper = TopDownTransform(
        config(**{**NO_AUG, "half_body_prob": 1.0, "half_body_upper_prob": 1.0},
               convention=conv), train=True
    )
    for seed in range(10):
        c, *_ = upper.draw(kp, inst.center, inst.scale, np.random.default_rng(seed))
        np.testing.assert_allclose(c, kp[:11, :2].mean(0))
    # at most 8 labelled keypoints: no half-body
    few = kp.copy()
    few[8:, 2] = 0
    c, *_ = t.draw(few, inst.center, inst.scale, np.random.default_rng(0))
    np.testing.assert_array_equal(c, inst.center)


def test_half_body_of_coinciding_keypoints_keeps_the_full_box():
    """Under hrnet, keypoints at one point give a 0 x 0 half-body box: the person's own
    box is kept (a crop under 1 px is degenerate); darkpose's +1 makes it 1.5 x 2 px."""
    kp = np.column_stack([np.full(17, 90.0), np.full(17, 70.0), np.full(17, 2.0)])
    inst = person(kp)
    for conv, expected_center in [("hrnet", inst.center), ("darkpose", (90.0, 70.0))]:
        t = TopDownTransform(config(**{**NO_AUG, "half_body_prob": 1.0}, convention=conv),
                             train=True)
        c, s, *_ = t.draw(kp, inst.center, inst.scale, np.random.default_rng(0))
        np.testing.assert_array_equal(c, expected_center)
    np.testing.assert_allclose(s, np.array([1.0, 4 / 3]) / 200 * 1.5)


PIXELS = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # normalised output = pixel value


@pytest.mark.parametrize("to_rgb", [True, False])
def test_colour_jitter_values(to_rgb):
    """Brightness scales the pixels, contrast blends them with the crop's mean grey,
    saturation with each pixel's own grey (0.299 R + 0.587 G + 0.114 B), in that order,
    clipped to [0, 255]; each by its own factor. Figures worked by hand; tolerances one
    float32 step at 200-255 (1.5e-5; measured 1.5e-5, 3.1e-6, 0)."""
    t = TopDownTransform(config(**PIXELS), train=False)
    order = slice(None) if to_rgb else slice(None, None, -1)
    grey = np.array([[[100, 100, 100], [200, 200, 200]]], np.uint8)  # BGR
    out = t.normalize(grey, to_rgb, (1.2, 0.5, 1.5))
    # x 1.2 -> 120, 240; mean 180; contrast 0.5 -> 150, 210; greys keep their saturation
    np.testing.assert_allclose(out[:, 0], [[150, 210]] * 3, atol=2e-5)
    colour = np.array([[[0, 100, 200]]], np.uint8)  # B, G, R
    out = t.normalize(colour, to_rgb, (1.2, 0.5, 1.5))[:, 0, 0]
    # x 1.2 -> (R, G, B) = (240, 120, 0), grey 142.2; contrast 0.5 towards the mean grey
    # 142.2 -> (191.1, 131.1, 71.1); saturation 1.5 away from its grey 142.2
    np.testing.assert_allclose(out, np.array([215.55, 125.55, 35.55])[order], atol=2e-5)
    out = t.normalize(colour, to_rgb, (1.4, 1.0, 1.0))[:, 0, 0]
    np.testing.assert_allclose(out, np.array([255, 140, 0])[order], atol=2e-5)  # clipped
    out = t.normalize(colour, to_rgb, (1.0, 1.0, 1.0))[:, 0, 0]
    np.testing.assert_array_equal(out, np.array([200, 100, 0])[order])


def test_colour_jitter_in_the_sample_is_the_drawn_factors():
    """The sample's jitter: factors 1 + j (2u - 1) of draws 4, 5, 6 applied to the crop,
    the geometry untouched."""
    img = textured_image()
    inst = person()
    draws = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.7, 0.95, 0.3, -0.2])
    plain = TopDownTransform(config(**NO_AUG, **PIXELS), train=True)
    jit = TopDownTransform(config(**NO_AUG, **PIXELS, color_jitter=0.4), train=True)
    a, b = plain(img, inst, draws), jit(img, inst, draws)
    np.testing.assert_array_equal(a.meta.image_to_input, b.meta.image_to_input)
    crop = cv2.warpAffine(img, a.meta.image_to_input, (48, 64), flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(a.image.numpy(), crop[:, :, ::-1].transpose(2, 0, 1))
    factors = (1 + 0.4 * (2 * 0.1 - 1), 1 + 0.4 * (2 * 0.7 - 1), 1 + 0.4 * (2 * 0.95 - 1))
    np.testing.assert_array_equal(b.image.numpy(), jit.normalize(crop, True, factors))
    assert not np.array_equal(b.image.numpy(), jit.normalize(crop, True, factors[::-1]))


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
    target, weight = s.target.numpy(), s.target_weight.numpy()
    assert target.shape == (17, 32, 24) and weight.shape == (17,)
    expected = np.ones(17, np.float32) * t.metadata.joint_weights
    expected[[3, 4]] = 0.0
    np.testing.assert_allclose(weight, expected)
    assert not target[3].any() and not target[4].any()
    a_hm = g.invert_affine(s.meta.heatmap_to_image)
    kp_hm = g.transform_points(kp[None, :, :2], a_hm[None])[0]
    # the peak of each target is the heatmap pixel nearest to the keypoint
    for j in np.flatnonzero(weight):
        y, x = np.unravel_index(np.argmax(target[j]), target[j].shape)
        assert (x, y) == tuple(np.clip(np.rint(kp_hm[j]), 0, [23, 31]).astype(int))
    coords, _ = decode(target[None], method="dark", blur_kernel=3)
    back = g.transform_points(coords.astype(np.float64), s.meta.heatmap_to_image[None])[0]
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
    back = g.flip_heatmaps(b.target.numpy()[None], flip.metadata.flip_pairs)[0]
    np.testing.assert_allclose(back, a.target.numpy(), atol=1e-6)
    np.testing.assert_array_equal(
        b.target_weight.numpy()[flip.metadata.flip_index()], a.target_weight.numpy()
    )


# -- seeds and workers -------------------------------------------------------------------


def test_samples_depend_only_on_seed_epoch_index(coco_mini):
    t = TopDownTransform(config(), train=True)
    ds = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                             transform=t, seed=7)
    a, b = ds[5], ds[5]
    torch.testing.assert_close(a.image, b.image, rtol=0, atol=0)
    c = ds[(1, 5)]
    assert not torch.equal(a.image, c.image)
    torch.testing.assert_close(ds[(0, 5)].image, a.image, rtol=0, atol=0)


def test_dataloader_workers_give_the_same_samples(coco_mini):
    t = TopDownTransform(config(), train=True)
    ds = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                             transform=t, seed=1)
    sub = torch.utils.data.Subset(ds, list(range(8)))
    one = list(DataLoader(sub, batch_size=4, num_workers=0, collate_fn=t.collate))
    two = list(DataLoader(sub, batch_size=4, num_workers=2, collate_fn=t.collate))
    for x, y in zip(one, two, strict=True):
        torch.testing.assert_close(x.image, y.image, rtol=0, atol=0)
        np.testing.assert_array_equal(x.stacked("center"), y.stacked("center"))
        assert [m.index for m in x.meta] == [m.index for m in y.meta]
    assert one[0].image.shape == (4, 3, 64, 48) and len(one[0]) == 4


def test_batched_targets_equal_per_sample_targets(coco_mini):
    cfg = dict(image_size=(48, 64), sigma=1.0)
    per_sample = TopDownTransform(TransformConfig(**cfg, targets="sample"), train=True)
    batched = TopDownTransform(TransformConfig(**cfg, targets="batch"), train=True)
    a = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                            transform=per_sample, seed=3)
    b = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                            transform=batched, seed=3)
    assert b[0].target is None and b[0].target_weight is None
    idx = list(range(6))
    one = next(iter(DataLoader(torch.utils.data.Subset(a, idx), batch_size=6,
                               collate_fn=per_sample.collate)))
    two = next(iter(DataLoader(torch.utils.data.Subset(b, idx), batch_size=6, num_workers=1,
                               collate_fn=batched.collate)))
    assert two.target.shape == (6, 17, 16, 12) and two.target_weight.shape == (6, 17)
    torch.testing.assert_close(two.target, one.target, rtol=0, atol=1e-6)
    torch.testing.assert_close(two.target_weight, one.target_weight, rtol=0, atol=0)
    torch.testing.assert_close(two.image, one.image, rtol=0, atol=0)


def test_transform_and_dataset_must_agree(coco_mini, tmp_path):
    t = TopDownTransform(config(image_size=(64, 64)), train=False)
    with pytest.raises(ValueError, match="another aspect ratio"):
        CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(192, 256),
                            transform=t)
    t = TopDownTransform(config(convention="hrnet"), train=False)
    with pytest.raises(ValueError, match="convention"):
        CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                            convention="darkpose", transform=t)
    # given nothing, the dataset prepares its boxes for the transform's crop geometry
    ds = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", transform=t)
    ref = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(48, 64),
                              convention="hrnet")
    assert (ds.image_size, ds.convention) == ((48, 64), "hrnet")
    np.testing.assert_array_equal(ds.scales, ref.scales)
    np.testing.assert_array_equal(ds.centers, ref.centers)
    plain = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017")
    assert (plain.image_size, plain.convention) == ((192, 256), "darkpose")
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
    assert s.image.shape == (3, 256, 192)
    assert s.target.shape == (17, 64, 48)
    assert s.target_weight.shape == (17,)
    raw = json.loads((coco_mini / ANN).read_text())
    assert any(a["id"] == s.meta.annotation_id for a in raw["annotations"])


@pytest.mark.parametrize("conv", g.CONVENTIONS)
def test_flipped_sample_is_the_crop_of_the_mirrored_photo(conv):
    """The flip folded into the affine: the crop equals cv2's crop of the mirrored photo
    (x' = W - 1 - x) around the mirrored centre; the heatmap is the same window at the
    heatmap's resolution; heatmap_to_image recovers the image keypoints."""
    img = textured_image()
    inst = person()
    t = TopDownTransform(config(**{**NO_AUG, "flip_prob": 1.0, "rotation_prob": 1.0},
                                convention=conv, **PIXELS), train=True)
    draws = np.array([0.9, 0.9, 0.5, 0.0, 0.5, 0.5, 0.5, 0.4, 0.6])  # rotation 27 degrees
    smp = t(img, inst, draws)
    meta = smp.meta
    assert meta.flipped and meta.rotation == 27.0
    mirrored_center = np.array([219 - meta.center[0], meta.center[1]])
    a = g.crop_affine(mirrored_center, meta.scale, 27.0, (48, 64), conv)[0]
    crop = cv2.warpAffine(cv2.flip(img, 1), a, (48, 64), flags=cv2.INTER_LINEAR)
    diff = smp.image.numpy() - crop[:, :, ::-1].transpose(2, 0, 1)
    # OpenCV's bilinear weights come in steps of 1/32 px, rounded differently at x and
    # W - 1 - x: measured at most 2 grey levels, on 1.4-1.6% of the values (5 photos)
    assert np.abs(diff).max() <= 2 and np.mean(diff != 0) < 0.02
    xy = inst.keypoints[None, :, :2]
    q_in = g.transform_points(xy, meta.image_to_input[None])[0]
    q_hm = g.transform_points(xy, g.invert_affine(meta.heatmap_to_image)[None])[0]
    if conv == "darkpose":  # pixel centres of the first and last columns coincide
        np.testing.assert_allclose(q_hm - [5.5, 7.5], (q_in - [23.5, 31.5]) * 11 / 47, atol=1e-9)
    else:  # frame edges coincide
        np.testing.assert_allclose(q_hm - [6, 8], (q_in - [24, 32]) / 4, atol=1e-9)
    idx = t.metadata.flip_index()
    np.testing.assert_allclose(meta.keypoints_heatmap[:, :2], q_hm[idx], atol=1e-12)
    back = g.transform_points(meta.keypoints_heatmap[None, :, :2], meta.heatmap_to_image[None])
    np.testing.assert_allclose(back[0], inst.keypoints[idx, :2], atol=1e-9)


@pytest.mark.parametrize("conv", g.CONVENTIONS)
def test_flip_test_end_to_end(conv):
    """Heatmaps of the flipped crop (its targets: what a perfect network gives), flipped
    back with the convention's shift, decode to the coordinates of the unflipped crop;
    without the shift the hrnet convention is one heatmap pixel off."""
    img = textured_image(300, 260)
    kp = person().keypoints.copy()
    kp[:, :2] = np.random.default_rng(1).uniform([90, 80], [170, 220], (17, 2))
    inst = person(kp, center=(130.0, 150.0), scale=(0.9, 1.2))
    cfg = dict(image_size=(192, 256), targets=True, convention=conv, **NO_AUG)
    plain = TopDownTransform(TransformConfig(**cfg), train=True)
    flip = TopDownTransform(TransformConfig(**{**cfg, "flip_prob": 1.0}), train=True)
    draws = np.full(9, 0.5)
    a, b = plain(img, inst, draws), flip(img, inst, draws)
    pairs = flip.metadata.flip_pairs
    heatmaps = b.target.numpy()[None]
    back = g.flip_heatmaps(heatmaps, pairs, shift=g.convention_flip_shift(conv))
    want, _ = decode(a.target.numpy()[None], method="dark", blur_kernel=11)
    got, _ = decode(back, method="dark", blur_kernel=11)
    kp_hm = a.meta.keypoints_heatmap[:, :2]
    assert (kp_hm.min(1) > 4).all() and (kp_hm[:, 0] < 43).all() and (kp_hm[:, 1] < 59).all()
    # measured max 1.9e-6 (darkpose; half a float32 step at 32 px) and 0 (hrnet)
    assert np.abs(got - want).max() < 4e-6
    # and those are the keypoints, to the decode's own error (measured 2.93e-4 both)
    assert np.abs(got[0] - kp_hm).max() < 3e-4
    unshifted, _ = decode(g.flip_heatmaps(heatmaps, pairs, shift=False), method="dark",
                          blur_kernel=11)
    offset = 0.0 if conv == "darkpose" else -1.0
    np.testing.assert_allclose(unshifted[..., 0] - want[..., 0], offset, atol=4e-6)  # 1.9e-6


def test_default_blur_kernel_and_sigma():
    """The official configs: blur kernel 3 at 128x96, 11 at 256x192, 384x288, 256x256;
    sigma 1, 2, 3, 2; heatmaps a quarter of the input."""
    from darkpose.config import default_blur_kernel
    from darkpose.data.transforms import default_sigma

    for size, kernel, sigma in [((96, 128), 3, 1.0), ((192, 256), 11, 2.0),
                                ((288, 384), 11, 3.0), ((256, 256), 11, 2.0)]:
        assert (default_blur_kernel(size), default_sigma(size)) == (kernel, sigma), size
        assert TransformConfig(image_size=size).heatmap_size == (size[0] // 4, size[1] // 4)


def test_defaults_are_those_of_the_official_yaml_files(official_formats):
    import yaml

    from darkpose.config import default_blur_kernel

    files = sorted((official_formats / "experiments").rglob("*.yaml"))
    assert len(files) == 5
    for path in files:
        raw = yaml.safe_load(path.read_text())
        size = tuple(raw["MODEL"]["IMAGE_SIZE"])
        cfg = TransformConfig(image_size=size)
        assert default_blur_kernel(size) == raw["TEST"]["BLUR_KERNEL"], path.name
        assert cfg.sigma == raw["MODEL"]["SIGMA"], path.name
        assert cfg.heatmap_size == tuple(raw["MODEL"]["HEATMAP_SIZE"]), path.name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rotation_factor": float("nan")}, "rotation_factor: expected a number in"),
        ({"rotation_factor": float("inf")}, "rotation_factor"),
        ({"rotation_factor": -1.0}, "rotation_factor"),
        ({"scale_factor": float("nan")}, r"scale_factor: expected a number in \[0, 1\)"),
        ({"scale_factor": 1.0}, "scale_factor"),
        ({"flip_prob": float("nan")}, r"flip_prob: expected a number in \[0, 1\]"),
        ({"flip_prob": 1.5}, "flip_prob"),
        ({"rotation_prob": -0.1}, "rotation_prob"),
        ({"half_body_prob": float("inf")}, "half_body_prob"),
        ({"half_body_upper_prob": 2}, "half_body_upper_prob"),
        ({"color_jitter": float("nan")}, "color_jitter"),
        ({"color_jitter": 1.0}, "color_jitter"),
        ({"half_body_min_keypoints": -1}, "half_body_min_keypoints"),
        ({"sigma": float("nan")}, "sigma"),
        ({"sigma": float("inf")}, "sigma"),
        ({"sigma": 0.0}, r"sigma: expected a number in \[0.166667, inf\)"),
        ({"sigma": 0.16}, r"sigma: expected a number in \[0.166667, inf\)"),
        ({"std": (0.229, 0.0, 0.225)}, r"std: expected three finite positive numbers"),
        ({"std": (0.229, -0.2, 0.225)}, "std: expected three"),
        ({"std": (0.229, 0.224)}, "std: expected three"),
        ({"mean": (0.485, 0.456)}, r"mean: expected three finite numbers \(R, G, B\)"),
        ({"mean": (0.485, float("nan"), 0.4)}, "mean: expected three"),
        ({"image_size": (4, 4)}, r"heatmap_size: expected \(W, H\), two integers >= 2"),
        ({"image_size": (192, 256), "heatmap_size": (1, 64)}, "heatmap_size: expected"),
        ({"image_size": (50, 64)}, "image_size: expected multiples of 4"),
        ({"image_size": (48, 64), "heatmap_size": (16, 16)}, "one integer stride"),
        ({"image_size": (49, 64), "heatmap_size": (12, 16)}, "one integer stride"),
        ({"image_size": (48.5, 64)}, r"image_size: expected \(W, H\), two integers >= 2"),
        ({"image_size": (1, 64)}, "image_size: expected"),
    ],
)
def test_bad_config_values_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransformConfig(**kwargs)


def test_config_accepts_the_edges():
    cfg = TransformConfig(image_size=(8, 8), heatmap_size=(2, 2), flip_prob=1, scale_factor=0,
                          rotation_factor=0, std=(1, 1, 1), mean=(0, 0, 0))
    assert cfg.heatmap_size == (2, 2) and cfg.std == (1.0, 1.0, 1.0)
    assert cfg.sigma == 1 / 6  # H / 128 = 1/16 is raised to the codec's floor
    assert TransformConfig(image_size=(96, 128), heatmap_size=(48, 64)).heatmap_size == (48, 64)


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (np.zeros((180, 220), np.uint8), ValueError, r"got uint8 of shape \(180, 220\)"),
        (np.zeros((0, 220, 3), np.uint8), ValueError, r"got uint8 of shape \(0, 220, 3\)"),
        (np.zeros((180, 220, 4), np.uint8), ValueError, r"of shape \(180, 220, 4\)"),
        (np.zeros((180, 220, 3), np.float32), ValueError, "got float32"),
        ([[0, 0, 0]], TypeError, "expected a NumPy array, got list"),
    ],
)
def test_bad_images_name_the_field(image, error, message):
    t = TopDownTransform(config(), train=False)
    expected = r"image: expected a non-empty \(H, W, 3\) uint8 BGR array" if error is ValueError else ""
    with pytest.raises(error, match=rf"synthetic: annotation id 2: image: .*{message}"):
        t(image, person())
    if expected:
        with pytest.raises(error, match=expected):
            t(image, person())


@pytest.mark.parametrize("conv", g.CONVENTIONS)
@pytest.mark.parametrize(
    ("center", "scale", "message"),
    [
        ((100.0, 80.0), (0.0, 0.0), r"scales\[0\]: expected a crop window 200 \* scale in"),
        ((100.0, 80.0), (np.nan, 0.8), r"scales\[0\]"),
        ((100.0, 80.0), (1e200, 1e200), r"scales\[0\]"),  # once a ZeroDivisionError
        ((1e200, 80.0), (0.6, 0.8), r"centers\[0\]: expected finite coordinates"),
        ((100.0, np.inf), (0.6, 0.8), r"centers\[0\]"),
    ],
)
def test_bad_centre_or_scale_names_the_instance_and_field(conv, center, scale, message):
    for train in (False, True):
        t = TopDownTransform(config(convention=conv), train=train)
        with pytest.raises(ValueError, match=rf"synthetic: annotation id 2: {message}"):
            t(textured_image(), person(center=center, scale=scale), np.full(9, 0.5))


def test_sub_pixel_windows_and_bad_draws():
    # a detection box under 1 px (window 200 s = 0.9 px): darkpose's zoom would mirror
    # (once: ZeroDivisionError at exactly 1 px); hrnet's is defined
    tiny = person(scale=(0.9 / 200, 1.2 / 200))
    with pytest.raises(ValueError, match=r"scales\[0\]: .*\(1, 2\*\*24\] px under the 'darkpose'"):
        TopDownTransform(config(), train=False)(textured_image(), tiny)
    s = TopDownTransform(config(convention="hrnet"), train=False)(textured_image(), tiny)
    assert np.isfinite(s.meta.heatmap_to_image).all()
    t = TopDownTransform(config(), train=True)
    with pytest.raises(ValueError, match="draws: expected nine numbers"):
        t(textured_image(), person(), np.full(8, 0.5))
    with pytest.raises(ValueError, match=r"draws: expected seven numbers in \[0, 1\)"):
        t(textured_image(), person(), np.array([1.0] + [0.5] * 8))
    with pytest.raises(ValueError, match="draws"):
        t(textured_image(), person(), np.array([0.5] * 8 + [np.nan]))
    bad_kp = person(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"keypoints: expected \(17, 3\)"):
        t(textured_image(), bad_kp, np.full(9, 0.5))


@pytest.mark.parametrize("conv", g.CONVENTIONS)
def test_smallest_valid_box_trains_at_the_narrowest_window(conv):
    """A 1-px box (2 px under hrnet, whose 1 px box is invalid) zoomed in by the most
    (0.65) keeps a window of MIN_WINDOW = 1.25 px; larger boxes are untouched."""
    from darkpose.data.transforms import MIN_WINDOW

    side = 1.0 if conv == "darkpose" else 2.0
    clean, valid = g.clean_boxes(np.array([[50.0, 60.0, side, side]]), (220, 180), conv)
    assert valid[0] and clean[0, 2] == 1.0
    c, s = g.boxes_to_center_scale(clean, 0.75, convention=conv)
    t = TopDownTransform(config(**{**NO_AUG, "scale_factor": 0.35}, convention=conv), train=True)
    draws = np.array([0.9] * 7 + [-3.0, 0.0])  # scale factor clipped at 0.65
    smp = t(textured_image(), person(center=c[0], scale=s[0]), draws)
    assert MIN_WINDOW == 1.25
    np.testing.assert_allclose(smp.meta.scale * 200, [1.25, 1.25 / 0.75], rtol=1e-12)
    assert np.isfinite(smp.image.numpy()).all()
    big = t(textured_image(), person(), draws)
    np.testing.assert_allclose(big.meta.scale, person().scale * 0.65, rtol=1e-15)
