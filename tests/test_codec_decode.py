"""Decoding: parity with a per-keypoint reference, the border, degenerate input, types."""

import cv2
import numpy as np
import pytest
import torch

from codec_reference import decode_loop
from darkpose.codec import decode, encode, gaussian_kernel
from darkpose.codec._backend import torch_backend
from darkpose.codec.decoding import _decode
from darkpose.codec.encoding import _encode
from darkpose.codec.synthetic import keypoint_positions, noisy_heatmaps

SIZE = (48, 64)  # (W, H)


def gaussian_maps(rng, n, k, sigma=2.0, spread="uniform", size=SIZE):
    kp = keypoint_positions(rng, n, k, size, spread=spread)
    maps, _ = encode(kp, np.ones((n, k)), size, sigma)
    return kp, maps


@pytest.mark.parametrize("size", [1, 3, 5, 7, 9, 11, 13, 17, 25])
def test_kernel_is_opencvs(size):
    np.testing.assert_allclose(
        gaussian_kernel(size), cv2.getGaussianKernel(size, 0)[:, 0], rtol=1e-15, atol=0
    )


def test_argmax_is_the_first_integer_maximum():
    maps = np.zeros((1, 2, 5, 6), dtype=np.float32)
    maps[0, 0, 3, 4] = 2.0
    maps[0, 1, 1, 2] = maps[0, 1, 4, 0] = 1.0  # a tie: the first in row-major order wins
    coords, scores = decode(maps, "argmax")
    assert coords.tolist() == [[[4.0, 3.0], [2.0, 1.0]]]
    assert scores.tolist() == [[2.0, 1.0]]


@pytest.mark.parametrize("method", ["argmax", "shift"])
def test_integer_methods_match_the_loop_exactly(method):
    rng = np.random.default_rng(3)
    kp, maps = gaussian_maps(rng, 8, 17)
    maps = noisy_heatmaps(rng, kp, SIZE, 2.0)
    coords, scores = decode(maps, method)
    ref_coords, ref_scores = decode_loop(maps, method)
    np.testing.assert_array_equal(coords, ref_coords.astype(np.float32))
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


@pytest.mark.parametrize("kernel", [3, 11])
@pytest.mark.parametrize("noise", [0.0, 0.03, 0.1])
def test_dark_reference_matches_the_loop_on_gaussians(kernel, noise):
    rng = np.random.default_rng(4)
    kp = keypoint_positions(rng, 12, 17, SIZE, spread="uniform")
    maps = noisy_heatmaps(rng, kp, SIZE, 2.0, noise=noise, distractor_rate=0.2 if noise else 0.0)
    coords, scores = decode(maps, "dark-reference", kernel)
    ref_coords, ref_scores = decode_loop(maps, "dark-reference", kernel)
    assert np.abs(coords - ref_coords).max() < 1e-4
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


def test_dark_reference_matches_the_loop_on_random_maps_where_the_step_is_short():
    rng = np.random.default_rng(5)
    maps = rng.random((20, 17, 64, 48), dtype=np.float32)
    coords, _ = decode(maps, "dark-reference", 11)
    ref_coords, _ = decode_loop(maps, "dark-reference", 11)
    argmax, _ = decode(maps, "argmax")
    short = np.linalg.norm(ref_coords - argmax, axis=-1) < 1.0
    assert short.sum() > 20  # the comparison is not empty
    assert np.abs(coords - ref_coords)[short].max() < 1e-4


def test_dark_reference_applies_the_clamp_with_the_rescale():
    # a spike in a negative field: blurred taps fall below 1e-10, where the clamp acts on
    # h' * max(h) / max(h') and the rescale matters
    maps = np.full((1, 1, 32, 32), -0.05, dtype=np.float32)
    maps[0, 0, 15, 14] = 1.0
    maps[0, 0, 15, 16] = 0.4
    coords, _ = decode(maps, "dark-reference", 11)
    ref_coords, _ = decode_loop(maps, "dark-reference", 11)
    assert np.abs(coords - ref_coords).max() < 1e-4


