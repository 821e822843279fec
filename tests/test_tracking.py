"""One-Euro filter against figures of the method computed by hand, the greedy IoU tracker, and
the pose smoother (each person filtered by its own track's filter)."""

from __future__ import annotations

import numpy as np
import pytest

from darkpose.tracking import IoUTracker, OneEuroFilter, PoseSmoother, box_iou

# min_cutoff 1 Hz, T_e = 0.1 s: tau = 1 / (2 pi) = 0.1591549, alpha = 1 / (1 + 1.591549) = 0.3858695
ALPHA = 0.3858695


def test_one_euro_first_sample_passes_and_constant_stays_constant():
    f = OneEuroFilter(min_cutoff=0.5, beta=0.7)
    x = np.array([[3.0, -2.5], [1e3, 0.0]])
    np.testing.assert_array_equal(f(x, 0.0), x)
    for i in range(1, 20):
        np.testing.assert_allclose(f(x, i / 30), x, rtol=1e-15, atol=0)


def test_one_euro_beta_zero_is_the_exponential_smoothing_of_a_step():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    assert f(np.array([0.0]), 0.0)[0] == 0.0
    # y_n = 1 - (1 - alpha)^n: 0.3858695, 1 - 0.6141305^2 = 0.6228438, 1 - 0.6141305^3 = 0.7683769
    got = [f(np.array([1.0]), 0.1 * n)[0] for n in (1, 2, 3)]
    np.testing.assert_allclose(got, [0.3858695, 0.6228438, 0.7683769], atol=1e-7)


def test_one_euro_beta_follows_fast_motion():
    f = OneEuroFilter(min_cutoff=1.0, beta=1.0, d_cutoff=1.0)
    f(np.array([0.0]), 0.0)
    # dx = 1 / 0.1 = 10; dx^ = 0.3858695 * 10 = 3.858695; cutoff = 1 + 3.858695 = 4.858695 Hz;
    # tau = 1 / (2 pi 4.858695) = 0.0327568; alpha = 1 / (1 + 0.327568) = 0.753258
    np.testing.assert_allclose(f(np.array([1.0]), 0.1), [0.753258], atol=1e-6)


def test_one_euro_non_finite_elements_pass_and_keep_their_state():
    f = OneEuroFilter()
    f(np.array([0.0, np.nan]), 0.0)
    out = f(np.array([np.nan, 1.0]), 0.1)
    assert np.isnan(out[0]) and out[1] == 1.0  # NaN returned as NaN; a first finite sample passed
    out = f(np.array([1.0, 1.0]), 0.2)
    # element 0 resumes from its state 0 at t = 0 with T_e = 0.2: alpha = 1 / (1 + 0.1591549 / 0.2)
    np.testing.assert_allclose(out, [1 / (1 + 0.1591549 / 0.2), 1.0], atol=1e-7)


def test_one_euro_bad_input():
    f = OneEuroFilter()
    f(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="t: times must increase, got 1.0 after 1.0"):
        f(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match=r"x: expected shape \(3,\) \(as the first sample\), got \(4,\)"):
        f(np.zeros(4), 2.0)
    with pytest.raises(ValueError, match="t: expected a finite time"):
        f(np.zeros(3), float("nan"))
    for field, value in (("min_cutoff", 0.0), ("beta", -1.0), ("d_cutoff", np.inf)):
        with pytest.raises(ValueError, match=f"{field}: expected a finite number"):
            OneEuroFilter(**{field: value})


def test_box_iou():
    a = np.array([[0.0, 0.0, 10.0, 10.0], [np.nan, 0.0, 1.0, 1.0]])
    b = np.array([[5.0, 0.0, 10.0, 10.0], [20.0, 20.0, 5.0, 5.0], [0.0, 0.0, 0.0, 0.0]])
    # overlap 5 x 10 = 50, union 100 + 100 - 50 = 150; disjoint 0; empty union 0; NaN 0
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert box_iou(a, np.zeros((0, 4))).shape == (2, 0)


