"""`darkpose bench predict --quick`: the report's fields and the consistency of its ratios
(no timing assertions)."""

from __future__ import annotations

import json

import pytest

from darkpose.cli import main


def test_quick_run_writes_a_consistent_report(tmp_path, capsys):
    out = tmp_path / "predict.json"
    assert main(["bench", "predict", "--quick", "--threads", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("hrnet_tiny at 64x48 (HxW), flip test off, decode dark, cpu, 1 torch threads")
    r = json.loads(out.read_text())
    assert (r["model"], r["input_size"], r["flip_test"], r["target_outside"]) == ("hrnet_tiny", [48, 64], False, 0.1)
    assert r["torch_threads"] == 1
    # PyTorch, then the same model exported and run through onnxruntime, per batch size
    assert [(row["backend"], row["batch"]) for row in r["rows"]] == [
        ("pytorch", 1), ("onnxruntime", 1), ("pytorch", 4), ("onnxruntime", 4)]
    for row in r["rows"]:
        ms, ratio = row["ms"], row["vs_model"]
        assert set(ms) == {"preprocess", "model", "decode", "total"} and all(v > 0 for v in ms.values())
        assert row["rounds"] == 3
        assert ratio["preprocess"] == pytest.approx(ms["preprocess"] / ms["model"], rel=1e-12)
        assert ratio["decode"] == pytest.approx(ms["decode"] / ms["model"], rel=1e-12)
        assert ratio["outside"] == pytest.approx(ratio["preprocess"] + ratio["decode"], rel=1e-12)
        assert row["persons_per_s"] == pytest.approx(row["batch"] / ms["total"] * 1e3, rel=1e-12)
        assert row["model_persons_per_s"] == pytest.approx(row["batch"] / ms["model"] * 1e3, rel=1e-12)
    before = out.read_text()
    assert main(["bench", "predict", "--quick", "--json", str(out)]) == 2  # never replaced unasked
    assert "--force" in capsys.readouterr().err and out.read_text() == before


def test_without_onnx_only_pytorch_rows(tmp_path):
    out = tmp_path / "predict.json"
    assert main(["bench", "predict", "--quick", "--no-onnx", "--json", str(out)]) == 0
    assert [row["backend"] for row in json.loads(out.read_text())["rows"]] == ["pytorch", "pytorch"]


def test_unknown_model_is_refused(capsys):
    assert main(["bench", "predict", "--model", "nope"]) == 2
    assert "unknown --model 'nope'" in capsys.readouterr().err
