"""The quick start in miniature: every report file written and readable, the figures in it
consistent with the test loop, the data reused, the report never replaced unasked."""

from __future__ import annotations

import json

import cv2
import pytest

from darkpose.cli import main
from darkpose.demo import DECODES, REPORT_FILES, run_demo

TINY = ("model.name=hrnet_tiny", "model.options={}", "train.batch_size=8", "data.workers=0")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = run_demo(out, minutes=0.02, num_images=10, num_val=4, overrides=TINY, progress=False)
    return out, result


def test_every_report_file_is_written_and_parses(demo):
    out, result = demo
    for name in REPORT_FILES:
        assert result.files[name] == out / name and (out / name).stat().st_size > 0
    for name in ("loss.png", "decode_ap.png", "predictions.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert set(metrics["decode"]) == set(DECODES)
    for row in metrics["decode"].values():
        assert set(row) == {"flip", "no_flip"} and all(0.0 <= v <= 1.0 for v in row.values())
    # the full table is the dark + flip test evaluation, so its AP is the decode table's
    assert metrics["val"]["AP"] == metrics["decode"]["dark"]["flip"]
    assert metrics["model"]["name"] == "hrnet_tiny" and metrics["train"]["epochs"] >= 1
    assert metrics["data"]["num_train"] == 10 and metrics["data"]["reused"] is False
    report = (out / "report.md").read_text()
    for decode in DECODES:
        assert f"| {decode} | {metrics['decode'][decode]['no_flip']:.3f} |" in report
    assert "darkpose make-synthetic" in report and "darkpose train" in report


def test_the_oracle_shows_the_quantisation_bias(demo):
    """Perfect unbiased targets decode to AP 1 with the dark decode; quantized ones lose
    about 0.12 AP at 128x96 (measured 0.881 on 10 val images, 0.889 on 250)."""
    o = demo[1].metrics["encode_oracle"]
    assert o["unbiased"] == pytest.approx(1.0)
    assert 0.6 < o["quantized"] < 0.97


def test_data_is_reused_and_the_report_kept(demo, capsys):
    out, result = demo
    before = (out / "report.md").read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_demo(out, minutes=0.02, num_images=10, num_val=4, overrides=TINY, progress=False)
    assert (out / "report.md").read_bytes() == before
    code = main(["demo", "--out", str(out), "--minutes", "0.02", "--num-images", "10", "--num-val", "4",
                 "--no-progress", *sum((["--set", s] for s in TINY), [])])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    again = run_demo(out, minutes=0.02, num_images=10, num_val=4, overrides=TINY, progress=False,
                     overwrite=True)
    assert again.metrics["data"]["reused"] is True and again.metrics["data"]["seconds"] == 0.0


def test_bad_budget_and_foreign_data_folder(tmp_path):
    with pytest.raises(ValueError, match="minutes"):
        run_demo(tmp_path / "a", minutes=0, overrides=TINY, progress=False)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a demo dataset"):
        run_demo(tmp_path / "b", data=foreign, minutes=0.02, num_images=4, num_val=2, overrides=TINY,
                 progress=False)
    assert (foreign / "notes.txt").read_text() == "keep"


def test_train_both_reports_a_model_per_target_type(tmp_path):
    result = run_demo(tmp_path, minutes=0.02, num_images=6, num_val=3, overrides=TINY, progress=False,
                      train_both=True)
    trained = result.metrics["encode_trained"]
    assert set(trained) == {"quantized", "unbiased"}
    assert trained["unbiased"] == result.metrics["decode"]["dark"]["flip"]
    assert (tmp_path / "train_quantized" / "last.pth").is_file()
    assert "Trained on each target type" in (tmp_path / "report.md").read_text()
