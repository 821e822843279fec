"""Encoding: exact values, weights, both methods, both array types, bad input."""

import warnings

import numpy as np
import pytest
import torch

from codec_reference import encode_loop
from darkpose.codec import MIN_SIGMA, encode


def test_unbiased_values_are_the_gaussian_at_the_exact_position():
    kp = np.array([[[10.3, 7.6], [0.0, 0.0]]])
    maps, weights = encode(kp, np.array([[2, 1]]), (16, 12), 2.0)
    assert maps.shape == (1, 2, 12, 16) and maps.dtype == np.float32
    assert weights.dtype == np.float32 and weights.tolist() == [[1.0, 1.0]]
    # exp(-((x - 10.3)^2 + (y - 7.6)^2) / 8) at (x, y) = (10, 8) and (3, 1)
    assert maps[0, 0, 8, 10] == pytest.approx(np.exp(-(0.09 + 0.16) / 8), abs=1e-7)
    assert maps[0, 0, 1, 3] == pytest.approx(np.exp(-(7.3**2 + 6.6**2) / 8), abs=1e-7)
    assert maps[0, 1, 0, 0] == 1.0  # a keypoint at the corner peaks there
    assert maps.max() <= 1.0


def test_unbiased_maps_hold_no_subnormal_values_and_differ_from_the_gaussian_by_less_than_2_to_the_minus_63():
    # the whole frame's Gaussian at sigma 2 on 64x48 reaches far below float32's smallest
    # normal (2^-126); products of those are slow on some CPUs, so profile values below
    # 2^-63 are 0 (the unflushed maps had 7% subnormal values here)
    kp = np.array([[[2.3, 3.6], [45.0, 60.5], [24.0, 32.0]]])
    maps, _ = encode(kp, np.ones((1, 3)), (48, 64), 2.0)
    tiny = np.finfo(np.float32).tiny
    assert not ((maps > 0) & (maps < tiny)).any()
    x, y = np.arange(48.0), np.arange(64.0)[:, None]
    exact = np.exp(-((x - kp[0, :, 0, None, None]) ** 2 + (y - kp[0, :, 1, None, None]) ** 2) / 8.0)
    kept, flushed = maps[0] > 0, maps[0] == 0
    # float32 relative error where a value is kept (measured 5.4e-6: the exponent's rounding near -43)
    assert (np.abs(maps[0] - exact)[kept] / exact[kept]).max() < 1e-5
    assert exact[flushed].max() <= 2.0**-63 * (1 + 1e-5)  # a flushed value was below 2^-63
    assert (flushed & (exact > 2.0**-126)).any()  # and some would have been normal: the test is not empty


def test_quantized_rounds_the_centre_and_truncates_at_three_sigma():
    kp = np.array([[[10.5, 7.49]]])
    maps, _ = encode(kp, np.ones((1, 1)), (24, 20), 2.0, method="quantized")
    m = maps[0, 0]
    assert np.unravel_index(m.argmax(), m.shape) == (7, 11)  # floor(10.5 + .5), floor(7.49 + .5)
    assert m[7, 11] == 1.0
    assert m[7, 11 + 6] == pytest.approx(np.exp(-36 / 8), rel=1e-6)  # edge of the patch
    assert m[7, 11 + 7] == 0.0 and m[7 + 7, 11] == 0.0  # outside it
    assert m[7 + 6, 11 + 6] == pytest.approx(np.exp(-72 / 8), rel=1e-6)  # square patch corner


@pytest.mark.parametrize("method", ["unbiased", "quantized"])
def test_matches_a_per_keypoint_loop(method):
    rng = np.random.default_rng(1)
    kp = rng.uniform(-8, 56, (5, 17, 2))
    vis = rng.integers(0, 3, (5, 17))
    maps, weights = encode(kp, vis, (48, 64), 2.0, method=method)
    ref_maps, ref_weights = encode_loop(kp, vis, (48, 64), 2.0, method)
    np.testing.assert_array_equal(weights, ref_weights)
    np.testing.assert_allclose(maps, ref_maps, atol=2e-7)  # measured 1.7e-7 (float32 against float64)


def test_weights_zero_for_unlabelled_and_for_boxes_entirely_outside():
    sigma = 2.0  # 3 sigma = 6
    kp = np.array([[[10, 10], [-6.0, 10], [-6.01, 10], [53.0, 10], [53.01, 10], [10, 69.01], [10, 10]]])
    vis = np.array([[1, 1, 1, 1, 1, 1, 0]])
    maps, weights = encode(kp, vis, (48, 64), sigma)
    assert weights.tolist() == [[1, 1, 0, 1, 0, 0, 0]]
    assert np.all(maps[0, weights[0] == 0] == 0)
    assert maps[0, 1, 10, 0] == pytest.approx(np.exp(-36 / 8), rel=1e-6)  # the tail inside