def _frame_positions(size):
    """Sub-pixel positions over the whole frame, dense along every edge and in the corners."""
    width, height = size
    xs, ys = np.arange(0, width - 1 + 1e-9, 0.1), np.arange(0, height - 1 + 1e-9, 0.1)
    pts = [(x, y) for y in (0, 0.3, 0.5, 1.2, 2.5, 4.4, 6, 31.7, height - 1.6, height - 1) for x in xs]
    pts += [(x, y) for x in (0, 0.3, 0.5, 1.2, 2.5, 4.4, 6, 23.3, width - 1.6, width - 1) for y in ys]
    c = np.arange(0, 7.01, 0.25)
    for cx in (c, width - 1 - c):
        for cy in (c, height - 1 - c):
            pts += [(a, b) for a in cx for b in cy]
    return np.array(pts)[None]


def _distance_to_edge(kp, size):
    width, height = size
    return np.minimum.reduce([kp[..., 0], width - 1 - kp[..., 0], kp[..., 1], height - 1 - kp[..., 1]])


def test_dark_is_exact_up_to_the_frame_edge_and_the_reference_is_not():
    kp = _frame_positions(SIZE)
    maps, _ = encode(kp, np.ones(kp.shape[:2]), SIZE, 2.0)
    dist = _distance_to_edge(kp, SIZE)[0]

    dark, _ = decode(maps, "dark", 11)
    error = np.linalg.norm(dark - kp, axis=-1)[0]
    for lo, hi in [(0, 2), (2, 4), (4, 6), (6, 99)]:
        band = (dist >= lo) & (dist < hi)
        assert band.sum() > 500
        assert error[band].mean() <= 0.01 and error[band].max() <= 0.05, (lo, hi)

    ref, _ = decode(maps, "dark-reference", 11)
    ref_error = np.linalg.norm(ref - kp, axis=-1)[0]
    assert ref_error[(dist >= 2) & (dist < 4)].mean() > 0.05  # pulled inwards by zero padding
    argmax, _ = decode(maps, "argmax")
    near = dist < 1.5  # where the reference never refines
    np.testing.assert_array_equal(ref[0, near], argmax[0, near])


@pytest.mark.parametrize(("sigma", "kernel", "limit"), [(1.0, 3, 0.02), (3.0, 11, 1e-3), (2.0, 3, 1e-3)])
def test_dark_border_holds_for_other_configs(sigma, kernel, limit):
    kp = _frame_positions(SIZE)
    maps, _ = encode(kp, np.ones(kp.shape[:2]), SIZE, sigma)
    error = np.linalg.norm(decode(maps, "dark", kernel)[0] - kp, axis=-1)[0]
    near = _distance_to_edge(kp, SIZE)[0] < 6
    # sigma 1 with the 3-tap kernel: the sampled Gaussian is not quite Gaussian after the
    # blur, in the interior as at the border (reference and dark alike: 0.018 px at most)
    assert error.max() < limit
    assert error[near].mean() < 1.5 * error[~near].mean() + 1e-4


def test_dark_is_at_least_as_accurate_as_the_reference_under_noise():
    """In the interior "dark" differs from the reference only where the reference's step is
    longer than 1.5 px, which "dark" clips. Pooled over noise levels, mean and median error
    are no worse (to 0.2% of the mean) and the long jumps are gone."""
    dark, ref = [], []
    for seed, noise in enumerate([0.02, 0.05, 0.08, 0.12]):
        rng = np.random.default_rng(60 + seed)
        kp = keypoint_positions(rng, 128, 17, SIZE, spread="person")
        maps = noisy_heatmaps(rng, kp, SIZE, 2.0, noise=noise)
        interior = _distance_to_edge(kp, SIZE) > 8
        dark.append(np.linalg.norm(decode(maps, "dark")[0] - kp, axis=-1)[interior])
        ref.append(np.linalg.norm(decode(maps, "dark-reference")[0] - kp, axis=-1)[interior])
    dark, ref = np.concatenate(dark), np.concatenate(ref)
    assert dark.mean() <= ref.mean() * 1.002
    assert np.median(dark) <= np.median(ref) * 1.002
    assert (dark != ref).mean() < 0.05  # the same algorithm away from the border


