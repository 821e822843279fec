"""Decoding: parity with a per-keypoint reference, the border, degenerate input, types."""

import cv2
import numpy as np
import pytest
import torch

from codec_reference import decode_loop
from darkpose.codec import MAX_BLUR_KERNEL, decode, decoding, encode, gaussian_kernel
from darkpose.codec.synthetic import keypoint_positions, noisy_heatmaps

SIZE = (48, 64)  # (W, H)
# "dark" on noise-free unbiased targets (sigma 2, kernel 11, 64x48) anywhere in the frame:
# measured max 4.86e-4 px (mean 2.4e-4) over the 14,384 positions of _frame_positions
NOISE_FREE_MAX = 5e-4


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
    # float32 against float64: measured 3.5e-6 on one machine and 6.0e-6 on another (the BLAS's
    # summation order in the float32 blur of 225 values), so a bound of float32 rounding
    assert np.abs(coords - ref_coords).max() < 2e-5
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


def test_dark_reference_matches_the_loop_on_random_maps_where_the_step_is_short():
    rng = np.random.default_rng(5)
    maps = rng.random((20, 17, 64, 48), dtype=np.float32)
    coords, _ = decode(maps, "dark-reference", 11)
    ref_coords, _ = decode_loop(maps, "dark-reference", 11)
    argmax, _ = decode(maps, "argmax")
    short = np.linalg.norm(ref_coords - argmax, axis=-1) < 1.0
    assert short.sum() > 20  # the comparison is not empty
    assert np.abs(coords - ref_coords)[short].max() < 1e-4  # measured 2.4e-5 and 3.9e-5 on two machines


def test_dark_reference_applies_the_clamp_with_the_rescale():
    # a spike in a negative field: blurred taps fall below 1e-10, where the clamp acts on
    # h' * max(h) / max(h') and the rescale matters
    maps = np.full((1, 1, 32, 32), -0.05, dtype=np.float32)
    maps[0, 0, 15, 14] = 1.0
    maps[0, 0, 15, 16] = 0.4
    coords, _ = decode(maps, "dark-reference", 11)
    ref_coords, _ = decode_loop(maps, "dark-reference", 11)
    assert np.abs(coords - ref_coords).max() < 1e-6  # measured 1.5e-7; a float32 step at x = 15 is 9.5e-7


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
        # measured: mean 6e-7 (the Gaussian fit within 4 px of the edge, exact on a sampled
        # Gaussian), 2.4e-5, 2.6e-4, 1.8e-4 from the edge inwards; max 4.86e-4
        assert error[band].mean() <= 3e-4 and error[band].max() <= NOISE_FREE_MAX, (lo, hi)
    assert error[dist < 2].max() < 1e-5  # measured 2.8e-6

    ref, _ = decode(maps, "dark-reference", 11)
    ref_error = np.linalg.norm(ref - kp, axis=-1)[0]
    assert ref_error[(dist >= 2) & (dist < 4)].mean() > 0.09  # measured 0.095: pulled inwards by zero padding
    argmax, _ = decode(maps, "argmax")
    near = dist < 1.5  # where the reference never refines
    np.testing.assert_array_equal(ref[0, near], argmax[0, near])


def test_dark_border_holds_for_sigma_3():
    kp = _frame_positions(SIZE)
    maps, _ = encode(kp, np.ones(kp.shape[:2]), SIZE, 3.0)
    error = np.linalg.norm(decode(maps, "dark", 11)[0] - kp, axis=-1)[0]
    near = _distance_to_edge(kp, SIZE)[0] < 6
    assert error.max() < 2.5e-4  # measured 2.4e-4, in the interior (the kernel's own)
    assert error[near].mean() < 0.35 * error[~near].mean()  # measured 0.22 times


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_dark_with_the_3_tap_kernel_fits_every_maximum(sigma):
    """With a kernel of 3 (the sigma-1 configs) the Taylor step of the modulated map is not
    exact (a sampled Gaussian blurred by [1, 2, 1] / 4 is not one: the reference's error is up
    to 0.018 px at sigma 1) and not efficient: "dark" fits every maximum, with three steps in
    the border band and two full steps beyond it, exact everywhere (one step beyond the band
    left 3.9e-4 px at sigma 1)."""
    kp = _frame_positions(SIZE)
    maps, _ = encode(kp, np.ones(kp.shape[:2]), SIZE, sigma)
    error = np.linalg.norm(decode(maps, "dark", 3)[0] - kp, axis=-1)[0]
    assert error.max() < 1e-5  # measured 2.2e-6 (sigma 1) and 2.2e-6 (sigma 2)
    ref = np.linalg.norm(decode(maps, "dark-reference", 3)[0] - kp, axis=-1)[0]
    assert ref[_distance_to_edge(kp, SIZE)[0] >= 6].max() > 5e-4  # measured 0.018 and 5.8e-4


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
    # measured: mean 0.995 and median 1.0008 times the reference's; 2.6% of them differ
    assert (dark != ref).mean() < 0.03  # the same algorithm away from the border