def test_unlabelled_keypoints_may_be_nan_and_visibility_may_be_float_or_bool():
    kp = np.array([[[np.nan, np.nan], [3.0, 4.0], [3.0, 4.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        maps, weights = encode(kp, np.array([[0.0, 0.7, np.nan]]), (8, 8), 1.0)  # NaN > 0 is false: unlabelled
        assert weights.tolist() == [[0.0, 1.0, 0.0]] and np.isfinite(maps).all() and np.all(maps[0, 2] == 0)
        _, weights = encode(kp, np.array([[False, True, False]]), (8, 8), 1.0, method="quantized")
    assert weights.tolist() == [[0.0, 1.0, 0.0]]


def test_torch_in_torch_out_and_same_values():
    rng = np.random.default_rng(2)
    kp = rng.uniform(0, 40, (3, 5, 2))
    vis = np.ones((3, 5))
    maps, weights = encode(torch.from_numpy(kp), torch.from_numpy(vis), (48, 64), 2.0)
    assert isinstance(maps, torch.Tensor) and maps.dtype == torch.float32
    ref, _ = encode(kp, vis, (48, 64), 2.0)
    np.testing.assert_array_equal(maps.numpy(), ref)
    assert weights.shape == (3, 5)


def test_empty_inputs():
    maps, weights = encode(np.zeros((0, 17, 2)), np.zeros((0, 17)), (48, 64), 2.0)
    assert maps.shape == (0, 17, 64, 48) and weights.shape == (0, 17)
    maps, weights = encode(np.zeros((4, 0, 2)), np.zeros((4, 0)), (48, 64), 2.0)
    assert maps.shape == (4, 0, 64, 48)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros((2, 2)), np.ones(2), (8, 8), 2.0), r"keypoints: expected .* \(N, K, 2\)"),
        ((np.zeros((1, 2, 3)), np.ones((1, 2)), (8, 8), 2.0), r"keypoints: expected"),
        ((np.zeros((1, 2, 2), dtype=int), np.ones((1, 2)), (8, 8), 2.0), r"keypoints: expected a float"),
        ((np.zeros((1, 2, 2)), np.ones((1, 3)), (8, 8), 2.0), r"visible: expected shape \(1, 2\)"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (8, 0), 2.0), r"heatmap_size: expected \(W, H\)"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (8.5, 8), 2.0), r"heatmap_size"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), 8, 2.0), r"heatmap_size"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), "88", 2.0), r"heatmap_size: .* got '88'"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (True, 8), 2.0), r"heatmap_size: .* got \(True, 8\)"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (8, 8), 0.0), r"sigma: expected a finite number of at least MIN_SIGMA"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (8, 8), float("nan")), r"sigma"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (8, 8), float("inf")), r"sigma"),
        # 1e-20: NaN maps (-1 / (2 sigma^2) overflows float32); 0.05: weight 1, all-zero maps
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (8, 8), 1e-20), r"sigma: .* 1/6 px, got 1e-20"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (8, 8), 0.05), r"sigma: .* 1/6 px, got 0.05"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (8, 8), 0.166), r"sigma: .* got 0.166"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (8, 8), "2"), r"sigma: .* got '2'"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2)), (8, 8), True), r"sigma: .* got True"),
        ((np.full((1, 2, 2), np.nan), np.ones((1, 2)), (8, 8), 2.0), r"labelled keypoint \[0, 0\]"),
        ((np.array([[[0, 0], [np.inf, 1]]]), np.ones((1, 2)), (8, 8), 2.0), r"labelled keypoint \[0, 1\] .*inf"),
        ((np.array([["a", "b"]]), np.ones((1, 2)), (8, 8), 2.0), r"keypoints: expected a numeric"),
        ((np.zeros((1, 2, 2)), np.ones((1, 2), complex), (8, 8), 2.0), r"visible: expected real numbers"),
        ((np.zeros((1, 2, 2)), None, (8, 8), 2.0), r"visible: expected a numeric array"),
    ],
)
def test_bad_input_is_a_clear_error(args, message):
    with pytest.raises(ValueError, match=message):
        encode(*args)


def test_unknown_method():
    with pytest.raises(ValueError, match=r"method: expected one of \('unbiased', 'quantized'\)"):
        encode(np.zeros((1, 1, 2)), np.ones((1, 1)), (8, 8), 2.0, method="gaussian")


def test_input_is_not_modified():
    kp = np.array([[[3.7, 2.2]]])
    kp_copy = kp.copy()
    encode(kp, np.ones((1, 1)), (8, 8), 1.0, method="quantized")
    np.testing.assert_array_equal(kp, kp_copy)