def test_dark_is_more_accurate_than_the_reference_near_the_border_under_noise():
    rng = np.random.default_rng(65)
    kp = keypoint_positions(rng, 256, 17, SIZE, spread="uniform")
    maps = noisy_heatmaps(rng, kp, SIZE, 2.0, noise=0.03)
    near = _distance_to_edge(kp, SIZE) < 6
    dark = np.linalg.norm(decode(maps, "dark")[0] - kp, axis=-1)[near]
    ref = np.linalg.norm(decode(maps, "dark-reference")[0] - kp, axis=-1)[near]
    assert dark.mean() < 0.8 * ref.mean()


def test_dark_never_jumps_more_than_one_and_a_half_pixels():
    rng = np.random.default_rng(66)
    maps = rng.random((8, 17, 64, 48), dtype=np.float32)  # no peak at all
    dark, _ = decode(maps, "dark")
    argmax, _ = decode(maps, "argmax")
    ref, _ = decode(maps, "dark-reference")
    assert np.abs(dark - argmax).max() <= 1.5
    assert np.abs(ref - argmax).max() > 3  # the reference's step is unbounded


@pytest.mark.parametrize("method", ["unbiased", "quantized"])
def test_round_trip(method):
    rng = np.random.default_rng(7)
    kp = keypoint_positions(rng, 16, 17, SIZE, spread="uniform")
    maps, _ = encode(kp, np.ones(kp.shape[:2]), SIZE, 2.0, method=method)
    coords, scores = decode(maps, "dark")
    if method == "unbiased":
        assert np.abs(coords - kp).max() < 1e-3
    else:  # a truncated Gaussian at the rounded centre is symmetric about it
        interior = _distance_to_edge(np.floor(kp + 0.5), SIZE) >= 7
        assert np.abs(coords - np.floor(kp + 0.5))[interior].max() < 1e-4
        argmax, _ = decode(maps, "argmax")
        np.testing.assert_array_equal(argmax, np.floor(kp + 0.5))
    assert np.all(scores > 0.7)


# --------------------------------------------------------------------------- degenerate input

ALL = ["argmax", "shift", "dark-reference", "dark"]


@pytest.mark.parametrize("method", ALL)
def test_zero_constant_and_negative_maps(method):
    maps = np.zeros((3, 1, 16, 12), dtype=np.float32)
    maps[1] = 0.5
    maps[2] = -np.linspace(1, 2, 16 * 12).reshape(16, 12)
    coords, scores = decode(maps, method)
    assert coords[:, 0].tolist() == [[0, 0], [0, 0], [0, 0]]  # score <= 0, or a flat map
    assert scores[:, 0].tolist() == pytest.approx([0.0, 0.5, -1.0])