def test_dark_is_more_accurate_than_the_reference_near_the_border_under_noise():
    rng = np.random.default_rng(65)
    kp = keypoint_positions(rng, 256, 17, SIZE, spread="uniform")
    maps = noisy_heatmaps(rng, kp, SIZE, 2.0, noise=0.03)
    near = _distance_to_edge(kp, SIZE) < 6
    dark = np.linalg.norm(decode(maps, "dark")[0] - kp, axis=-1)[near]
    ref = np.linalg.norm(decode(maps, "dark-reference")[0] - kp, axis=-1)[near]
    assert dark.mean() < 0.5 * ref.mean()  # measured 0.464 (0.486 with the untapered fit, 0.585 before any)


def test_dark_never_jumps_more_than_one_and_a_half_pixels():
    rng = np.random.default_rng(66)
    maps = rng.random((8, 17, 64, 48), dtype=np.float32)  # no peak at all
    dark, _ = decode(maps, "dark")
    argmax, _ = decode(maps, "argmax")
    ref, _ = decode(maps, "dark-reference")
    assert np.abs(dark - argmax).max() == 1.5  # clipped, and the clip is reached
    assert np.abs(ref - argmax).max() > 1000  # measured 1952: the reference's step is unbounded


@pytest.mark.parametrize("method", ["unbiased", "quantized"])
def test_round_trip(method):
    rng = np.random.default_rng(7)
    kp = keypoint_positions(rng, 16, 17, SIZE, spread="uniform")
    maps, _ = encode(kp, np.ones(kp.shape[:2]), SIZE, 2.0, method=method)
    coords, scores = decode(maps, "dark")
    if method == "unbiased":
        assert np.abs(coords - kp).max() < 4e-4  # measured 3.4e-4
        # the score is the value at the nearest pixel, at most (0.5, 0.5) px away: exp(-0.5 / 8)
        assert scores.min() >= np.float32(np.exp(-1 / 16)) * (1 - 1e-6)
    else:  # a truncated Gaussian at the rounded centre is symmetric about it
        interior = _distance_to_edge(np.floor(kp + 0.5), SIZE) >= 7
        assert np.abs(coords - np.floor(kp + 0.5))[interior].max() < 1e-6  # measured 4.8e-7
        argmax, _ = decode(maps, "argmax")
        np.testing.assert_array_equal(argmax, np.floor(kp + 0.5))
        assert np.all(scores == 1.0)  # the peak sits on a pixel


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
    np.testing.assert_allclose(coords, ref_coords, atol=4e-6)  # other batches: measured 1.9e-6, one float32 step
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
    assert np.abs(coords - kp).max() < 1.5e-3  # measured 1.36e-3


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
        (np.zeros((1, 1, 8, 8), bool), {}, r"heatmaps: expected a floating-point array, got .*bool"),
        (np.zeros((1, 1, 8, 8), complex), {}, r"heatmaps: expected a floating-point array, got .*complex128"),
        (torch.zeros((1, 1, 8, 8), dtype=torch.int64), {}, r"heatmaps: expected a floating-point array, got .*int64"),
        (None, {}, r"heatmaps: expected a numeric array, got NoneType"),
        (np.zeros((1, 1, 0, 8), np.float32), {}, r"expected H >= 1 and W >= 1"),
        (np.zeros((1, 1, 8, 8), np.float32), {"blur_kernel": 4}, r"blur_kernel: expected an odd integer"),
        (np.zeros((1, 1, 8, 8), np.float32), {"blur_kernel": 0}, r"blur_kernel"),
        (np.zeros((1, 1, 8, 8), np.float32), {"blur_kernel": 3.0}, r"blur_kernel"),
        # 1,000,001 once built 0.6 GB of tables, then asked torch for 12 TB
        (np.zeros((1, 1, 8, 8), np.float32), {"blur_kernel": 1_000_001}, r"blur_kernel: .* from 1 to .* 101"),
        (np.zeros((1, 1, 8, 8), np.float32), {"blur_kernel": MAX_BLUR_KERNEL + 2}, r"blur_kernel: .* 101 .*got 103"),
        (np.zeros((1, 1, 8, 8), np.float32), {"method": "taylor"}, r"method: expected one of"),
        ("not an array", {}, r"heatmaps: expected a numeric array"),
    ],
)
def test_bad_input_is_a_clear_error(maps, kwargs, message):
    with pytest.raises(ValueError, match=message):
        decode(maps, **kwargs)


