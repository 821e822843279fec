"""`darkpose bench codec` runs end to end on a tiny problem (timings are not asserted)."""

import json

import numpy as np
import pytest

from darkpose.bench.codec import decode_loop, encode_loop
from darkpose.cli import main
from darkpose.codec import decode, encode


def test_bench_codec_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "codec.json"
    argv = ["bench", "codec", "--n", "4", "--k", "3", "--repeats", "1", "--loop-repeats", "1", "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    needles = ["floor: np.argmax", "argmax + window read", "baseline: per-keypoint loop", "decode dark"]
    for needle in needles + ["encode quantized", "allocate and write once"]:
        assert needle in text
    data = json.loads(out.read_text())
    assert data["config"]["n"] == 4
    errors = {name: r["mean_error_px"] for name, r in data["results"].items() if "mean_error_px" in r}
    # 12 keypoints, sigma 2, noise 0.03, seed 0; measured: dark 0.08847, the loop and
    # dark-reference 0.08848, shift 0.3562, argmax 0.6018
    assert errors["decode dark (numpy)"] < 0.0886
    assert errors["decode dark (torch)"] == pytest.approx(errors["decode dark (numpy)"], abs=1e-6)
    assert errors["baseline: per-keypoint loop (numpy)"] == pytest.approx(0.08848, abs=2e-5)
    assert errors["decode dark-reference (numpy)"] == pytest.approx(0.08848, abs=2e-5)
    assert errors["decode shift (numpy)"] == pytest.approx(0.3562, abs=2e-4)
    assert errors["decode argmax (numpy)"] == pytest.approx(0.6018, abs=2e-4)
    # the targets are stated against the bounds of the same run; other ratios are information
    assert len(data["targets"]) == 3 and all("bound" in t for t in data["targets"])
    assert [t.split(":")[0] for t in data["information"]][:2] == ["dark (numpy)", "dark (torch)"]
    results = data["results"]
    ratio = results["decode dark (numpy)"]["median_s"] / results["argmax + window read (numpy)"]["median_s"]
    assert data["targets"][next(t for t in data["targets"] if t.startswith("dark"))] == (ratio <= 1.7)
    # an existing file is never overwritten without --force
    before = out.read_text()
    capsys.readouterr()
    assert main(argv) == 2
    assert "already exists; pass --force to overwrite it" in capsys.readouterr().err
    assert out.read_text() == before
    assert main(argv + ["--force"]) == 0


def test_baseline_loops_agree_with_the_vectorised_codec():
    rng = np.random.default_rng(0)
    kp = rng.uniform(3, 40, (2, 5, 2))
    for method in ("unbiased", "quantized"):
        np.testing.assert_allclose(
            encode_loop(kp, (48, 64), 2.0, method), encode(kp, np.ones((2, 5)), (48, 64), 2.0, method)[0], atol=1e-6
        )
    maps = encode(kp, np.ones((2, 5)), (48, 64), 2.0)[0] + rng.normal(0, 0.02, (2, 5, 64, 48)).astype(np.float32)
    np.testing.assert_allclose(decode_loop(maps, 11), decode(maps, "dark-reference")[0], atol=1e-4)


def test_unknown_command_and_help(capsys):
    assert main(["bench", "nothing"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert main([]) == 0
    assert "bench codec" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["--n", "0"], ["--kernel", "4"], ["--sigma", "-1"], ["--sigma", "nan"], ["--noise", "inf"],
     ["--size", "48", "0"], ["--repeats", "-2"], ["--seed", "-1"]],
)  # fmt: skip
def test_bad_arguments_are_refused_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "codec", *argv])
    assert exc.value.code == 2
    assert "expected" in capsys.readouterr().err


def test_the_window_read_bound_reads_the_window_around_each_maximum():
    from darkpose.bench.codec import argmax_and_windows

    rng = np.random.default_rng(1)
    # 20x17 frames hold the 15x15 window; in 6x9 frames the window is 6x6 (the whole height)
    for shape, side in (((2, 3, 20, 17), 15), ((1, 2, 6, 9), 6)):
        maps = rng.random(shape).astype(np.float32)
        height, width = shape[2:]
        flat = maps.reshape(-1, height, width)
        windows = argmax_and_windows(maps, 11)
        assert windows.shape == (len(flat), side, side)
        for m in range(len(flat)):
            y, x = np.unravel_index(flat[m].argmax(), (height, width))
            top = min(max(y - side // 2, 0), height - side)
            left = min(max(x - side // 2, 0), width - side)
            np.testing.assert_array_equal(windows[m], flat[m, top : top + side, left : left + side])
