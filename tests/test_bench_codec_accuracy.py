"""`darkpose bench codec-accuracy`: the quick run end to end, the refusals, calibration()."""

import json
import math

import numpy as np
import pytest

from darkpose.bench.codec_accuracy import (
    BANDS,
    border_distance,
    calibration,
    gaussian_fit,
    soft_argmax,
    stratified_positions,
    udp_decode,
)
from darkpose.cli import main
from darkpose.codec import encode


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("acc") / "report"
    assert main(["bench", "codec-accuracy", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_run_writes_the_report_plots_and_figures(quick):
    names = {p.name for p in quick.iterdir()}
    assert names == {"report.md", "figures.json", "error_vs_border.png", "error_vs_noise.png",
                     "error_vs_phase.png", "calibration.png"}
    for png in names - {"report.md", "figures.json"}:
        assert (quick / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (quick / "report.md").read_text()
    assert "## Main table" in text and "## Calibration" in text and "fit (sigma, A known)" in text
    data = json.loads((quick / "figures.json").read_text())
    assert data["config"]["per_band"] == 200
    res = data["results"]
    main05 = res["white 0.05, sigma 2"]["methods"]
    # figures at seed 0, 200 per band (measured): interior ratio dark-reference 0.97, dark 0.97
    for method in ("dark-reference", "dark"):
        assert main05[method][">=6"]["ratio known"] == pytest.approx(1.0, abs=0.1)
        assert main05[method][">=6"]["n"] == 200
    # argmax in the interior at low noise: its rounding, 1/sqrt(12) = 0.289 px per axis (measured 0.298)
    argmax = res["white 0.01, sigma 2"]["methods"]["argmax"][">=6"]
    assert argmax["rms"] == pytest.approx(1 / math.sqrt(12), abs=0.025)
    # the reference does not refine within 2 px of the edge (measured ratio 10.9 at noise 0.03) ...
    assert res["white 0.03, sigma 2"]["methods"]["dark-reference"]["[0,1)"]["ratio known"] > 6
    # ... and the oracle fit reaches the bound in every band of the main table (measured 0.94-1.06)
    for r in res.values():
        if r["regime"]["group"] == "main":
            for band in data["bands"]:
                assert r["methods"]["fit (sigma, A known)"][band]["ratio known"] == pytest.approx(1.0, abs=0.13)
                # the bounds with nuisance parameters are larger, so the ratios to them smaller
                f = r["methods"]["dark"][band]
                assert f["ratio A, sigma unknown"] <= f["ratio A unknown"] <= f["ratio known"] * (1 + 1e-9)
    # the second peak pulls the decodes towards it (measured: dark 0.3-0.4 px in the interior)
    pull = res["second peak, sigma 2"]["methods"]["dark"][">=6"]["bias_towards_second_px"]
    assert 0.1 < pull < 0.8
    # calibration figures are there; dark's covariance is near calibrated at noise 0.03 (measured 39.4%, 86.1%)
    cal = res["white 0.03, sigma 2"]["calibration"]["dark"]["all"]
    assert cal["inside_1sigma"] == pytest.approx(0.393, abs=0.06)
    assert cal["inside_2sigma"] == pytest.approx(0.865, abs=0.05)
    assert len(res["white 0.03, sigma 2"]["methods"]["dark"]["phase_rms_x"]) == 10


def test_out_is_refused_when_not_empty_or_a_file(tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep")
    assert main(["bench", "codec-accuracy", "--quick", "--out", str(full)]) == 2
    assert "is not empty; pass --force" in capsys.readouterr().err
    assert [p.name for p in full.iterdir()] == ["mine.txt"]
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["bench", "codec-accuracy", "--quick", "--out", str(afile), "--force"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def _draws(rng, cov, n):
    return np.einsum("mij,mj->mi", np.linalg.cholesky(cov), rng.standard_normal((n, 2)))


def test_calibration_of_known_covariances():
    rng = np.random.default_rng(0)
    n = 20000
    a = rng.uniform(0.01, 1.0, n)
    b = rng.uniform(0.01, 1.0, n)
    r = rng.uniform(-0.9, 0.9, n)
    cov = np.stack([np.stack([a, r * np.sqrt(a * b)], -1), np.stack([r * np.sqrt(a * b), b], -1)], -2)
    err = _draws(rng, cov, n)
    c = calibration(err, cov)
    # measured: 39.5%, 86.6%, 1.00; the sampling std is 0.35% and 0.24%
    assert c["inside_1sigma"] == pytest.approx(1 - math.exp(-0.5), abs=0.012)
    assert c["inside_2sigma"] == pytest.approx(1 - math.exp(-2), abs=0.01)
    assert c["mean_d2_over_2"] == pytest.approx(1.0, abs=0.03)
    assert (c["count"], c["excluded"]) == (n, 0)
    # errors twice as large as the covariance says (covariance too small by 4x) ... and the other way
    too_small = calibration(2 * err, cov)
    assert too_small["inside_1sigma"] < 0.393 - 0.2 and too_small["mean_d2_over_2"] > 3.5
    scaled = calibration(err, 2 * cov)  # too large by 2: 1 - exp(-1) = 63.2% and 1 - exp(-4) = 98.2%
    assert scaled["inside_1sigma"] == pytest.approx(1 - math.exp(-1), abs=0.012)
    assert scaled["mean_d2_over_2"] == pytest.approx(0.5, abs=0.015)
    assert abs(scaled["inside_1sigma"] - 0.393) > 0.012 and abs(scaled["inside_2sigma"] - 0.865) > 0.01


def test_calibration_counts_what_it_leaves_out():
    err = np.array([[0.05, 0.0], [0.0, 0.2], [np.nan, 0.0], [0.3, 0.3]])
    cov = np.array([np.eye(2) * 0.01, np.full((2, 2), np.inf), np.eye(2), np.zeros((2, 2))])
    c = calibration(err, cov)
    assert (c["count"], c["excluded"]) == (1, 3)
    assert c["inside_1sigma"] == 1.0 and c["mean_d2_over_2"] == pytest.approx(0.125)
    empty = calibration(np.zeros((0, 2)), np.zeros((0, 2, 2)))
    assert empty["count"] == 0 and math.isnan(empty["inside_1sigma"])
    with pytest.raises(ValueError, match="errors: expected shape"):
        calibration(np.zeros((3,)), np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="covariance: expected shape"):
        calibration(np.zeros((3, 2)), np.zeros((2, 2, 2)))


def test_baselines_on_noise_free_peaks():
    rng = np.random.default_rng(3)
    pos = rng.uniform(12, 36, (50, 2))
    maps = encode(pos[:, None], np.ones((50, 1)), (48, 64), 2.0)[0][:, 0]
    # measured: udp 0.0009 px (the sampled kernel), windowed soft-argmax 0.004, fit 1e-7
    assert np.abs(udp_decode(maps, 11) - pos).max() < 2e-3
    assert np.abs(soft_argmax(maps, radius=4) - pos).max() < 1e-2
    assert np.abs(gaussian_fit(maps, np.round(pos), 2.0) - pos).max() < 1e-5
    # the global soft-argmax is pulled towards the centre by the background's weight
    centre = np.array([23.5, 31.5])
    pulled = np.linalg.norm(soft_argmax(maps) - centre, axis=1) < np.linalg.norm(pos - centre, axis=1)
    assert pulled.mean() > 0.9


def test_positions_are_stratified_by_border_band():
    pos = stratified_positions(np.random.default_rng(0), 400, (32, 24))
    assert pos.shape == (2000, 2)
    d = border_distance(pos, (32, 24))
    for b, (lo, hi) in enumerate(BANDS):
        part = d[400 * b : 400 * (b + 1)]
        assert part.min() >= lo and part.max() < hi
    # sub-pixel phases uniform (measured: 50.7% and 49.3% below one half)
    assert np.mean(pos[:, 0] % 1 < 0.5) == pytest.approx(0.5, abs=0.04)
    assert np.mean(pos[:, 1] % 1 < 0.5) == pytest.approx(0.5, abs=0.04)