def test_the_largest_blur_kernel_decodes():
    rng = np.random.default_rng(16)
    kp, maps = gaussian_maps(rng, 4, 17, spread="person")
    # a kernel wider than the frame: the blur of a Gaussian is still one (measured 7.6e-5 px)
    assert np.abs(decode(maps, "dark", MAX_BLUR_KERNEL)[0] - kp).max() < 1e-4
    ref, _ = decode_loop(maps, "dark-reference", MAX_BLUR_KERNEL)
    assert np.abs(decode(maps, "dark-reference", MAX_BLUR_KERNEL)[0] - ref).max() < 1e-4  # measured 7.6e-5
    assert gaussian_kernel(MAX_BLUR_KERNEL).shape == (101,)
    with pytest.raises(ValueError, match="blur_kernel"):
        gaussian_kernel(MAX_BLUR_KERNEL + 2)


# --------------------------------------------------------------------------- array types


@pytest.fixture
def torch_backend_on_cpu(monkeypatch):
    """Run encode's torch backend on the CPU. Through the public API only tensors on another
    device (CUDA) reach it, CPU tensors being computed with NumPy; this routes CPU tensors
    to it too. (The decode of any tensor is the torch formulation: tests/test_codec_torch.py.)"""
    from darkpose.codec import _backend, encoding

    def wrap(array, name):
        if isinstance(array, torch.Tensor):
            return _backend.torch_backend(array.device), array.detach(), lambda a: a
        return _backend.wrap(array, name)

    monkeypatch.setattr(encoding, "wrap", wrap)


def _noisy_maps_with_non_finite_values():
    rng = np.random.default_rng(10)
    kp = keypoint_positions(rng, 8, 17, SIZE, spread="uniform")
    maps = noisy_heatmaps(rng, kp, SIZE, 2.0)
    maps[0, :3, 10, 10] = [np.nan, np.inf, -np.inf]
    return maps


@pytest.mark.parametrize("method", ALL)
def test_numpy_and_cpu_tensors_agree(method):
    maps = _noisy_maps_with_non_finite_values()
    c_np, s_np = decode(maps, method)
    c_t, s_t = decode(torch.from_numpy(maps), method)
    assert isinstance(c_t, torch.Tensor) and c_t.dtype == torch.float32 and c_t.device == torch.device("cpu")
    np.testing.assert_allclose(c_t.numpy(), c_np, rtol=0, atol=8e-6)  # measured 3.8e-6: one float32 step at 32-64 px
    np.testing.assert_array_equal(s_t.numpy(), s_np)