def test_tracker_keeps_ids_of_moving_boxes_and_numbers_new_ones():
    t = IoUTracker(iou_threshold=0.3)
    for step in range(10):  # two persons walking towards each other, 2 px per frame
        ids = t.update([[100.0 - 2 * step, 0, 20, 40], [2.0 * step, 0, 20, 40]])
        np.testing.assert_array_equal(ids, [0, 1])
    ids = t.update([[300.0, 0, 20, 40], [18.0, 0, 20, 40], [np.nan, 0, 5, 5], [82.0, 0, 20, 40]])
    np.testing.assert_array_equal(ids, [2, 1, -1, 0])  # order of the boxes does not matter
    np.testing.assert_array_equal(t.track_ids, [0, 1, 2])


def test_tracker_greedy_takes_the_best_pair_first():
    t = IoUTracker(iou_threshold=0.1)
    t.update([[0.0, 0, 10, 10], [6.0, 0, 10, 10]])
    # box [5, 0]: IoU 1/3 with track 0, 9/11 with track 1 -> track 1; box [-1, 0] -> track 0
    np.testing.assert_array_equal(t.update([[5.0, 0, 10, 10], [-1.0, 0, 10, 10]]), [1, 0])
    # a box far from both (IoU 0 < 0.1) starts a track
    np.testing.assert_array_equal(t.update([[50.0, 0, 10, 10]]), [2])


def test_tracker_drops_a_track_after_max_age_frames():
    t = IoUTracker(max_age=2)
    box = [[0.0, 0, 10, 10]]
    assert t.update(box)[0] == 0
    t.update(np.zeros((0, 4)))
    t.update(np.zeros((0, 4)))
    assert t.update(box)[0] == 0  # lost for 2 frames: kept
    for _ in range(3):
        t.update(np.zeros((0, 4)))
    assert t.track_ids.size == 0
    assert t.update(box)[0] == 1  # lost for 3 frames: a new track


def test_smoother_filters_each_person_with_its_tracks_filter():
    rng = np.random.default_rng(0)
    s = PoseSmoother(min_cutoff=0.8, beta=0.05, max_age=1)
    filters = [OneEuroFilter(0.8, 0.05), OneEuroFilter(0.8, 0.05)]
    for n in range(6):
        t = n / 25
        kpts = rng.normal(size=(2, 4, 3)) + [[[10, 10, 0]], [[60, 10, 0]]]
        boxes = np.array([[0.0 + n, 0, 20, 20], [50.0 - n, 0, 20, 20]])
        order = [1, 0] if n % 2 else [0, 1]  # the persons come in either order
        out = s.update(kpts[order], boxes[order], t)
        for row, person in enumerate(order):
            np.testing.assert_array_equal(out[row, :, :2], filters[person](kpts[person, :, :2], t))
            np.testing.assert_array_equal(out[row, :, 2], kpts[person, :, 2])  # scores pass
        np.testing.assert_array_equal(s.track_ids, order)
    assert not np.array_equal(out, kpts[order])  # smoothing did act
    # a new person starts unsmoothed
    new = rng.normal(size=(1, 4, 3)) + 200
    out = s.update(np.concatenate([kpts, new]), np.concatenate([boxes, [[200.0, 200, 20, 20]]]), 1.0)
    np.testing.assert_array_equal(out[2], new[0])
    # person 0 lost for 2 frames (> max_age 1): back at the same place, a new track, unsmoothed
    s.update(kpts[1:], boxes[1:], 1.1)
    s.update(kpts[1:], boxes[1:], 1.2)
    moved = kpts[:1] + 0.5
    np.testing.assert_array_equal(s.update(moved, boxes[:1], 1.3), moved)


def test_smoother_bad_input():
    s = PoseSmoother()
    s.update(np.zeros((1, 2, 3)), [[0, 0, 5, 5]], 0.5)
    with pytest.raises(ValueError, match="t_seconds: times must increase, got 0.5 after 0.5"):
        s.update(np.zeros((0, 2, 3)), np.zeros((0, 4)), 0.5)
    with pytest.raises(ValueError, match=r"boxes: expected shape \(1, 4\), got \(2, 4\)"):
        s.update(np.zeros((1, 2, 3)), np.zeros((2, 4)), 1.0)
    with pytest.raises(ValueError, match=r"keypoints: expected shape \(n, n, 3\)"):
        s.update(np.zeros((1, 2)), np.zeros((1, 4)), 1.0)
    with pytest.raises(ValueError, match="iou_threshold"):
        PoseSmoother(iou_threshold=1.5)
