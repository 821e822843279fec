"""``darkpose bench train``: the loop against the step alone, end to end on coco-mini with a
tiny model (its speed is not asserted: that is the benchmark's job), the data loading inside
the loop's row, and usage errors before any work."""

from __future__ import annotations

import json
import statistics
import time

import cv2
import pytest
import torch

from darkpose.bench.train import measure
from darkpose.cli import main
from darkpose.config import load_config
from darkpose.data import TopDownDataset

ANN = "annotations/person_keypoints_train2017.json"


def flushing_denormals() -> bool:
    return torch.tensor([1e-39]).mul(1.0).item() == 0.0


@pytest.fixture
def config(coco_mini, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("model: {name: hrnet_tiny}\ninput: {image_size: [48, 64]}\n"
                    f"data: {{train_ann: {coco_mini / ANN}, train_images: {coco_mini / 'train2017'}}}\n")
    return path


@pytest.fixture
def process_settings():
    """Thread counts other than the run's (1) and denormals not flushed, restored after."""
    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(2)
    cv2.setNumThreads(3)
    torch.set_flush_denormal(False)
    yield
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])
    torch.set_flush_denormal(False)


def test_command_writes_its_figures_and_gives_the_process_settings_back(config, tmp_path, capsys,
                                                                         process_settings, monkeypatch):
    seen = []  # denormal flushing while the samples are made (workers 0: in this process)
    get = TopDownDataset.__getitem__
    monkeypatch.setattr(TopDownDataset, "__getitem__",
                        lambda self, key: seen.append(flushing_denormals()) or get(self, key))
    out = tmp_path / "train.json"
    args = ["bench", "train", str(config), "--workers", "0", "--iters", "3", "--warmup", "1",
            "--batch-size", "4", "--threads", "1", "--json", str(out)]
    assert main(args) == 0
    assert (torch.get_num_threads(), cv2.getNumThreads()) == (2, 3)
    assert seen and all(seen) and not flushing_denormals()  # flushed during the run only
    report = json.loads(out.read_text())
    assert (report["model"], report["image_size"], report["batch_size"]) == ("hrnet_tiny", [48, 64], 4)
    assert (report["iters"], report["warmup"], report["device"]) == (3, 1, "cpu")
    assert report["torch_threads"] == 1  # recorded during the run
    [row] = report["rows"]
    assert row["workers"] == 0
    assert len(row["loop_iter_ms"]) == len(row["step_iter_ms"]) == 3  # the warm-up is not among them
    assert min(row["loop_iter_ms"] + row["step_iter_ms"]) > 0
    # per-iteration means of the recorded times, and the ratio of those means
    assert row["loop_ms"] == pytest.approx(statistics.fmean(row["loop_iter_ms"]), rel=1e-12)
    assert row["step_ms"] == pytest.approx(statistics.fmean(row["step_iter_ms"]), rel=1e-12)
    assert row["ratio"] == pytest.approx(row["loop_ms"] / row["step_ms"], rel=1e-12)
    assert report["keeps_up_with"] in (0, None) and "cuda_variants" not in report
    assert "loop / step" in capsys.readouterr().out
    assert main(args) == 2  # refuses to overwrite the JSON
    assert "exists" in capsys.readouterr().err


def test_the_loop_row_includes_the_data_loading_and_the_step_does_not(config, monkeypatch):
    """Each sample sleeps 50 ms: every loop iteration of 4 samples takes at least 200 ms
    (one worker: the batch is made while the previous step runs, ~20 ms); the step alone,
    on the same batches in memory, stays far below (measured 12-20 ms here)."""
    sleep, batch = 0.05, 4
    get = TopDownDataset.__getitem__

    def slow(self, key):
        time.sleep(sleep)
        return get(self, key)

    monkeypatch.setattr(TopDownDataset, "__getitem__", slow)
    cfg = load_config(config)
    report = measure(cfg, workers=[0, 1], iters=2, warmup=0, batch_size=batch, num_threads=1)
    no_workers, one_worker = report["rows"]
    assert min(no_workers["loop_iter_ms"]) >= batch * sleep * 1e3
    assert one_worker["loop_ms"] >= 0.8 * batch * sleep * 1e3
    for row in (no_workers, one_worker):
        assert max(row["step_iter_ms"]) < 0.5 * batch * sleep * 1e3
        assert row["ratio"] > 1.5
    assert report["keeps_up_with"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--workers", "-1"], "integer >= 0"), (["--workers"], "expected at least one"),
     (["--iters", "0"], "positive integer"), (["--warmup", "-2"], "integer >= 0"),
     (["--batch-size", "0"], "positive integer"), (["--threads", "0"], "positive integer")],
)  # fmt: skip
def test_bad_arguments_are_usage_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "train", str(tmp_path / "none.yaml"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert argv[0] in err and message in err and "none.yaml" not in err


def test_bad_inputs_are_refused_before_any_work(config, coco_mini, tmp_path, capsys):
    def refused(*argv: str) -> str:
        assert main(["bench", "train", *argv, "--iters", "1"]) == 2
        return capsys.readouterr().err

    assert "none.yaml" in refused(str(tmp_path / "none.yaml"))
    assert "train.batchsize" in refused(str(config), "--set", "train.batchsize=3")  # a typo
    err = refused(str(config), "--set", f"data.train_ann={tmp_path / 'none.json'}")
    assert "data.train_ann" in err and "none.json" in err
    assert "train.amp" in refused(str(config), "--set", "train.amp=bf16", "--device", "cpu")
    if not torch.cuda.is_available():
        assert "no CUDA device" in refused(str(config), "--device", "cuda")
    existing = tmp_path / "mine.json"
    existing.write_text("{}")
    assert "exists" in refused(str(config), "--json", str(existing))
    assert existing.read_text() == "{}"