@pytest.mark.parametrize("method", ["unbiased", "quantized"])
def test_the_torch_backend_encodes_as_numpy_does(method, torch_backend_on_cpu):
    rng = np.random.default_rng(15)
    kp = rng.uniform(-5, 50, (3, 6, 2))
    vis = rng.integers(0, 3, (3, 6))
    ref, ref_w = encode(kp, vis, SIZE, 2.0, method)
    maps, weights = encode(torch.from_numpy(kp), vis, SIZE, 2.0, method)
    assert isinstance(maps, torch.Tensor) and isinstance(weights, torch.Tensor)
    np.testing.assert_allclose(maps.numpy(), ref, atol=2e-7)  # measured 1.8e-7
    np.testing.assert_array_equal(weights.numpy(), ref_w)
    buffer = torch.full(maps.shape, 7.0)
    assert encode(torch.from_numpy(kp), vis, SIZE, 2.0, method, out=buffer)[0] is buffer
    np.testing.assert_array_equal(buffer.numpy(), maps.numpy())
    # an array the torch backend cannot write into (as a CPU buffer for CUDA keypoints)
    with pytest.raises(ValueError, match=r"out: expected .* on the keypoints' device, got ndarray"):
        encode(torch.from_numpy(kp), vis, SIZE, 2.0, method, out=np.empty(tuple(maps.shape), np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_stay_on_the_device():
    # not run where this was written (no GPU): the tolerance is the CPU torch backend's, not measured on CUDA
    maps = _noisy_maps_with_non_finite_values()
    coords, scores = decode(torch.from_numpy(maps).cuda())
    assert coords.is_cuda and scores.is_cuda
    np.testing.assert_allclose(coords.cpu().numpy(), decode(maps)[0], atol=8e-6)
    kp = np.random.default_rng(15).uniform(-5, 50, (3, 6, 2))
    heatmaps, weights = encode(torch.from_numpy(kp).cuda(), torch.ones(3, 6).cuda(), SIZE, 2.0)
    assert heatmaps.is_cuda and weights.is_cuda
    np.testing.assert_allclose(heatmaps.cpu().numpy(), encode(kp, np.ones((3, 6)), SIZE, 2.0)[0], atol=2e-7)
    with pytest.raises(ValueError, match="out: expected"):  # a CPU buffer would be written as a copy
        encode(torch.from_numpy(kp).cuda(), torch.ones(3, 6).cuda(), SIZE, 2.0, out=torch.empty(heatmaps.shape))


def test_torch_input_with_grad_bfloat16_and_non_contiguous():
    rng = np.random.default_rng(11)
    kp = keypoint_positions(rng, 2, 5, SIZE, spread="person")
    maps, _ = encode(kp, np.ones((2, 5)), SIZE, 2.0)
    t = torch.from_numpy(maps).requires_grad_(True)
    coords, _ = decode(t * 1.0)
    assert not coords.requires_grad and np.abs(coords.numpy() - kp).max() < NOISE_FREE_MAX  # measured 3.0e-4
    coords16, _ = decode(torch.from_numpy(maps).to(torch.bfloat16))
    # measured 9.6e-4 on these 10 keypoints (bfloat16 keeps 8 bits: up to 0.022 px elsewhere in the frame)
    assert np.abs(coords16.numpy() - kp).max() < 1e-3
    transposed = np.ascontiguousarray(maps.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    assert not transposed.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(decode(transposed)[0], decode(maps)[0])


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_dtypes(dtype):
    rng = np.random.default_rng(12)
    kp, maps = gaussian_maps(rng, 2, 5, spread="person")
    coords, scores = decode(maps.astype(dtype))
    assert coords.dtype == np.float32 and scores.dtype == np.float32
    assert np.abs(coords - kp).max() < NOISE_FREE_MAX  # measured 3.3e-4 (float16), 3.0e-4 (float64)


def test_read_only_input_is_fine_and_never_modified():
    rng = np.random.default_rng(13)
    _, maps = gaussian_maps(rng, 2, 5)
    maps.setflags(write=False)
    for method in ALL:
        decode(maps, method)
    copy = maps.copy()
    decode(maps)
    np.testing.assert_array_equal(maps, copy)


def test_large_batch_uses_chunks_and_agrees_with_small_batches(monkeypatch):
    rng = np.random.default_rng(14)
    kp = keypoint_positions(rng, 96, 17, SIZE, spread="uniform")
    maps = noisy_heatmaps(rng, kp, SIZE, 2.0)
    calls = []
    real = decoding._in_chunks
    monkeypatch.setattr(decoding, "_CHUNK_VALUES", 200 * 64 * 48)  # 200 maps per chunk: 9 chunks

    def counted(work, m, values_per_map):
        def chunk(lo, hi):
            calls.append(hi - lo)
            work(lo, hi)

        real(chunk, m, values_per_map)

    monkeypatch.setattr(decoding, "_in_chunks", counted)
    whole, _ = decode(maps)
    assert calls == [200] * 8 + [32]
    pieces = np.concatenate([decode(maps[i : i + 7])[0] for i in range(0, 96, 7)])
    # measured 0 here; one float32 step (at 32-64 px) allowed for BLAS rounding that depends on the batch
    np.testing.assert_allclose(whole, pieces, atol=4e-6)


def test_dark_recovers_peaks_just_outside_the_frame_up_to_its_step_limit():
    kp = np.array([[[-1.2, 30.4], [20.6, 64.1], [-0.4, -0.7], [-3.0, 30.0]]])
    maps, weights = encode(kp, np.ones((1, 4)), SIZE, 2.0)
    assert weights.tolist() == [[1, 1, 1, 1]]
    coords, _ = decode(maps, "dark")
    np.testing.assert_allclose(coords[0, :3], kp[0, :3], atol=1e-5)  # measured 1.5e-6 (2.45e-3 before the fit)
    np.testing.assert_allclose(coords[0, 3], [-1.5, 30.0], atol=1e-6)  # the step is clipped (measured 0)
    ref, _ = decode(maps, "dark-reference")
    assert np.abs(ref[0, :3] - kp[0, :3]).max() > 1.0  # measured 1.2


def _beyond_the_frame(distances, sigma, pad=10):
    """Unbiased targets (1, 6 len(distances), H, W) whose peaks lie each distance beyond the
    four edges and two corners of the frame: encoded on a frame larger by pad px on every
    side, then cropped, so that peaks beyond 3 sigma keep their tail in the frame."""
    width, height = SIZE
    d = np.asarray(distances, dtype=np.float64)
    left, right, top, bottom = -d, width - 1 + d, -d, height - 1 + d
    x = np.concatenate([left, right, np.full_like(d, 17.4), np.full_like(d, 30.2), left, right])
    y = np.concatenate([np.full_like(d, 30.3), np.full_like(d, 20.6), top, bottom, top, bottom])
    kp = np.stack((x, y), axis=-1)[None]
    big, _ = encode(kp + pad, np.ones(kp.shape[:2]), (width + 2 * pad, height + 2 * pad), sigma)
    return kp, np.ascontiguousarray(big[..., pad:-pad, pad:-pad])


@pytest.mark.parametrize(("kernel", "limit"), [(3, 3e-5), (11, 2e-5)])
def test_dark_follows_peaks_beyond_the_edge_at_sigma_1(kernel, limit):
    """Sigma 1 (the 128x96 configs): the continuation beyond the frame rises steeply towards
    a peak outside it (exp(1) over one pixel at 1.5 px out, exp(4.5) at 3 sigma), and must
    not be cut short. Peaks up to 1.5 px out are recovered; those further out, up to 6 px
    (6 sigma, a tail of 1.5e-8 at the edge), decode at the step limit, 1.5 px out, towards them."""
    width, height = SIZE
    kp, maps = _beyond_the_frame(np.arange(0, 1.501, 0.05), 1.0)
    error = np.abs(decode(maps, "dark", kernel)[0] - kp).max()
    # measured max 1.5e-5 (kernel 3) and 3.1e-6 (kernel 11), the Gaussian fit started from
    # the continuation; the continuation alone: 0.118 and 1.36e-3, cut at exp(0.5): 0.395, 0.033
    assert error < limit
    kp, maps = _beyond_the_frame(np.arange(2, 6.01, 0.5), 1.0)
    at_the_limit = np.clip(kp, -1.5, [width - 1 + 1.5, height - 1 + 1.5])
    # measured 3.1e-6 (kernel 3) and 5.0e-5 (kernel 11; the continuation alone: 9.0e-3 with
    # kernel 3, 8e-6 with 11; cut at exp(5): 0.30 px short; at exp(0.5): 1.0 px)
    assert np.abs(decode(maps, "dark", kernel)[0] - at_the_limit).max() < 1e-4


def test_a_second_peak_pulls_dark_no_more_than_the_reference_near_the_border():
    """A peak of half the amplitude 6 px away (sigma 2, white noise 0.03): within 4 px of the
    edge "dark" fits a Gaussian, tapered around its estimate so that the second peak does not
    take the fit over; its RMS error is below the reference's in every band."""
    rng = np.random.default_rng(21)
    n = 600
    for lo, hi in [(0.0, 1.0), (1.0, 2.0), (2.0, 4.0)]:
        d = rng.uniform(lo, hi, n)
        kp = np.stack((d, rng.uniform(8.0, SIZE[1] - 9.0, n)), -1)[:, None]  # near the left edge
        angle = rng.uniform(0, 2 * np.pi, n)
        second = kp + 6.0 * np.stack((np.cos(angle), np.sin(angle)), -1)[:, None]
        maps = encode(kp, np.ones((n, 1)), SIZE, 2.0)[0] + 0.5 * encode(second, np.ones((n, 1)), SIZE, 2.0)[0]
        maps += rng.normal(0.0, 0.03, maps.shape).astype(np.float32)
        rms = {m: np.sqrt(((decode(maps, m, 11)[0] - kp) ** 2).sum(-1).mean()) for m in ("dark", "dark-reference")}
        # measured dark / reference: 0.433 / 0.487, 0.318 / 0.508, 0.332 / 0.382 px (untapered dark: 0.771,
        # 0.571, 0.490)
        assert rms["dark"] < 0.95 * rms["dark-reference"], (lo, hi, rms)


def test_a_spike_at_the_edge_decodes_to_its_pixel():
    """A one-pixel spike on an edge is no Gaussian: the border fit narrows to it, and "dark"
    keeps the maximum's pixel (the continuation alone throws it 1.5 px outside the frame)."""
    maps = np.zeros((1, 3, SIZE[1], SIZE[0]), np.float32)
    maps[0, 0, 30, 0] = maps[0, 1, 0, 20] = maps[0, 2, SIZE[1] - 1, 17] = 1.0
    coords, _ = decode(maps, "dark", 11)
    np.testing.assert_array_equal(coords[0], [[0, 30], [20, 0], [17, SIZE[1] - 1]])
