"""The pipeline-speed benchmark runs end to end (its timings are not asserted: they live in
the benchmark, not in tests)."""

from __future__ import annotations

import json
import statistics

import cv2
import pytest
import torch

from darkpose.bench.pipeline import measure
from darkpose.cli import main

ANN = "annotations/person_keypoints_train2017.json"


@pytest.fixture
def thread_counts():
    """Thread counts other than 1 (what the benchmark runs on) for the test, restored after."""
    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(2)
    cv2.setNumThreads(3)
    yield 2, 3
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


def test_pipeline_command_writes_its_figures(coco_mini, tmp_path, capsys, thread_counts):
    out = tmp_path / "pipeline.json"
    args = ["bench", "pipeline", "--ann", str(coco_mini / ANN), "--images",
            str(coco_mini / "train2017"), "--size", "128x96", "--rounds", "2",
            "--json", str(out)]
    assert main(args) == 0
    # the benchmark (on one thread) gave the process its thread counts back
    assert (torch.get_num_threads(), cv2.getNumThreads()) == thread_counts
    report = json.loads(out.read_text())
    assert report["persons"] == 86 and report["image_size"] == [96, 128]
    assert set(report["stages_ms"]) == {
        "decode", "crop", "normalise", "encode_per_sample", "encode_batched", "transform_total"
    }
    # two timed rounds (the warm-up is not among them); each ratio is the median over the
    # rounds of (pipeline time / decode time) in that round, not a ratio of medians
    rounds = report["rounds_ms"]
    assert [len(rounds[k]) for k in ("decode", "sample", "batch")] == [2, 2, 2]
    for mode in ("sample", "batch"):
        per_round = [t / d for t, d in zip(rounds[mode], rounds["decode"], strict=True)]
        assert report[f"ratio_{mode}"] == pytest.approx(statistics.median(per_round), rel=1e-12)
        assert report[f"{mode}_ms"] == pytest.approx(statistics.median(rounds[mode]), rel=1e-12)
    assert "JPEG decode alone" in capsys.readouterr().out
    assert main(args) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err


def test_thread_counts_are_given_back_when_the_benchmark_fails(coco_mini, tmp_path, thread_counts):
    empty = tmp_path / "empty.json"
    data = json.loads((coco_mini / ANN).read_text())
    empty.write_text(json.dumps(data | {"annotations": []}))
    with pytest.raises(ValueError):  # no person to time
        measure(empty, coco_mini / "train2017", (96, 128), rounds=1)
    assert (torch.get_num_threads(), cv2.getNumThreads()) == thread_counts


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--rounds", "0"], "positive integer"), (["--rounds", "-3"], "positive integer"),
     (["--batch-size", "0"], "positive integer"), (["--size", "4x4"], "at least 8"),
     (["--size", ""], "HEIGHTxWIDTH"), (["--size", "130x96"], "multiples of 4")],
)  # fmt: skip
def test_bad_arguments_are_usage_errors(argv, message, tmp_path, capsys):
    args = ["bench", "pipeline", "--ann", str(tmp_path / "none.json"), "--images", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        main(args + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert argv[0] in err and message in err and "not found" not in err
