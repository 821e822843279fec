"""The tail-recovery study (darkpose.bench.tails): a guarded fit beyond "dark"'s 1.5 px."""

import json

import numpy as np
import pytest

from darkpose.bench import tails
from darkpose.codec import decode, encode

SIZE = (64, 48)
NO_GUARDS = {"max_std": 1e9, "spread_factor": 1e9, "max_last_step": 1e9, "min_snr": -1.0, "reach_margin": -1.0}


def target(xy, sigma=2.0, size=SIZE):
    maps, _ = encode(np.array([[xy]], dtype=np.float64), np.ones((1, 1)), size, sigma)
    return maps


@pytest.mark.parametrize("xy", [(-3.0, 20.3), (30.4, 50.0), (66.0, 11.7)])
def test_recovers_a_noise_free_peak_3px_outside(xy):
    maps = target(xy)
    dark, _ = decode(maps, "dark", 11)
    coords, scores, details = tails.decode_with_tails(maps, 11, reach=6.0, return_details=True)
    assert np.abs(dark[0, 0] - xy).max() == pytest.approx(1.5, abs=1e-3)  # dark stops at its clip
    assert np.abs(coords[0, 0] - xy).max() < 0.01  # measured 1.5e-6 px
    assert details["candidate"][0, 0] and details["accepted"][0, 0]
    assert scores[0, 0] == decode(maps, "argmax")[1][0, 0]


def test_sigma_1_peak_outside_within_the_reach():
    maps = target((-2.5, 20.0), sigma=1.0)
    coords, _ = tails.decode_with_tails(maps, 3, reach=3.0)
    assert np.abs(coords[0, 0] - (-2.5, 20.0)).max() < 0.01  # measured 1e-6 px


def test_reach_from_the_decoders_own_sigma_and_fits_stopped_by_it():
    # a sigma-1 Gaussian 4 px outside (not an encoder target: those are empty beyond about 3.5 px)
    x, y = np.arange(64), np.arange(48)[:, None]
    maps = np.exp(-((x + 4.0) ** 2 + (y - 20.3) ** 2) / 2).astype(np.float32)[None, None]
    dark, _ = decode(maps, "dark", 3)
    far, _ = tails.decode_with_tails(maps, 3, reach=6.0)
    assert np.abs(far[0, 0] - (-4.0, 20.3)).max() < 0.01  # measured 2e-6 px
    # reach None: 3 sqrt(s) of the start spread s = 0.81 px^2, 2.7 px: the fit ends at that bound
    # (-2.70, accepted by the other guards: std 0.16 px, snr 119) and is refused, dark's result stays
    auto, _, details = tails.decode_with_tails(maps, 3, reach=None, return_details=True)
    np.testing.assert_array_equal(auto, dark)
    assert details["candidate"][0, 0] and not details["accepted"][0, 0]
    loose, _ = tails.decode_with_tails(maps, 3, reach=None, guards={"reach_margin": -1.0})
    assert loose[0, 0, 0] == pytest.approx(-2.70, abs=0.01)


def test_leaves_peaks_inside_the_frame_as_dark():
    maps = np.concatenate([target((2.0, 20.3)), target((30.2, 45.0)), target((31.7, 22.4)), target((0.4, 0.3))], 1)
    dark, dark_scores = decode(maps, "dark", 11)
    coords, scores, details = tails.decode_with_tails(maps, 11, reach=6.0, return_details=True)
    np.testing.assert_array_equal(coords[0, :3], dark[0, :3])  # not candidates: dark's result exactly
    np.testing.assert_array_equal(scores, dark_scores)
    assert details["candidate"][0].tolist() == [False, False, False, True]  # the last: maximum on the edge
    assert np.abs(coords[0, 3] - dark[0, 3]).max() < 1e-4  # the refit agrees with dark's fit: measured 3e-7