@pytest.mark.parametrize("method", ALL)
def test_non_finite_values_are_read_as_zero(method):
    rng = np.random.default_rng(8)
    kp, maps = gaussian_maps(rng, 1, 6, spread="person")
    maps[0, 0, 5, 5] = np.nan  # a NaN wins the argmax: the map is read with NaN as 0
    maps[0, 1] = np.nan
    maps[0, 2, 0, 0] = np.inf
    peak = np.round(kp[0, 3]).astype(int)
    maps[0, 3, peak[1] + 1, peak[0]] = -np.inf  # inside the window of the maximum
    maps[0, 4, peak[1], peak[0]] = np.inf
    before = maps.copy()
    coords, scores = decode(maps, method)
    assert np.isfinite(coords).all() and np.isfinite(scores).all()
    clean = np.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0)
    ref_coords, ref_scores = decode(clean, method)
    np.testing.assert_allclose(coords, ref_coords, atol=1e-5)  # computed in other batches
    np.testing.assert_array_equal(scores, ref_scores)
    np.testing.assert_array_equal(maps, before)  # NaN-aware: the input is untouched
    assert coords[0, 1].tolist() == [0.0, 0.0] and scores[0, 1] == 0.0


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (2, 3), (4, 4), (5, 5), (3, 20), (9, 6)])
def test_small_maps_give_finite_answers_inside_the_frame(method, shape):
    rng = np.random.default_rng(9)
    maps = rng.random((2, 3) + shape, dtype=np.float32)
    coords, scores = decode(maps, method)
    assert coords.shape == (2, 3, 2) and np.isfinite(coords).all()
    height, width = shape
    if method == "dark-reference" and min(shape) <= 4:  # no step within 2 px of the edge
        np.testing.assert_array_equal(coords, np.round(coords))
    reach = 1.5 if method == "dark" else 0.5  # the step is clipped to 1.5 px
    assert (coords[..., 0] >= -reach).all() and (coords[..., 0] <= width - 1 + reach).all()
    assert (coords[..., 1] >= -reach).all() and (coords[..., 1] <= height - 1 + reach).all()


def test_small_gaussian_map_is_refined_by_dark():
    kp = np.array([[[1.3, 2.6]]])
    maps, _ = encode(kp, np.ones((1, 1)), (5, 5), 1.5)
    coords, _ = decode(maps, "dark", 3)
    assert np.abs(coords - kp).max() < 0.02


@pytest.mark.parametrize("method", ALL)
def test_empty_batches(method):
    for shape in [(0, 17, 64, 48), (2, 0, 64, 48)]:
        coords, scores = decode(np.zeros(shape, dtype=np.float32), method)
        assert coords.shape == shape[:2] + (2,) and scores.shape == shape[:2]
        assert coords.dtype == np.float32


@pytest.mark.parametrize(
    ("maps", "kwargs", "message"),
    [
        (
            np.zeros((17, 64, 48), np.float32),
            {},
            r"expected 4 dimensions \(N, K, H, W\), got shape \(17, 64, 48\)",
        ),
        (np.zeros((1, 1, 8, 8), np.int32), {}, r"expected a floating-point array, got .*int32"),
        (np.zeros((1, 1, 0, 8), np.float32), {}, r"expected H >= 1 and W >= 1"),
        (np.zeros((1, 1, 8, 8), np.float32), {"blur_kernel": 4}, r"blur_kernel: expected an odd positive"),
        (np.zeros((1, 1, 8, 8), np.float32), {"blur_kernel": 0}, r"blur_kernel"),
        (np.zeros((1, 1, 8, 8), np.float32), {"blur_kernel": 3.0}, r"blur_kernel"),
        (np.zeros((1, 1, 8, 8), np.float32), {"method": "taylor"}, r"method: expected one of"),
        ("not an array", {}, r"heatmaps: expected a numeric array"),
    ],
)
def test_bad_input_is_a_clear_error(maps, kwargs, message):
    with pytest.raises(ValueError, match=message):
        decode(maps, **kwargs)


# --------------------------------------------------------------------------- array types


@pytest.mark.parametrize("method", ALL)
def test_numpy_and_torch_agree(method):
    rng = np.random.default_rng(10)
    kp = keypoint_positions(rng, 8, 17, SIZE, spread="uniform")
    maps = noisy_heatmaps(rng, kp, SIZE, 2.0)
    maps[0, :3, 10, 10] = [np.nan, np.inf, -np.inf]
    c_np, s_np = decode(maps, method)
    c_t, s_t = decode(torch.from_numpy(maps), method)
    assert isinstance(c_t, torch.Tensor) and c_t.dtype == torch.float32 and c_t.device == torch.device("cpu")
    np.testing.assert_array_equal(c_t.numpy(), c_np)
    np.testing.assert_array_equal(s_t.numpy(), s_np)
    # the torch backend (what CUDA tensors use), run on the CPU: the same algorithm
    backend = torch_backend(torch.device("cpu"))
    c_tb, s_tb = _decode(backend, torch.from_numpy(maps), lambda a: a, method, 11)
    assert isinstance(c_tb, torch.Tensor)
    np.testing.assert_allclose(c_tb.numpy(), c_np, atol=1e-4)
    np.testing.assert_array_equal(s_tb.numpy(), s_np)


