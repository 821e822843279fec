"""`darkpose train` with validation, then `darkpose test` on its checkpoint: one code path."""

from __future__ import annotations

import json

import pytest
import torch

from darkpose.cli import main


@pytest.fixture
def denormals_back():
    yield
    torch.set_flush_denormal(False)  # the train command flushes them (process-wide)


def test_train_with_validation_then_test_gives_the_validation_figures(coco_mini, tmp_path, capsys,
                                                                      denormals_back):
    ann = coco_mini / "annotations" / "person_keypoints_train2017.json"
    images = coco_mini / "train2017"
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {name: hrnet_tiny}\ninput: {image_size: [48, 64]}\n"
                      "train: {epochs: 2, batch_size: 16, val_every: 1, lr: 0.005}\n"
                      "test: {batch_size: 32}\n")
    data = [f"data.train_ann={ann}", f"data.train_images={images}", f"data.val_ann={ann}",
            f"data.val_images={images}", "data.workers=0", f"output_dir={tmp_path / 'run'}"]
    sets = [a for d in data for a in ("--set", d)]
    assert main(["train", str(config), "--device", "cpu", "--no-progress", *sets]) == 0
    out = tmp_path / "run"
    assert {"last.pth", "best.pth", "log.jsonl", "curves.png"} <= {p.name for p in out.iterdir()}
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    val = [r["val"] for r in log]
    assert all(set(v) >= {"AP", "AP50", "AR"} for v in val)
    best = max(range(2), key=lambda i: val[i]["AP"])
    capsys.readouterr()

    results = tmp_path / "results.json"
    assert main(["test", str(config), "--checkpoint", str(out / "best.pth"), "--results", str(results),
                 *sets]) == 0
    printed = capsys.readouterr().out
    table = {line.split()[0]: float(line.split()[1]) for line in printed.splitlines()
             if line.startswith("  ") and len(line.split()) == 2}
    # the test command and the validation inside training run the same code on the same
    # weights: the same ten figures, to the printed precision (a 2-epoch hrnet_tiny scores
    # about 0, so this checks the path, not the learning)
    assert set(table) == set(val[best])
    for name, value in val[best].items():
        assert table[name] == pytest.approx(value, abs=5e-5), name
    rows = json.loads(results.read_text())
    assert 0 < len(rows) <= 86 and all(len(r["keypoints"]) == 51 for r in rows)
    assert main(["test", str(config), "--checkpoint", str(out / "best.pth"), "--results", str(results),
                 *sets]) == 2  # an existing results file is never replaced unasked
    assert "--overwrite" in capsys.readouterr().err
