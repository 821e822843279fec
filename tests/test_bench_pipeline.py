"""The pipeline-speed benchmark runs end to end (its figures are not asserted: timings
live in the benchmark, not in tests)."""

from __future__ import annotations

import json

from darkpose.cli import main

ANN = "annotations/person_keypoints_train2017.json"


def test_pipeline_command_writes_its_figures(coco_mini, tmp_path, capsys):
    out = tmp_path / "pipeline.json"
    args = ["bench", "pipeline", "--ann", str(coco_mini / ANN), "--images",
            str(coco_mini / "train2017"), "--size", "128x96", "--rounds", "1",
            "--json", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["persons"] == 86 and report["image_size"] == [96, 128]
    assert set(report["stages_ms"]) == {
        "decode", "crop", "normalise", "encode_per_sample", "encode_batched", "transform_total"
    }
    assert report["ratio_batch"] > 0 and report["ratio_sample"] > 0
    assert "JPEG decode alone" in capsys.readouterr().out
    assert main(args) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err
