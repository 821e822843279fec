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
    assert data["results"]["decode dark (numpy)"]["mean_error_px"] < 0.5
    assert len(data["targets"]) == 8
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


@pytest.mark.parametrize("argv", [["--n", "0"], ["--kernel", "4"], ["--sigma", "-1"], ["--size", "48", "0"]])
def test_bad_arguments_are_refused_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "codec", *argv])
    assert exc.value.code == 2
    assert "expected" in capsys.readouterr().err


def test_the_window_read_bound_reads_the_window_around_each_maximum():
    from darkpose.bench.codec import argmax_and_windows

    rng = np.random.default_rng(1)
    maps = rng.random((2, 3, 20, 17)).astype(np.float32)
    windows = argmax_and_windows(maps, 11).reshape(6, 15, 15)
    flat = maps.reshape(6, 20, 17)
    for m in range(6):
        y, x = np.unravel_index(flat[m].argmax(), (20, 17))
        top, left = min(max(y - 7, 0), 20 - 15), min(max(x - 7, 0), 17 - 15)
        np.testing.assert_array_equal(windows[m], flat[m, top : top + 15, left : left + 15])
    # frames smaller than the window: the whole frame is read
    small = rng.random((1, 2, 6, 9)).astype(np.float32)
    assert argmax_and_windows(small, 11).shape == (2 * 6, 6)
