"""Geometry: box <-> centre/scale, crop affines, inverses, point transforms, flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from darkpose import geometry as g

COCO_PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]


# -- boxes -------------------------------------------------------------------------------


def test_center_scale_darkpose_pads_tall_box_width():
    c, s = g.boxes_to_center_scale(np.array([[10.0, 20.0, 30.0, 80.0]]), 192 / 256)
    np.testing.assert_allclose(c, [[24.5, 59.5]])  # x + (w-1)/2, y + (h-1)/2
    np.testing.assert_allclose(s, [[60 / 200 * 1.25, 80 / 200 * 1.25]])  # w padded to 0.75 h


def test_center_scale_hrnet_pads_wide_box_height():
    c, s = g.boxes_to_center_scale(
        np.array([[0.0, 0.0, 100.0, 50.0]]), 0.75, convention="hrnet"
    )
    np.testing.assert_allclose(c, [[50.0, 25.0]])  # x + w/2
    np.testing.assert_allclose(s, [[100 / 200 * 1.25, 100 / 0.75 / 200 * 1.25]])


def test_center_scale_is_vectorised_and_round_trips():
    rng = np.random.default_rng(0)
    boxes = np.column_stack([rng.uniform(0, 500, (50, 2)), rng.uniform(5, 300, (50, 2))])
    for conv in g.CONVENTIONS:
        c, s = g.boxes_to_center_scale(boxes, 0.75, convention=conv)
        assert c.shape == (50, 2) and s.shape == (50, 2)
        np.testing.assert_allclose(s[:, 0] / s[:, 1], 0.75)
        assert np.all(s * 200 / 1.25 >= boxes[:, 2:] - 1e-9)  # padding only grows
        padded = g.center_scale_to_boxes(c, s, convention=conv)
        c2, s2 = g.boxes_to_center_scale(padded, 0.75, convention=conv)
        np.testing.assert_allclose(c2, c)
        np.testing.assert_allclose(s2, s)


def test_clean_boxes_clips_and_flags_degenerate():
    boxes = np.array(
        [
            [-5.0, 10.0, 20.0, 30.0],  # partly left of the image
            [90.0, 95.0, 50.0, 50.0],  # runs over the bottom-right corner
            [10.0, 10.0, 0.0, 20.0],  # zero width
            [10.0, 10.0, np.nan, 20.0],  # not finite
            [150.0, 10.0, 20.0, 20.0],  # outside the image
            [10.0, 10.0, 0.5, 0.5],  # tiny but real
        ]
    )
    clean, valid = g.clean_boxes(boxes, np.array([100.0, 100.0]))
    assert valid.tolist() == [True, True, False, False, False, True]
    np.testing.assert_allclose(clean[0], [0, 10, 20, 30])  # x2 = 0 + 19 (as the reference)
    np.testing.assert_allclose(clean[1], [90, 95, 10, 5])  # x2 = 99, y2 = 99
    np.testing.assert_allclose(clean[5], [10, 10, 1, 1])
    clean_h, _ = g.clean_boxes(boxes, np.array([100.0, 100.0]), convention="hrnet")
    np.testing.assert_allclose(clean_h[1], [90, 95, 9, 4])


def test_area_from_scale():
    areas = g.area_from_scale(np.array([[1.0, 2.0], [0.5, 0.5]]))
    np.testing.assert_allclose(areas, [80000, 10000])


# -- affines -----------------------------------------------------------------------------


def reference_three_point_affine(center, scale, rot, size, conv):
    """The reference construction (three point pairs, solved), independent of the closed form."""
    src_w = scale[0] * 200.0
    w, h = size
    if conv == "darkpose":
        src_len, dst_len, d = src_w - 1, w - 1, np.array([(w - 1) / 2, (h - 1) / 2])
    else:
        src_len, dst_len, d = src_w, w, np.array([w / 2, h / 2])
    r = np.deg2rad(rot)
    v = np.array([0.0, -0.5 * src_len])
    src_dir = np.array([v[0] * np.cos(r) - v[1] * np.sin(r), v[0] * np.sin(r) + v[1] * np.cos(r)])
    src = np.array([center, center + src_dir])
    dst = np.array([d, d + [0.0, -0.5 * dst_len]])

    def third(a, b):
        diff = a - b
        return b + np.array([-diff[1], diff[0]])

    src = np.vstack([src, third(*src)])
    dst = np.vstack([dst, third(*dst)])
    m = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(m, dst).T  # (2, 3)


@pytest.mark.parametrize("conv", g.CONVENTIONS)
def test_crop_affine_matches_three_point_reference(conv):
    rng = np.random.default_rng(1)
    n = 40
    centers = rng.uniform(0, 600, (n, 2))
    scales = rng.uniform(0.1, 3.0, (n, 2))
    rots = rng.uniform(-90, 90, n)
    for size in [(192, 256), (48, 64), (24, 32)]:
        a = g.crop_affine(centers, scales, rots, size, conv)
        assert a.shape == (n, 2, 3)
        for i in range(n):
            ref = reference_three_point_affine(centers[i], scales[i], rots[i], size, conv)
            np.testing.assert_allclose(a[i], ref, rtol=0, atol=1e-9)


def test_crop_affine_darkpose_maps_box_edges_onto_first_and_last_column():
    box = np.array([[10.0, 20.0, 48.0, 64.0]])  # already at aspect 3:4
    c, s = g.boxes_to_center_scale(box, 0.75, padding=1.0)
    a = g.crop_affine(c, s, 0.0, (12, 16))
    pts = np.array([[[10.0, 51.5], [57.0, 51.5], [33.5, 51.5]]])
    np.testing.assert_allclose(
        g.transform_points(pts, a), [[[0, 7.5], [11, 7.5], [5.5, 7.5]]], atol=1e-12
    )


def test_crop_affine_hrnet_maps_box_corners_onto_frame_corners():
    box = np.array([[10.0, 20.0, 48.0, 64.0]])
    c, s = g.boxes_to_center_scale(box, 0.75, padding=1.0, convention="hrnet")
    a = g.crop_affine(c, s, 0.0, (12, 16), convention="hrnet")
    pts = np.array([[[10.0, 20.0], [58.0, 84.0], [34.0, 52.0]]])
    np.testing.assert_allclose(g.transform_points(pts, a), [[[0, 0], [12, 16], [6, 8]]])


def test_rotation_turns_right_of_centre_into_up():
    c, s = np.array([[100.0, 50.0]]), np.array([[1.0, 4 / 3]])
    a = g.crop_affine(c, s, 90.0, (192, 256))
    k = 191 / 199
    q = g.transform_points(np.array([[[110.0, 50.0], [100.0, 40.0]]]), a)[0]
    np.testing.assert_allclose(q[0], [95.5, 127.5 - 10 * k], atol=1e-12)  # right -> up
    np.testing.assert_allclose(q[1], [95.5 - 10 * k, 127.5], atol=1e-12)  # up -> left
    # 180 degrees is a point reflection through the output centre.
    a180 = g.crop_affine(c, s, 180.0, (192, 256))
    q = g.transform_points(np.array([[[110.0, 60.0]]]), a180)[0, 0]
    np.testing.assert_allclose(q, [95.5 - 10 * k, 127.5 - 10 * k], atol=1e-12)


@pytest.mark.parametrize("conv", g.CONVENTIONS)
def test_crop_then_inverse_is_identity(conv):
    rng = np.random.default_rng(2)
    n, k = 30, 17
    centers = rng.uniform(0, 600, (n, 2))
    scales = rng.uniform(0.05, 4.0, (n, 2))
    rots = rng.uniform(-180, 180, n)
    pts = rng.uniform(-100, 700, (n, k, 2))
    for size in [(192, 256), (48, 64)]:
        fwd = g.crop_affine(centers, scales, rots, size, conv)
        inv = g.crop_affine(centers, scales, rots, size, conv, inverse=True)
        back = g.transform_points(g.transform_points(pts, fwd), inv)
        assert np.abs(back - pts).max() < 1e-4
        np.testing.assert_allclose(inv, g.invert_affine(fwd), atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=6, max_size=6),
    st.lists(st.floats(-1000, 1000), min_size=2, max_size=2),
)
def test_invert_affine_of_any_regular_affine(coeffs, point):
    a = np.array(coeffs).reshape(2, 3)
    det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
    if abs(det) < 1e-3:
        return
    inv = g.invert_affine(a)
    ident = g.compose_affine(inv, a)
    np.testing.assert_allclose(ident, [[1, 0, 0], [0, 1, 0]], atol=1e-6)
    p = np.array([[point]])
    np.testing.assert_allclose(g.transform_points(g.transform_points(p, a), inv), p, atol=1e-4)


def test_invert_affine_rejects_singular():
    with pytest.raises(ValueError, match="singular"):
        g.invert_affine(np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0]]))


def test_transform_points_shapes():
    a = g.crop_affine(np.zeros((3, 2)), np.ones((3, 2)), 0.0, (48, 64))
    assert g.transform_points(np.zeros((3, 5, 2)), a).shape == (3, 5, 2)
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        g.transform_points(np.zeros((3, 5, 3)), a)
    with pytest.raises(ValueError, match="convention"):
        g.crop_affine(np.zeros((1, 2)), np.ones((1, 2)), 0.0, (48, 64), convention="mmpose")


# -- flips -------------------------------------------------------------------------------


def test_flip_keypoints_values_and_twice_is_identity():
    rng = np.random.default_rng(3)
    kp = np.concatenate([rng.uniform(0, 100, (4, 17, 2)), rng.integers(0, 3, (4, 17, 1))], -1)
    f = g.flip_keypoints(kp, 192, COCO_PAIRS)
    np.testing.assert_array_equal(f[:, 0, 0], 191 - kp[:, 0, 0])  # nose stays the nose
    np.testing.assert_array_equal(f[:, 1, 0], 191 - kp[:, 2, 0])  # left eye <- right eye
    np.testing.assert_array_equal(f[:, 1, 2], kp[:, 2, 2])  # visibility moves with it
    np.testing.assert_array_equal(f[:, 16, 1], kp[:, 15, 1])
    np.testing.assert_allclose(g.flip_keypoints(f, 192, COCO_PAIRS), kp, rtol=0, atol=1e-12)


def test_flip_heatmaps_numpy_and_torch_twice_is_identity():
    rng = np.random.default_rng(4)
    hm = rng.random((2, 17, 8, 6)).astype(np.float32)
    f = g.flip_heatmaps(hm, COCO_PAIRS)
    np.testing.assert_array_equal(f[:, 1], hm[:, 2, :, ::-1])
    np.testing.assert_array_equal(f[:, 0], hm[:, 0, :, ::-1])
    np.testing.assert_array_equal(g.flip_heatmaps(f, COCO_PAIRS), hm)
    t = g.flip_heatmaps(torch.from_numpy(hm), COCO_PAIRS)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), f)
    np.testing.assert_array_equal(g.flip_heatmaps(t, COCO_PAIRS).numpy(), hm)


def test_flip_heatmaps_hrnet_shift_moves_peak_right_by_one():
    hm = np.zeros((1, 17, 4, 6), dtype=np.float32)
    hm[0, 0, 2, 1] = 1.0
    f = g.flip_heatmaps(hm, COCO_PAIRS, shift=True)
    assert np.argwhere(f[0, 0]).tolist() == [[2, 6 - 1 - 1 + 1]]
    t = g.flip_heatmaps(torch.from_numpy(hm), COCO_PAIRS, shift=True)
    np.testing.assert_array_equal(t.numpy(), f)
    assert g.convention_flip_shift("hrnet") and not g.convention_flip_shift("darkpose")


@pytest.mark.parametrize(("conv", "offset"), [("darkpose", 0.0), ("hrnet", 1.0)])
def test_crop_of_flipped_image_vs_flipped_crop(conv, offset):
    """Cropping the mirrored photo = mirroring the crop (rotation negated) exactly in the
    darkpose convention; the hrnet convention is one output pixel off (hence its shift)."""
    rng = np.random.default_rng(5)
    n, width = 20, 640.0
    centers = rng.uniform(0, 640, (n, 2))
    scales = rng.uniform(0.3, 3.0, (n, 2))
    rots = rng.uniform(-60, 60, n)
    pts = rng.uniform(0, 640, (n, 9, 2))
    for size in [(192, 256), (48, 64)]:
        mirrored_c = np.column_stack([width - 1 - centers[:, 0], centers[:, 1]])
        a_flip = g.compose_affine(
            g.crop_affine(mirrored_c, scales, rots, size, conv), g.hflip_affine(width)
        )
        a = g.crop_affine(centers, scales, -rots, size, conv)
        lhs = g.transform_points(pts, a_flip)
        rhs = g.transform_points(pts, a)
        rhs[..., 0] = size[0] - 1 - rhs[..., 0]
        np.testing.assert_allclose(lhs[..., 0] - rhs[..., 0], offset, atol=1e-9)
        np.testing.assert_allclose(lhs[..., 1], rhs[..., 1], atol=1e-9)


# -- validity and the boundary -----------------------------------------------------------


@pytest.mark.parametrize("conv", g.CONVENTIONS)
def test_a_box_is_valid_when_its_clean_sides_are_at_least_one_pixel(conv):
    """One rule in both conventions: clean w and h >= 1 px. Under hrnet a 1-px box cleans
    to 0 x 0 (once counted valid, then a ZeroDivisionError in the crop)."""
    boxes = np.array([[10.0, 10.0, side, side] for side in (0.5, 1.0, 1.5, 2.0, 2.5)])
    clean, valid = g.clean_boxes(boxes, np.array([100.0, 100.0]), convention=conv)
    if conv == "darkpose":  # x2 = x1 + max(0, w - 1): width 1, 1, 1.5, 2, 2.5
        assert valid.tolist() == [True] * 5
        np.testing.assert_allclose(clean[:, 2], [1, 1, 1.5, 2, 2.5])
    else:  # width 0, 0, 0.5, 1, 1.5
        assert valid.tolist() == [False, False, False, True, True]
        np.testing.assert_allclose(clean[3:, 2], [1, 1.5])
    # at the image's last pixel: one pixel left (valid in darkpose only), past it none
    edge = np.array([[99.0, 10.0, 5.0, 5.0], [100.0, 10.0, 5.0, 5.0]])
    assert g.clean_boxes(edge, (100, 100), conv)[1].tolist() == [conv == "darkpose", False]
    # coordinates beyond 2**24 px are invalid even where they would clip into the image
    huge = np.array([[0.0, 0.0, 1e200, 1e200], [-1e200, 0.0, 2e200, 50.0], [0.0, 0.0, 2.0**24, 5.0]])
    assert g.clean_boxes(huge, (100, 100), conv)[1].tolist() == [False, False, True]
    # every valid box crops: finite, invertible affines in both directions
    rng = np.random.default_rng(6)
    many = np.column_stack([rng.uniform(-5, 105, (400, 2)), rng.uniform(0, 4, (400, 2))])
    clean, valid = g.clean_boxes(many, (100, 100), conv)
    assert valid.sum() > 50 and (clean[valid, 2:] >= 1).all()  # 97 valid under hrnet
    assert ((clean[:, 2:].min(1) >= 1) | ~valid).all()
    c, s = g.boxes_to_center_scale(clean[valid], 0.75, convention=conv)
    for size in [(48, 64), (12, 16)]:
        a = g.crop_affine(c, s, rng.uniform(-90, 90, len(c)), size, conv)
        assert np.isfinite(a).all() and np.isfinite(g.invert_affine(a)).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"centers": [[1.0, 2.0], [np.nan, 0.0]]}, r"centers\[1\]: expected finite coordinates"),
        ({"centers": [[1e200, 2.0], [0.0, 0.0]]}, r"centers\[0\]"),
        ({"scales": [[1.0, 1.0], [0.005, 0.01]]}, r"scales\[1\]: .*\(1, 2\*\*24\] px .*'darkpose'"),
        ({"scales": [[0.0, 1.0], [1.0, 1.0]]}, r"scales\[0\]"),
        ({"scales": [[1e200, 1.0], [1.0, 1.0]]}, r"scales\[0\]"),
        ({"scales": [[1.0, np.inf], [1.0, 1.0]]}, r"scales\[0\]"),
        ({"rotations": [0.0, np.nan]}, r"rotations\[1\]: expected finite degrees"),
        ({"output_size": (0, 64)}, r"output_size\[0\]: expected positive"),
        ({"output_size": (48, 64, 3)}, r"output_size: expected \(W, H\) or \(N, 2\)"),
    ],
)
def test_crop_affine_rejects_bad_input_naming_the_field(kwargs, message):
    args = {"centers": [[1.0, 2.0], [3.0, 4.0]], "scales": [[1.0, 1.0], [1.0, 1.0]],
            "rotations": [0.0, 0.0], "output_size": (48, 64), **kwargs}
    with pytest.raises(ValueError, match=message):
        g.crop_affine(**args)


def test_crop_affine_of_one_box_checks_the_same():
    with pytest.raises(ValueError, match=r"centers\[0\]: expected finite"):
        g.crop_affine([np.nan, 0.0], [1.0, 1.0], 0.0, (48, 64))
    with pytest.raises(ValueError, match=r"scales\[0\]: expected a crop window"):
        g.crop_affine([0.0, 0.0], [1e200, 1.0], 0.0, (48, 64))
    with pytest.raises(ValueError, match=r"rotations\[0\]"):
        g.crop_affine([0.0, 0.0], [1.0, 1.0], np.inf, (48, 64))
    with pytest.raises(ValueError, match=r"output_size\[1\]"):  # the second of two sizes
        g.crop_affine([0.0, 0.0], [1.0, 1.0], 0.0, [(48, 64), (-1, 16)])


def test_hrnet_accepts_windows_under_one_pixel():
    # (200 s - 1) divides the darkpose zoom: a window of 1 px or less is degenerate there
    assert np.isfinite(g.crop_affine([5.0, 5.0], [0.004, 0.004], 0.0, (48, 64), "hrnet")).all()
    with pytest.raises(ValueError, match=r"scales\[0\]"):
        g.crop_affine([5.0, 5.0], [0.005, 0.005], 0.0, (48, 64), "darkpose")


@pytest.mark.parametrize("conv", g.CONVENTIONS)
def test_one_box_and_many_boxes_give_the_same_affines(conv):
    """crop_affine and invert_affine compute one box with Python floats and many with
    arrays: the same formula, the same numbers (measured identical)."""
    rng = np.random.default_rng(7)
    n = 25
    c, s, r = rng.uniform(0, 600, (n, 2)), rng.uniform(0.05, 3, (n, 2)), rng.uniform(-90, 90, n)
    sizes = np.array([[192, 256], [48, 64]])
    for inverse in (False, True):
        many = g.crop_affine(c, s, r, (48, 64), conv, inverse=inverse)
        per_size = g.crop_affine(np.repeat(c, 2, 0), np.repeat(s, 2, 0), np.repeat(r, 2),
                                 np.tile(sizes, (n, 1)), conv, inverse=inverse)
        for i in range(n):
            one = g.crop_affine(c[i], s[i], r[i], (48, 64), conv, inverse=inverse)
            np.testing.assert_array_equal(one, many[i : i + 1])
            two = g.crop_affine(c[i], s[i], r[i], sizes, conv, inverse=inverse)
            np.testing.assert_array_equal(two, per_size[2 * i : 2 * i + 2])
            np.testing.assert_array_equal(g.invert_affine(many[i]), g.invert_affine(many)[i])
    with pytest.raises(ValueError, match="singular"):
        g.invert_affine(np.array([[1.0, 2.0, 0.0], [np.nan, 4.0, 0.0]]))


def test_flip_index_is_the_one_definition():
    from darkpose.data import load_metadata

    idx = g.flip_index(17, COCO_PAIRS)
    np.testing.assert_array_equal(idx, [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])
    np.testing.assert_array_equal(g.flip_index(4, [(3, 1)]), [0, 3, 2, 1])
    np.testing.assert_array_equal(load_metadata("coco").flip_index(), idx)
    mpii = load_metadata("mpii")
    np.testing.assert_array_equal(mpii.flip_index(), g.flip_index(16, mpii.flip_pairs))
    assert mpii.flip_index()[[0, 10, 13]].tolist() == [5, 15, 12]
    with pytest.raises(ValueError, match=r"flip pair \(1, 17\) out of range for 17"):
        g.flip_index(17, [(1, 17)])


def test_transform_covariances_rotation_and_scale():
    # a 90 degree turn and a zoom of 2 (translation ignored): x' = -2y, y' = 2x, so
    # var x' = 4 var y, var y' = 4 var x, cov' = -4 cov
    a = np.array([[[0.0, -2.0, 5.0], [2.0, 0.0, -3.0]]])
    cov = np.array([[[[1.0, 0.5], [0.5, 4.0]]]])
    np.testing.assert_allclose(g.transform_covariances(cov, a), [[[[16.0, -2.0], [-2.0, 4.0]]]], atol=1e-12)
    shear = np.array([[[1.0, 2.0, 0.0], [0.0, 1.0, 0.0]]])  # x' = x + 2y: A I A^T, not A^T I A
    np.testing.assert_allclose(g.transform_covariances(np.eye(2)[None, None], shear), [[[[5.0, 2.0], [2.0, 1.0]]]])
    # the crop affine round trip gives the input back
    fwd = g.crop_affine([100.0, 80.0], [1.2, 1.6], 30.0, (48, 64))
    back = g.transform_covariances(g.transform_covariances(cov, fwd), g.invert_affine(fwd))
    np.testing.assert_allclose(back, cov, atol=1e-10)


def test_transform_covariances_unknown_stays_unknown():
    a = np.array([[[0.6, -0.8, 1.0], [0.8, 0.6, 2.0]]])
    inf = np.inf
    cov = np.array([[[[inf, 0.0], [0.0, inf]], [[1.0, 0.0], [0.0, inf]], [[1.0, np.nan], [np.nan, 1.0]],
                     [[2.0, 0.0], [0.0, 2.0]]]])
    out = g.transform_covariances(cov, a)
    assert not np.isnan(out).any()
    assert np.isinf(out[0, :3, [0, 1], [0, 1]]).all() and (out[0, :3, [0, 1], [1, 0]] == 0).all()
    np.testing.assert_allclose(out[0, 3], 2.0 * np.eye(2), atol=1e-12)  # isotropic through a rotation
    with pytest.raises(ValueError, match="covariances must be"):
        g.transform_covariances(np.zeros((1, 2, 3)), a)
