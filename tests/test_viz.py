"""Drawing: skeleton limbs and keypoints where expected, hidden keypoints, colours from the
metadata or the default palette, boxes, the heatmap overlay, image grids, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from darkpose.data.keypoint_metadata import load_metadata, metadata_from_dict
from darkpose.viz import DEFAULT_COLORS, draw_poses, image_grid

HAND = {
    "keypoints": ["head", "left_hand", "right_hand"],
    "flip_pairs": [["left_hand", "right_hand"]],
    "sigmas": [0.1, 0.1, 0.1],
    "skeleton": [["head", "left_hand"], ["head", "right_hand"]],
}
META = metadata_from_dict(HAND)
# head at (50, 20), left hand at (20, 80), right hand at (80, 80); limb midpoints (35, 50), (65, 50)
POSE = np.array([[[50.0, 20.0, 1.0], [20.0, 80.0, 1.0], [80.0, 80.0, 1.0]]])


def bgr(rgb):
    return list(rgb[::-1])


def black(h=100, w=100):
    return np.zeros((h, w, 3), np.uint8)


def test_limbs_and_dots_in_default_side_colours():
    out = draw_poses(black(), POSE, META, thickness=3)
    # limb head-left_hand: the ends' sides differ -> centre colour; the dots take their side
    assert out[50, 35].tolist() == bgr(DEFAULT_COLORS["centre"])
    assert out[50, 65].tolist() == bgr(DEFAULT_COLORS["centre"])
    assert out[80, 20].tolist() == bgr(DEFAULT_COLORS["left"])
    assert out[80, 80].tolist() == bgr(DEFAULT_COLORS["right"])
    assert out[20, 50].tolist() == bgr(DEFAULT_COLORS["centre"])
    # away from the skeleton nothing is drawn
    assert not out[:, :12].any() and not out[90:].any() and not out[:10].any()


def test_limb_between_two_same_side_keypoints_takes_that_side():
    meta = metadata_from_dict({**HAND, "skeleton": [["left_hand", "left_foot"]],
                               "keypoints": ["head", "left_hand", "left_foot"], "flip_pairs": []})
    out = draw_poses(black(), POSE, meta, thickness=3)
    assert out[80, 50].tolist() == bgr(DEFAULT_COLORS["left"])  # on the limb (20, 80)-(80, 80)
    assert out[50, 35].tolist() == [0, 0, 0]  # no limb head-left_hand in this skeleton


def test_hidden_keypoint_and_its_limbs_are_not_drawn():
    pose = POSE.copy()
    pose[0, 2, 2] = 0.29  # right hand under the default threshold 0.3
    out = draw_poses(black(), pose, META, thickness=3)
    assert out[75:86, 75:86].sum() == 0  # the right hand's spot
    assert out[50, 65].tolist() == [0, 0, 0]  # the limb head-right_hand
    assert out[50, 35].tolist() == bgr(DEFAULT_COLORS["centre"])  # the other limb still drawn
    pose[0, 2, 2] = 0.3  # at the threshold: shown
    assert draw_poses(black(), pose, META, thickness=3)[80, 80].any()


def test_non_finite_keypoints_are_skipped():
    pose = POSE.copy()
    pose[0, 2, 0] = np.nan
    pose[0, 1, 2] = np.inf
    out = draw_poses(black(), pose, META, thickness=3)
    assert out[20, 50].any()  # only the head dot is left
    assert out[50:].sum() == 0
    far = POSE.copy()
    far[0, 2, :2] = 1e30  # beyond +-2**24 px: hidden, no overflow inside OpenCV
    assert draw_poses(black(), far, META, thickness=3)[50, 65].tolist() == [0, 0, 0]


def test_input_untouched_and_grey_input_accepted():
    image = np.full((100, 100, 3), 7, np.uint8)
    before = image.copy()
    out = draw_poses(image, POSE, META)
    np.testing.assert_array_equal(image, before)
    assert out is not image and out.dtype == np.uint8 and out.shape == (100, 100, 3)
    grey = draw_poses(np.full((100, 100), 7, np.uint8), POSE, META)
    np.testing.assert_array_equal(grey, out)


def test_colours_from_the_metadata():
    meta = metadata_from_dict({**HAND, "keypoint_colors": [[10, 20, 30], [40, 50, 60], [70, 80, 90]],
                               "limb_colors": [[1, 2, 3], [4, 5, 6]]})
    assert meta.keypoint_colors[1] == (40, 50, 60)
    out = draw_poses(black(), POSE, meta, thickness=3)
    assert out[80, 20].tolist() == [60, 50, 40]  # RGB in the file, BGR in the image
    assert out[50, 35].tolist() == [3, 2, 1]
    assert out[50, 65].tolist() == [6, 5, 4]


def test_builtin_metadata_colours():
    coco, mpii = load_metadata("coco"), load_metadata("mpii")
    assert len(coco.keypoint_colors) == 17 and len(coco.limb_colors) == len(coco.skeleton) == 19
    assert len(mpii.keypoint_colors) == 16 and len(mpii.limb_colors) == len(mpii.skeleton) == 15
    for meta in (coco, mpii):  # every left keypoint coloured unlike its right partner
        for a, b in meta.flip_pairs:
            assert meta.keypoint_colors[a] != meta.keypoint_colors[b]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("keypoint_colors", [[0, 0, 0]], r"'keypoint_colors' must be a list of 3 colours .*got 1 entries"),
        ("keypoint_colors", "red", r"'keypoint_colors' must be a list of 3 colours .*got str"),
        ("limb_colors", [[0, 0, 0], [0, 0, 256]], r"'limb_colors': entry 1 is \[0, 0, 256\], expected \[R, G, B\]"),
        ("limb_colors", [[0, 0, 0], [0, 0.5, 0]], r"'limb_colors': entry 1"),
        ("limb_colors", [[0, 0, 0], [True, 0, 0]], r"'limb_colors': entry 1"),
        ("limb_colors", [[0, 0, 0]], r"'limb_colors' must be a list of 2 colours \(one per skeleton pair\)"),
    ],
)
def test_bad_colours_are_named(field, value, message):
    with pytest.raises(ValueError, match="hands.json: field " + message):
        metadata_from_dict({**HAND, field: value}, where="hands.json")


def test_boxes_drawn_as_rectangles():
    out = draw_poses(black(), POSE[:, :, :] * [1, 1, 0], META, boxes=[[10, 15, 80, 70]], thickness=3)
    assert out[15, 50].tolist() == [255, 255, 255]  # top edge y = 15
    assert out[85, 50].tolist() == [255, 255, 255]  # bottom edge y = 15 + 70
    assert out[50, 10].tolist() == [255, 255, 255] and out[50, 90].tolist() == [255, 255, 255]
    assert out[50, 50].tolist() == [0, 0, 0]  # inside; keypoints hidden (scores 0)
    nan_box = draw_poses(black(), POSE, META, boxes=[[np.nan, 0, 10, 10]])
    np.testing.assert_array_equal(nan_box, draw_poses(black(), POSE, META))


def test_default_thickness_scales_with_the_image():
    small = draw_poses(black(100, 100), POSE, META)  # max(1, round(100 / 320)) = 1
    large = draw_poses(black(1000, 1000), POSE * [10, 10, 1], META)  # round(1000 / 320) = 3
    assert (small[50] > 0).any(axis=1).sum() < (large[500] > 0).any(axis=1).sum() / 2


def test_heatmap_overlay_changes_pixels_around_the_peak_only():
    image = np.full((64, 64, 3), 128, np.uint8)
    hm = np.zeros((1, 3, 16, 16))
    yy, xx = np.mgrid[:16, :16]
    hm[0, 1] = np.exp(-((xx - 8) ** 2 + (yy - 5) ** 2) / 2.0)  # sigma 1 heatmap px
    hm[0, 2, 0, 0] = np.nan  # NaN counts as 0
    affine = np.array([[[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]]])  # heatmap px -> image px, x4
    hidden = POSE * [1, 1, 0]
    out = draw_poses(image, hidden, META, heatmaps=hm, heatmap_to_image=affine)
    changed = (out != image).any(axis=2)
    assert changed[20, 32]  # the peak (8, 5) * 4
    ys, xs = np.nonzero(changed)
    # sigma 4 image px: farther out the blend rounds back to the grey (measured: max 13.45 px off)
    assert np.hypot(xs - 32, ys - 20).max() < 14
    # JET at 1 is BGR (0, 0, 128), blended 60% over grey 128: 0.4 * 128 = 51.2, 128
    np.testing.assert_array_equal(out[20, 32], [51, 51, 128])
    # a person without a usable affine gets no overlay
    nan_affine = np.full((1, 2, 3), np.nan)
    np.testing.assert_array_equal(draw_poses(image, hidden, META, heatmaps=hm, heatmap_to_image=nan_affine), image)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keypoints": np.zeros((1, 2, 3))}, r"keypoints: expected shape \(n, 3, 3\), got \(1, 2, 3\)"),
        ({"keypoints": "x"}, "keypoints: expected an array of numbers"),
        ({"boxes": np.zeros((2, 4))}, r"boxes: expected shape \(1, 4\), got \(2, 4\)"),
        ({"heatmaps": np.zeros((1, 3, 4, 4))}, "heatmaps and heatmap_to_image: give both or neither"),
        ({"heatmaps": np.zeros((1, 2, 4, 4)), "heatmap_to_image": np.zeros((1, 2, 3))},
         r"heatmaps: expected shape \(1, 3, n, n\)"),
        ({"heatmaps": np.zeros((1, 3, 4, 4)), "heatmap_to_image": np.zeros((2, 3))},
         r"heatmap_to_image: expected shape \(1, 2, 3\)"),
        ({"image_bgr": np.zeros((10, 10, 4), np.uint8)}, r"image_bgr: expected an image of shape \(H, W, 3\)"),
        ({"image_bgr": np.zeros((10, 10, 3), np.uint16)}, "image_bgr: expected dtype uint8, got uint16"),
        ({"thickness": 0}, "thickness: expected a positive integer, got 0"),
        ({"score_threshold": float("nan")}, "score_threshold: expected a finite number"),
    ],
)
def test_bad_input_names_the_field(kwargs, message):
    args = {"image_bgr": black(), "keypoints": POSE, **kwargs}
    with pytest.raises(ValueError, match=message):
        draw_poses(args.pop("image_bgr"), args.pop("keypoints"), META, **args)


def test_no_person_leaves_the_image_as_it_was():
    image = np.full((30, 40, 3), 9, np.uint8)
    out = draw_poses(image, np.zeros((0, 3, 3)), META, boxes=np.zeros((0, 4)),
                     heatmaps=np.zeros((0, 3, 8, 8)), heatmap_to_image=np.zeros((0, 2, 3)))
    np.testing.assert_array_equal(out, image)


def test_image_grid():
    a = np.full((40, 60, 3), 1, np.uint8)
    b = np.full((20, 30, 3), 2, np.uint8)  # half size: scaled up to fill the cell
    c = np.full((40, 30), 3, np.uint8)  # grey, narrow: centred, black beside it
    grid = image_grid([a, b, c], columns=2)
    assert grid.shape == (80, 120, 3)  # 2 rows of 2 cells of 60 x 40
    np.testing.assert_array_equal(grid[:40, :60], a)
    assert (grid[:40, 60:] == 2).all()
    np.testing.assert_array_equal(grid[40:, 15:45], 3)
    assert not grid[40:, :15].any() and not grid[40:, 45:].any() and not grid[40:, 60:].any()
    assert image_grid([a, b], columns=5).shape == (40, 120, 3)  # at most len(images) columns
    assert image_grid([a], 1, cell_size=(30, 30)).shape == (30, 30, 3)
    with pytest.raises(ValueError, match="images: expected at least one image"):
        image_grid([], 2)
    with pytest.raises(ValueError, match="columns: expected a positive integer"):
        image_grid([a], 0)
    with pytest.raises(ValueError, match=r"images\[1\]: expected dtype uint8"):
        image_grid([a, a.astype(np.float32)], 2)
    with pytest.raises(ValueError, match="cell_size: expected"):
        image_grid([a], 1, cell_size=(0, 5))
