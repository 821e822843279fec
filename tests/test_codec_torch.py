"""The torch formulation of the decode (darkpose.codec.torch_decode, what torch tensors and
the ONNX graphs run) against the NumPy path (what NumPy arrays run), over the cases of the
codec's own tests; and that it traces with dynamic N and K."""

import numpy as np
import pytest
import torch

from darkpose.codec import DECODE_METHODS, decode, encode
from darkpose.codec.synthetic import keypoint_positions, noisy_heatmaps
from darkpose.codec.torch_decode import decode_tensor
from test_codec_decode import SIZE, _beyond_the_frame, _frame_positions, gaussian_maps


def _clean(rng, sigma, spread):
    return gaussian_maps(rng, 16, 17, sigma=sigma, spread=spread)[1]


def _noisy(rng, noise):
    kp = keypoint_positions(rng, 16, 17, SIZE, spread="uniform")
    return noisy_heatmaps(rng, kp, SIZE, 2.0, noise=noise, distractor_rate=0.2)


def _border():
    """Peaks on a dense grid along every edge and in the corners, and beyond the frame."""
    kp = _frame_positions(SIZE)[:, ::6]
    maps, _ = encode(kp, np.ones(kp.shape[:2]), SIZE, 2.0)
    return np.concatenate([maps, _beyond_the_frame(np.arange(0, 3.01, 0.25), 1.0)[1]], axis=1)


def _degenerate():
    """Zero, constant and negative maps; NaN, +Inf and -Inf values; a map of NaN; a spike in
    a negative field (where the reference's clamp acts with its rescale), with and without a NaN."""
    rng = np.random.default_rng(8)
    _, maps = gaussian_maps(rng, 1, 12, spread="person")
    maps[0, 0] = 0.0
    maps[0, 1] = 0.5
    maps[0, 2] = -np.linspace(1, 2, 64 * 48).reshape(64, 48)
    maps[0, 3, 5, 5] = np.nan
    maps[0, 4] = np.nan
    maps[0, 5, 0, 0] = np.inf
    peak = np.unravel_index(maps[0, 6].argmax(), SIZE[::-1])
    maps[0, 6][peak[0] + 1, peak[1]] = -np.inf  # inside the window of the maximum
    maps[0, 7][peak] = np.inf
    maps[0, 8] = -0.05
    maps[0, 8, 15, 14], maps[0, 8, 15, 16] = 1.0, 0.4
    maps[0, 9] = maps[0, 8]
    maps[0, 9, 40, 40] = np.nan  # far from the spike, but it is in max(h)
    return maps


CASES = {
    **{f"clean sigma {s} {spread}": (lambda s=s, spread=spread: _clean(np.random.default_rng(1), s, spread))
       for s in (1.0, 2.0, 3.0) for spread in ("uniform", "person")},
    **{f"noisy {noise}": (lambda noise=noise: _noisy(np.random.default_rng(2), noise)) for noise in (0.01, 0.03, 0.1)},
    "border": _border,
    "degenerate": _degenerate,
}


@pytest.mark.parametrize("kernel", [3, 11])
@pytest.mark.parametrize("method", DECODE_METHODS)
@pytest.mark.parametrize("case", list(CASES))
def test_torch_tensors_decode_as_numpy_arrays_do(case, method, kernel):
    maps = CASES[case]()
    coords, scores = decode(maps, method, kernel)
    t_coords, t_scores = decode(torch.from_numpy(maps), method, kernel)
    assert isinstance(t_coords, torch.Tensor) and t_coords.dtype == torch.float32 and t_coords.shape == coords.shape
    assert t_scores.dtype == torch.float32 and t_scores.shape == scores.shape
    # measured max 7.6e-6 px (border, dark, kernel 11), 3.8e-6 elsewhere: one or two float32
    # steps at 32-64 px, the blur's sums being added in another order
    np.testing.assert_allclose(t_coords.numpy(), coords, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(t_scores.numpy(), scores)


@pytest.mark.parametrize("method", DECODE_METHODS)
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (4, 4), (5, 5), (3, 20), (9, 6)])
def test_small_and_random_maps(method, shape):
    """Random maps, where the reference's step is unbounded: the two agree wherever it is
    shorter than 1.5 px."""
    maps = np.random.default_rng(9).random((4, 5) + shape, dtype=np.float32)
    coords, scores = decode(maps, method, 3)
    t_coords, t_scores = decode(torch.from_numpy(maps), method, 3)
    argmax, _ = decode(maps, "argmax")
    short = (np.abs(coords - argmax) <= 1.5).all(axis=-1)
    assert short.mean() > 0.8
    np.testing.assert_allclose(t_coords.numpy()[short], coords[short], rtol=0, atol=1e-5)  # measured 7.4e-6
    np.testing.assert_array_equal(t_scores.numpy(), scores)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_decode_in_float32_or_float64(dtype):
    maps = CASES["noisy 0.03"]()
    coords, _ = decode(torch.from_numpy(maps).to(dtype))
    reference, _ = decode(torch.from_numpy(maps).to(dtype).to(torch.float64).numpy())
    assert coords.dtype == torch.float32
    np.testing.assert_allclose(coords.numpy(), reference, rtol=0, atol=8e-6)  # measured 3.8e-6


def test_empty_batches():
    for shape in [(0, 17, 64, 48), (2, 0, 64, 48)]:
        coords, scores = decode(torch.zeros(shape))
        assert tuple(coords.shape) == shape[:2] + (2,) and tuple(scores.shape) == shape[:2]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("method", ["dark", "dark-reference", "shift"])
def test_traced_decode_follows_the_batch_and_keypoint_count(method):
    maps = CASES["noisy 0.03"]()
    traced = torch.jit.trace(lambda h: decode_tensor(h, method, 11), torch.from_numpy(maps[:2, :3]))
    for part in (maps, maps[:1, :17], maps[5:12, 4:9]):
        coords, scores = traced(torch.from_numpy(part))
        expected, expected_scores = decode(part, method, 11)
        np.testing.assert_allclose(coords.numpy(), expected, rtol=0, atol=8e-6)  # measured 3.8e-6
        np.testing.assert_array_equal(scores.numpy(), expected_scores)
