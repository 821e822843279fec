"""The Cramér-Rao bound of a sampled Gaussian peak (darkpose.codec.bounds)."""

import math

import numpy as np
import pytest

from darkpose.bench.codec_accuracy import gaussian_fit
from darkpose.codec import encode
from darkpose.codec.bounds import interior_variance, position_bound

SIZE = (64, 48)


def test_interior_equals_the_closed_form():
    rng = np.random.default_rng(0)
    pos = np.array([31.0, 23.0]) + rng.uniform(-2, 2, (50, 2))
    for sigma, tol in ((2.0, 1e-12), (3.0, 1e-12), (1.0, 3e-3)):  # measured at sigma 1: up to 1.84e-3
        b = position_bound(pos, SIZE, sigma)
        np.testing.assert_allclose(b[:, 0, 0], interior_variance(), rtol=tol)
        np.testing.assert_allclose(b[:, 1, 1], interior_variance(), rtol=tol)
        np.testing.assert_allclose(b[:, 0, 1], 0.0, atol=tol)
    assert interior_variance() == pytest.approx(2 / math.pi)


def test_matches_the_fisher_matrix_summed_pixel_by_pixel():
    # the separable moments against J built numerically over the grid, with every nuisance
    width, height = 20, 15
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))

    def h(theta):
        mx, my, a, s = theta
        return a * np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * s * s))

    for theta in ((0.4, 7.3, 0.8, 1.7), (3.2, 1.1, 1.3, 2.5), (18.6, 13.9, 1.0, 1.2)):
        theta = np.array(theta)
        jac = []
        for i in range(4):
            d = np.zeros(4)
            d[i] = 1e-6
            jac.append(((h(theta + d) - h(theta - d)) / 2e-6).reshape(-1))
        jac = np.array(jac)
        fisher = jac @ jac.T / 0.05**2
        for unknown, keep in (((), [0, 1]), (("amplitude",), [0, 1, 2]), (("amplitude", "sigma"), [0, 1, 2, 3])):
            expected = np.linalg.inv(fisher[np.ix_(keep, keep)])[:2, :2]
            got = position_bound(theta[None, :2], (width, height), theta[3], theta[2], 0.05, unknown)[0]
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9 * expected.max())


def test_rises_towards_the_edge_and_with_nuisance_parameters():
    x = np.linspace(0.0, 12.0, 49)
    pos = np.stack([x, np.full_like(x, 23.5)], axis=1)
    known, amp, both = (position_bound(pos, SIZE, 2.0, unknown=u)[:, 0, 0]
                        for u in ((), ("amplitude",), ("amplitude", "sigma")))
    assert np.all(np.diff(known[:25]) < 0)  # falls strictly as the peak moves inwards over 6 px
    assert np.all(np.diff(known) < 1e-15)  # and never rises
    assert known[-1] == pytest.approx(interior_variance(), rel=1e-9)
    # a peak on the edge pixel sees half of its slopes: exactly twice the interior bound
    assert known[0] == pytest.approx(2 * interior_variance(), rel=1e-12)
    # at x = 0.25 (measured): known 1.957x the interior, A unknown 1.47x that, A and sigma unknown 2.2x
    assert known[1] / interior_variance() == pytest.approx(1.957, abs=0.002)
    assert np.all(amp >= known * (1 - 1e-12)) and np.all(both >= amp * (1 - 1e-12))
    assert amp[1] / known[1] > 1.4 and both[1] / known[1] > 2.0
    assert amp[-1] / known[-1] == pytest.approx(1.0, abs=1e-9)  # in the interior the nuisances decouple
    assert both[-1] / known[-1] == pytest.approx(1.0, abs=1e-9)


def test_scales_as_noise_over_amplitude_squared():
    pos = np.array([[0.3, 5.0], [20.2, 30.7], [63.0, 47.0]])
    for unknown in ((), ("amplitude", "sigma")):
        base = position_bound(pos, SIZE, 1.5, unknown=unknown)
        np.testing.assert_allclose(position_bound(pos, SIZE, 1.5, 0.5, 0.02, unknown), base * (0.02 / 0.5) ** 2,
                                   rtol=1e-10)


def test_a_peak_far_outside_the_frame_has_an_infinite_bound():
    b = position_bound([[-60.0, 20.0]], SIZE, 2.0)
    assert np.isinf(b[0, 0, 0]) and np.isinf(b[0, 1, 1]) and b[0, 0, 1] == 0


@pytest.mark.parametrize("band", [(8.0, 12.0), (0.0, 1.0)])
def test_the_least_squares_fit_attains_the_bound(band):
    # interior and the outermost pixel band: the ML fit of position (sigma, A known)
    rng = np.random.default_rng(1)
    n, noise = 3000, 0.05
    pos = np.stack([rng.uniform(*band, n), rng.uniform(10, 37, n)], axis=1)
    maps, _ = encode(pos[:, None], np.ones((n, 1)), SIZE, 2.0)
    maps = maps[:, 0].astype(np.float64) + rng.normal(0, noise, (n, 48, 64))
    err = gaussian_fit(maps, np.round(pos), 2.0) - pos  # from the argmax-like start, up to 0.7 px off
    b = position_bound(pos, SIZE, 2.0, 1.0, noise)
    ratio_x = math.sqrt(np.mean(err[:, 0] ** 2) / np.mean(b[:, 0, 0]))
    ratio_y = math.sqrt(np.mean(err[:, 1] ** 2) / np.mean(b[:, 1, 1]))
    # measured: interior 1.006 / 1.005, edge 1.011 / 0.996 (sampling std ~1.3%)
    assert ratio_x == pytest.approx(1.0, abs=0.04)
    assert ratio_y == pytest.approx(1.0, abs=0.04)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"positions": [[1.0, 2.0, 3.0]]}, "positions: expected shape"),
        ({"positions": [[1.0, np.nan]]}, "positions: expected finite values, row 0"),
        ({"positions": "abc"}, "positions"),
        ({"heatmap_size": (64,)}, "heatmap_size"),
        ({"heatmap_size": (64.0, 48)}, "heatmap_size"),
        ({"heatmap_size": (True, 48)}, "heatmap_size"),
        ({"sigma": 0.0}, "sigma: expected a finite number > 0"),
        ({"sigma": "2"}, "sigma"),
        ({"amplitude": -1.0}, "amplitude"),
        ({"noise": math.inf}, "noise"),
        ({"unknown": ("offset",)}, "unknown: expected a subset of"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"positions": [[10.0, 10.0]], "heatmap_size": SIZE, "sigma": 2.0} | kwargs
    with pytest.raises(ValueError, match=match):
        position_bound(**args)