def test_the_guards_reject_a_fit_that_runs_to_the_reach():
    # the coco-mini oracle's one rejected keypoint (192x256): a corner tail 0.6 and 6 px outside,
    # whose fit runs to the reach on both axes with sigma^2 111x the start's
    maps = target((48.59, 68.99), size=(48, 64))
    dark, _ = decode(maps, "dark", 11)
    guarded, _, details = tails.decode_with_tails(maps, 11, reach=6.0, return_details=True)
    free, _ = tails.decode_with_tails(maps, 11, reach=6.0, guards=NO_GUARDS)
    np.testing.assert_array_equal(guarded, dark)
    assert details["candidate"][0, 0] and not details["accepted"][0, 0]
    assert details["std"][0, 0] > 100 and details["snr"][0, 0] < 1  # measured 880 px and 0.40
    np.testing.assert_allclose(free[0, 0] - [47, 63], [6.0, 6.0], atol=1e-4)  # unguarded: at the reach


@pytest.mark.parametrize("sigma, kernel, model", [(2.0, 11, "white"), (1.0, 3, "white"), (2.0, 11, "network")])
def test_no_false_recoveries_on_maps_without_a_peak(sigma, kernel, model):
    rng = np.random.default_rng(7)
    maps = tails.noisy_maps(rng, None, 400, sigma, model, 0.03)
    dark, _ = decode(maps, "dark", kernel)
    coords, _, details = tails.decode_with_tails(maps, kernel, tails.reach_of(sigma), return_details=True)
    assert details["candidate"].mean() > 0.1  # it does try
    move = np.linalg.norm(coords - dark, axis=-1)
    # measured on this set: tried on 14.5% / 19% / 34%, accepted 0 / 0 / 0.75% (3 maps, moved at most
    # 0.005 px); on 2000 per case (docs/codec_accuracy.md) at most 0.45% accepted, moved at most 0.25 px
    assert move.max() <= 0.3
    assert details["accepted"].mean() <= 0.01


def test_measure_case_on_noise_free_peaks_outside():
    truth = tails.outside_positions(np.random.default_rng(1), 20, (2.0, 3.0))
    maps = tails.noisy_maps(np.random.default_rng(1), truth, 20, 2.0, "white", 0.0)
    figures = tails.measure_case(maps, truth, 2.0, 11)
    assert figures["fires"] == 1.0 and figures["accepted"] == 1.0 and figures["found"] == 1.0
    assert figures["rms_tails"] < 0.01  # measured 2e-6 px
    assert 0.5 < figures["rms_dark"] < 1.5  # dark's clip: 0.5-1.5 px short


@pytest.mark.parametrize("reach", [0, -1.0, float("nan"), float("inf"), "3", True])
def test_bad_reach(reach):
    with pytest.raises(ValueError, match="reach"):
        tails.decode_with_tails(target((-3.0, 20.0)), 11, reach=reach)


@pytest.mark.parametrize("maps", [np.zeros((1, 1, 48, 64), np.int32), np.zeros((48, 64), np.float32),
                                  [[[[0.0]]]]])
def test_bad_heatmaps(maps):
    with pytest.raises(ValueError, match="heatmaps"):
        tails.decode_with_tails(maps, 11, reach=6.0)


def test_bad_guard_name():
    with pytest.raises(ValueError, match="guards.*max_sd"):
        tails.decode_with_tails(target((-3.0, 20.0)), 11, reach=6.0, guards={"max_sd": 1.0})


def test_command_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert tails.main(["--out", str(out), "--per-case", "4"]) == 0
    payload = json.loads((out / "tails.json").read_text())
    assert payload["guards"] == tails.GUARDS and payload["oracle"] == {}
    assert set(payload["noisy"]) == {f"sigma {s:g}, {m}" for s, _ in tails.SIGMAS for m, _ in tails.NOISE_MODELS}
    assert "| sigma 2, network | no peak |" in (out / "tails.md").read_text()
    assert tails.main(["--out", str(out), "--per-case", "4"]) == 2
    assert "--force" in capsys.readouterr().err