def test_out_buffer_is_filled_and_returned_and_checked():
    kp = np.array([[[3.2, 4.9]], [[1.0, 1.0]]])
    buffer = np.full((2, 1, 8, 6), 7.0, dtype=np.float32)
    maps, weights = encode(kp, np.array([[1], [0]]), (6, 8), 1.0, out=buffer)
    assert maps is buffer
    np.testing.assert_array_equal(buffer, encode(kp, np.array([[1], [0]]), (6, 8), 1.0)[0])
    tensor_buffer = torch.empty((2, 1, 8, 6))
    maps, _ = encode(torch.from_numpy(kp), torch.ones(2, 1), (6, 8), 1.0, out=tensor_buffer)
    assert maps is tensor_buffer
    with pytest.raises(ValueError, match=r"out: expected a contiguous float32 array of shape \(2, 1, 8, 6\)"):
        encode(kp, np.ones((2, 1)), (6, 8), 1.0, out=np.zeros((2, 1, 6, 8), np.float32))
    with pytest.raises(ValueError, match=r"out: expected a contiguous float32"):
        encode(kp, np.ones((2, 1)), (6, 8), 1.0, out=np.zeros((2, 1, 8, 6), np.float64))
    # NumPy keypoints may write into a CPU tensor: the same memory
    tensor_buffer.fill_(7.0)
    assert encode(kp, np.array([[1], [0]]), (6, 8), 1.0, out=tensor_buffer)[0] is tensor_buffer
    np.testing.assert_array_equal(tensor_buffer.numpy(), buffer)


@pytest.mark.parametrize(
    ("out", "message"),
    [
        (np.full((2, 1, 6, 8), 7.0, np.float32).transpose(0, 1, 3, 2), r"out: expected a contiguous"),
        (np.full((2, 1, 8, 6), 7.0, ">f4"), r"out: expected a contiguous float32 .* dtype >f4"),
        # bfloat16 is read as a float32 copy, which would have taken the heatmaps
        (torch.full((2, 1, 8, 6), 7.0, dtype=torch.bfloat16), r"out: expected .* dtype bfloat16"),
        ([[[[7.0] * 6] * 8]] * 2, r"out: expected .*, got list"),
    ],
)
def test_out_that_would_be_written_as_a_copy_is_refused(out, message):
    kp = np.array([[[3.2, 4.9]], [[1.0, 1.0]]])
    with pytest.raises(ValueError, match=message):
        encode(kp, np.ones((2, 1)), (6, 8), 1.0, out=out)


def test_read_only_out_is_refused_before_writing():
    buffer = np.full((1, 1, 8, 6), 7.0, dtype=np.float32)
    buffer.setflags(write=False)
    with pytest.raises(ValueError, match=r"out: expected a writable array, got a read-only one"):
        encode(np.array([[[3.2, 4.9]]]), np.ones((1, 1)), (6, 8), 1.0, out=buffer)
    assert np.all(buffer == 7.0)


@pytest.mark.parametrize("method", ["unbiased", "quantized"])
def test_at_the_smallest_sigma_every_map_of_weight_1_holds_a_pixel_of_its_box(method):
    """At MIN_SIGMA = 1/6 the 3-sigma box is one pixel wide: wherever a keypoint lies, in the
    frame or near it, a map of weight 1 has a pixel inside its box, worth >= exp(-9) (the box's
    corner). Below it (refused) a keypoint between pixels got weight 1 and a map of 1.1e-4 at
    sigma 0.166, 1e-11 at 0.1, nothing at 0.05."""
    grid = np.arange(-1.0, 8.0, 0.05)
    kp = np.stack(np.meshgrid(grid, grid[::3]), axis=-1).reshape(1, -1, 2)
    maps, weights = encode(kp, np.ones(kp.shape[:2]), (6, 5), MIN_SIGMA, method)
    peaks = maps.reshape(kp.shape[1], -1).max(axis=1)[weights[0] == 1]
    # measured: exp(-9) (unbiased, a keypoint midway between pixels), 1 (quantized)
    assert len(peaks) > 1000 and peaks.min() >= np.float32(np.exp(-9)) * (1 - 1e-6)


def test_far_away_labelled_keypoints_get_weight_0_without_overflow_warnings():
    kp = np.array([[[1e200, 3.0], [3.0, -1e300], [3e38, 3e38]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float32 overflow once warned here
        maps, weights = encode(kp, np.ones((1, 3)), (8, 8), 2.0)
    assert weights.tolist() == [[0.0, 0.0, 0.0]] and np.all(maps == 0)