def test_encode_torch_backend_agrees():
    rng = np.random.default_rng(15)
    kp = rng.uniform(-5, 50, (3, 6, 2))
    vis = rng.integers(0, 3, (3, 6))
    for method in ("unbiased", "quantized"):
        ref, ref_w = encode(kp, vis, SIZE, 2.0, method)
        backend = torch_backend(torch.device("cpu"))
        maps, weights = _encode(backend, torch.from_numpy(kp), lambda a: a, vis, SIZE, 2.0, method, None)
        np.testing.assert_allclose(maps.numpy(), ref, atol=1e-6)
        np.testing.assert_array_equal(weights.numpy(), ref_w)


def test_torch_input_with_grad_bfloat16_and_non_contiguous():
    rng = np.random.default_rng(11)
    kp = keypoint_positions(rng, 2, 5, SIZE, spread="person")
    maps, _ = encode(kp, np.ones((2, 5)), SIZE, 2.0)
    t = torch.from_numpy(maps).requires_grad_(True)
    coords, _ = decode(t * 1.0)
    assert not coords.requires_grad and np.abs(coords.numpy() - kp).max() < 1e-3
    coords16, _ = decode(torch.from_numpy(maps).to(torch.bfloat16))
    assert np.abs(coords16.numpy() - kp).max() < 0.05
    transposed = np.ascontiguousarray(maps.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    assert not transposed.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(decode(transposed)[0], decode(maps)[0])


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_dtypes(dtype):
    rng = np.random.default_rng(12)
    kp, maps = gaussian_maps(rng, 2, 5, spread="person")
    coords, scores = decode(maps.astype(dtype))
    assert coords.dtype == np.float32 and scores.dtype == np.float32
    assert np.abs(coords - kp).max() < (0.02 if dtype == np.float16 else 1e-3)


def test_read_only_input_is_fine_and_never_modified():
    rng = np.random.default_rng(13)
    _, maps = gaussian_maps(rng, 2, 5)
    maps.setflags(write=False)
    for method in ALL:
        decode(maps, method)
    copy = maps.copy()
    decode(maps)
    np.testing.assert_array_equal(maps, copy)


def test_large_batch_uses_chunks_and_agrees_with_small_batches():
    rng = np.random.default_rng(14)
    kp = keypoint_positions(rng, 96, 17, SIZE, spread="uniform")
    maps = noisy_heatmaps(rng, kp, SIZE, 2.0)
    whole, _ = decode(maps)
    pieces = np.concatenate([decode(maps[i : i + 7])[0] for i in range(0, 96, 7)])
    np.testing.assert_allclose(whole, pieces, atol=1e-4)  # BLAS rounding depends on the batch


def test_dark_recovers_peaks_just_outside_the_frame_up_to_its_step_limit():
    kp = np.array([[[-1.2, 30.4], [20.6, 64.1], [-0.4, -0.7], [-3.0, 30.0]]])
    maps, weights = encode(kp, np.ones((1, 4)), SIZE, 2.0)
    assert weights.tolist() == [[1, 1, 1, 1]]
    coords, _ = decode(maps, "dark")
    np.testing.assert_allclose(coords[0, :3], kp[0, :3], atol=5e-3)
    np.testing.assert_allclose(coords[0, 3], [-1.5, 30.0], atol=1e-3)  # the step is clipped
    ref, _ = decode(maps, "dark-reference")
    assert np.abs(ref[0, :3] - kp[0, :3]).max() > 0.5
