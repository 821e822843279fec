"""The training loop: exact resume, schedules, validation and best, fine-tuning, refusals,
non-finite losses, checkpoint format 2, and `darkpose train` end to end on coco-mini."""

from __future__ import annotations

import json
import math
import re
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from darkpose.cli import main
from darkpose.config import Config, ConfigError, TrainConfig, apply_overrides
from darkpose.engine.train import NonFiniteLossError, build_optimizer, lr_factor, train
from darkpose.models import (
    MODELS,
    CheckpointError,
    CheckpointMismatchError,
    ModelEntry,
    build_model,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


def write_tiny_coco(root: Path, images: int = 4, persons: int = 2) -> tuple[Path, Path]:
    """A COCO-format keypoint file of noise photos with ``images * persons`` people."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    imgs, anns = [], []
    for i in range(images):
        cv2.imwrite(str(root / "images" / f"{i}.png"), rng.integers(0, 256, (80, 96, 3), np.uint8))
        imgs.append({"id": i + 1, "file_name": f"{i}.png", "width": 96, "height": 80})
        for _ in range(persons):
            x, y, w, h = rng.uniform(0, 40), rng.uniform(0, 20), rng.uniform(20, 50), rng.uniform(30, 55)
            kp = np.stack([x + rng.uniform(0, w, 17), y + rng.uniform(0, h, 17), np.full(17, 2.0)], 1)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                         "bbox": [x, y, w, h], "keypoints": kp.ravel().round(2).tolist()})
    ann = root / "person_keypoints.json"
    categories = [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)]}]
    ann.write_text(json.dumps({"images": imgs, "annotations": anns, "categories": categories}))
    return ann, root / "images"


class DropoutNet(nn.Module):
    """Stride-4 heatmaps through BatchNorm and dropout: every step draws from the global RNG,
    so a resume that lost the RNG state changes the weights. ``nan_from_call``: from that
    forward call on, the output is NaN (a diverging run)."""

    def __init__(self, num_joints: int = 17, nan_from_call: int = 0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2),
            nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, num_joints, 1),
        )
        self.nan_from_call, self.calls = nan_from_call, 0

    def forward(self, x):
        self.calls += 1
        out = self.body(x)
        return out * math.nan if self.nan_from_call and self.calls >= self.nan_from_call else out


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """(make_config, tmp_path): configs on an 8-person noise dataset, 3 steps an epoch."""
    monkeypatch.setitem(MODELS, "test_dropout_net", ModelEntry(DropoutNet))
    ann, images = write_tiny_coco(tmp_path / "data")

    def make(*overrides: str, run: str = "run") -> Config:
        return apply_overrides(Config(), [
            f"data.train_ann={ann}", f"data.train_images={images}", "data.workers=0",
            "input.image_size=[32,32]", "model.name=test_dropout_net", "train.batch_size=3",
            "train.epochs=3", "train.val_every=0", f"output_dir={tmp_path / run}", *overrides])

    return make


@pytest.fixture
def deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


def assert_identical(a, b, where="checkpoint"):
    """Nested dicts/lists/tuples equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]


# --- exact resume ------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Two loader workers beside two intra-op threads on a 2-core machine: OpenMP's waiting
    threads make each step ~100x slower (measured 13.8 s instead of 0.04 s for 3 batches)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_ends_with_the_weights_of_an_uninterrupted_run(tiny, deterministic, workers,
                                                                        request):
    if workers:
        request.getfixturevalue("one_thread")
    # per-step cosine schedule with warm-up, AdamW with weight decay, clipping, dropout:
    # the learning rate, the RNG and the data order all change from step to step
    recipe = [f"data.workers={workers}", "train.optimizer=adamw", "train.weight_decay=0.01",
              "train.schedule=cosine", "train.warmup_epochs=1.5", "train.grad_clip=1.0"]
    whole = train(tiny(*recipe, run="whole"), progress=False)
    assert (whole.epoch, whole.step, whole.finished) == (3, 9, True)

    cfg = tiny(*recipe, run="parts")
    first = train(cfg, progress=False, max_steps=2)  # mid-epoch 1: 6 of its 8 samples
    assert (first.epoch, first.step, first.finished) == (0, 2, False)
    assert read_checkpoint(first.last_checkpoint).training["position"] == 6
    second = train(cfg, progress=False, resume=True, max_steps=5)  # mid-epoch 2
    assert (second.epoch, second.step) == (1, 5)
    third = train(cfg, progress=False, resume=True)
    assert (third.epoch, third.step, third.finished) == (3, 9, True)

    a, b = read_checkpoint(whole.last_checkpoint), read_checkpoint(third.last_checkpoint)
    assert_identical(a.state_dict, b.state_dict, "state_dict")
    assert_identical(a.training, b.training, "training")  # optimiser, scheduler, RNG, position
    assert a.meta["config"]["output_dir"] != b.meta["config"]["output_dir"]
    assert losses(whole.output_dir) == losses(third.output_dir)  # exact, also the resumed epochs


def test_the_callers_rng_states_are_left_as_they_were(tiny):
    # the global NumPy generator on purpose: the loop must give back the caller's state
    torch.manual_seed(123)
    np.random.seed(5)  # noqa: NPY002
    expected = torch.rand(3), np.random.random()  # noqa: NPY002
    torch.manual_seed(123)
    np.random.seed(5)  # noqa: NPY002
    train(tiny(), progress=False, max_steps=1)  # seeds and draws from the global generators
    assert torch.equal(torch.rand(3), expected[0]) and np.random.random() == expected[1]  # noqa: NPY002


def test_log_lines_after_the_checkpoint_are_dropped_on_resume(tiny):
    cfg = tiny("train.epochs=2")
    first = train(cfg, progress=False, max_steps=4)  # epoch 1 logged, last.pth at step 4
    with open(first.log_file, "a") as f:  # as if killed after logging epoch 2, before its save
        f.write(json.dumps({"epoch": 2, "step": 6, "loss": -1.0}) + "\n")
    train(cfg, progress=False, resume=True)
    log = [json.loads(line) for line in first.log_file.read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in log] == [(1, 3), (2, 6)] and log[1]["loss"] > 0


def test_the_learning_rate_follows_the_schedule_step_by_step(tiny):
    summary = train(tiny("train.lr_steps=[1, 2]"), progress=False)
    lrs = [json.loads(line)["lr"] for line in summary.log_file.read_text().splitlines()]
    assert lrs == pytest.approx([1e-3, 1e-4, 1e-5], rel=1e-12)  # the last step of each epoch
    state = read_checkpoint(summary.last_checkpoint).training["scheduler"]
    assert state["last_epoch"] == 9  # stepped once per optimiser step


def test_lr_factor_schedules():
    multi = TrainConfig(epochs=4, lr_steps=(2, 3), lr_factor=0.1)
    assert [lr_factor(s, multi, 10) for s in (0, 19, 20, 29, 30, 39)] == [1, 1, 0.1, 0.1, 0.1**2, 0.1**2]
    warm = TrainConfig(epochs=4, lr_steps=(2,), warmup_epochs=1.0)
    assert [lr_factor(s, warm, 10) for s in (0, 4, 9, 10, 25)] == [0.1, 0.5, 1.0, 1.0, 0.1]
    cos = TrainConfig(epochs=4, schedule="cosine", warmup_epochs=2.0)
    assert lr_factor(0, cos, 5) == 0.1 and lr_factor(9, cos, 5) == 1.0  # warm-up: 10 steps
    assert lr_factor(15, cos, 5) == pytest.approx(0.5, abs=1e-15)  # half way through the rest
    assert lr_factor(20, cos, 5) == 0.0 and lr_factor(25, cos, 5) == 0.0
    with pytest.raises(ConfigError, match="train.schedule: expected 'multistep' or 'cosine'"):
        lr_factor(0, TrainConfig(schedule="step"), 10)


def test_gradient_clipping_bounds_the_step(tiny):
    def first_step(*overrides: str, run: str) -> float:
        cfg = tiny("train.optimizer=sgd", "train.momentum=0", "train.lr=1", *overrides, run=run)
        before = read_checkpoint(train(cfg, progress=False, max_steps=0).last_checkpoint).state_dict
        after = read_checkpoint(train(cfg, progress=False, max_steps=1, overwrite=True)
                                .last_checkpoint).state_dict
        names = [n for n, _ in DropoutNet().named_parameters()]  # not the BatchNorm buffers
        return math.sqrt(sum(float((after[n] - before[n]).square().sum()) for n in names))

    # SGD with lr 1: the step is the gradient, its norm clipped to 1e-3 (measured 0.0009999977,
    # clip_grad_norm_ divides by norm + 1e-6)
    assert first_step("train.grad_clip=1e-3", run="clipped") == pytest.approx(1e-3, rel=1e-5)
    assert first_step(run="free") > 0.1  # measured 0.187 without clipping


def test_optimizers_from_the_config():
    model = DropoutNet()
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.8, nesterov=True,
                                             weight_decay=1e-4))
    group = sgd.param_groups[0]
    assert isinstance(sgd, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.1, 0.8, True, 1e-4)
    adamw = build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.05))
    assert type(adamw) is torch.optim.AdamW and adamw.param_groups[0]["weight_decay"] == 0.05
    assert type(build_optimizer(model, TrainConfig())) is torch.optim.Adam  # the recipe's
    with pytest.raises(ConfigError, match="train.optimizer: expected 'adam', 'adamw' or 'sgd', got 'lamb'"):
        build_optimizer(model, TrainConfig(optimizer="lamb"))


# --- validation and best.pth ---------------------------------------------------------------------


def test_validation_every_n_epochs_and_best_checkpoint(tiny, monkeypatch):
    calls = []

    def evaluate(model, cfg, *, device="cpu", dataset=None, results_path=None, overwrite=False,
                 progress=True):
        calls.append(str(device))
        return {"AP": [0.3, 0.5, 0.4][len(calls) - 1], "AP50": 0.9}

    fake = types.ModuleType("darkpose.engine.evaluate")
    fake.evaluate = evaluate
    monkeypatch.setitem(sys.modules, "darkpose.engine.evaluate", fake)
    summary = train(tiny("train.epochs=5", "train.val_every=2"), progress=False)
    assert calls == ["cpu"] * 3  # after epochs 2, 4 and 5 (the last)
    log = [json.loads(line) for line in summary.log_file.read_text().splitlines()]
    assert [r["epoch"] for r in log if "val" in r] == [2, 4, 5]
    assert [r["val"]["AP"] for r in log if "val" in r] == [0.3, 0.5, 0.4]
    assert summary.best_metric == ("AP", 0.5) and summary.metrics == {"AP": 0.4, "AP50": 0.9}
    best = read_checkpoint(summary.best_checkpoint)
    assert best.meta["epoch"] == 4 and best.meta["best"] == {"name": "AP", "value": 0.5}
    assert read_checkpoint(summary.last_checkpoint).meta["epoch"] == 5
    assert summary.plot_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "best checkpoint" in str(summary) and "(AP 0.5000)" in str(summary)


# --- fine-tuning from another checkpoint ---------------------------------------------------------


def test_init_checkpoint_reinitialises_a_head_of_other_keypoints(tiny, tmp_path, caplog):
    source = build_model("hrnet_tiny", num_joints=5)
    path = save_checkpoint(source, tmp_path / "five_keypoints.pth")
    cfg = tiny("model.name=hrnet_tiny", f"model.init_checkpoint={path}")
    with caplog.at_level("WARNING", logger="darkpose.engine.train"):
        summary = train(cfg, progress=False, max_steps=0)  # writes the initial state
    assert summary.skipped_keys == ["final_layer.weight", "final_layer.bias"]
    assert "2 head tensors of another number of keypoints re-initialised: final_layer.weight, " \
           "final_layer.bias" in caplog.text
    assert "re-initialised (final_layer.weight, final_layer.bias)" in str(summary)
    start = read_checkpoint(summary.last_checkpoint).state_dict
    assert start["final_layer.weight"].shape == (17, 8, 1, 1)
    for key, value in source.state_dict().items():
        if not key.startswith("final_layer"):
            assert torch.equal(start[key], value), key

    other = save_checkpoint(build_model("simple_baseline_r18", num_joints=17,
                                        deconv_channels=(8, 8, 8)), tmp_path / "resnet.pth")
    with pytest.raises(CheckpointMismatchError, match=re.escape(
            f"model.init_checkpoint {other} is not a checkpoint of HRNet")):
        train(tiny("model.name=hrnet_tiny", f"model.init_checkpoint={other}", run="other"),
              progress=False, max_steps=0)


# --- refusals -----------------------------------------------------------------------------------------


def test_an_output_folder_holding_another_run_is_refused(tiny, caplog):
    cfg = tiny()
    first = train(cfg, progress=False, max_steps=1)
    before = first.last_checkpoint.read_bytes()
    with pytest.raises(FileExistsError, match=r"holds another run \(last\.pth has another config: "
                       r"train\.lr\); pass --resume"):
        train(tiny("train.lr=0.01"), progress=False)
    with pytest.raises(FileExistsError, match=r"holds a run of this config \(last\.pth\)"):
        train(cfg, progress=False)
    assert first.last_checkpoint.read_bytes() == before  # untouched
    assert train(tiny("train.lr=0.01"), progress=False, overwrite=True, max_steps=1).step == 1
    assert read_checkpoint(first.last_checkpoint).meta["config"]["train"]["lr"] == 0.01
    with caplog.at_level("WARNING", logger="darkpose.engine.train"):
        assert train(cfg, progress=False, resume=True, max_steps=2).step == 2
    assert f"resuming {first.last_checkpoint} with a changed config: train.lr" in caplog.text
    with pytest.raises(FileNotFoundError, match=r"resume: .*nowhere[/\\]last\.pth not found"):
        train(tiny(run="nowhere"), progress=False, resume=True)


def test_hourglass_stacks_train_through_the_summed_loss(tiny):
    cfg = tiny("model.name=hourglass_4", "model.options={channels: 8, num_blocks: 1}",
               "input.image_size=[64,64]", "train.loss=ohkm", "train.epochs=1")
    summary = train(cfg, progress=False)  # 4 heatmap tensors per forward in training mode
    assert summary.finished and all(math.isfinite(x) for x in losses(summary.output_dir))


def test_amp_on_the_cpu_is_refused(tiny):
    with pytest.raises(ConfigError, match="train.amp: bf16 autocast needs a CUDA device"):
        train(tiny("train.amp=bf16"), progress=False)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny):
    cfg = tiny("model.options={nan_from_call: 5}")  # epoch 2, batch 2
    with pytest.raises(NonFiniteLossError, match=re.escape(
            "the loss is nan at training step 5 (epoch 2, batch 2 of 3); the run stopped before "
            "applying it and ")):
        train(cfg, progress=False)
    last = read_checkpoint(Path(cfg.output_dir) / "last.pth")
    assert (last.meta["epoch"], last.meta["step"]) == (1, 3)
    assert all(torch.isfinite(v).all() for v in last.state_dict.values())
    assert len(losses(Path(cfg.output_dir))) == 1


# --- checkpoint format 2 ----------------------------------------------------------------------------


def test_training_checkpoint_loads_as_weights_and_version_1_still_loads(tiny, tmp_path):
    summary = train(tiny("model.name=hrnet_tiny"), progress=False, max_steps=1)
    model = build_model("hrnet_tiny")
    report = load_checkpoint(model, summary.last_checkpoint)  # weights_only=True underneath
    assert report.ok and report.meta["model"] == "hrnet_tiny" and report.meta["step"] == 1
    ckpt = read_checkpoint(summary.last_checkpoint)
    assert ckpt.format_version == 2
    assert sorted(ckpt.training) == ["best", "epoch", "loss_batches", "loss_sum", "metrics",
                                     "optimizer", "position", "rng", "scaler", "scheduler", "step"]
    assert sorted(ckpt.training["rng"]) == ["numpy", "python", "torch"]

    v1 = tmp_path / "v1.pth"
    torch.save({"format": "darkpose", "format_version": 1, "meta": {"epoch": 3},
                "state_dict": model.state_dict()}, v1)
    old = read_checkpoint(v1)
    assert (old.format_version, old.training, old.meta) == (1, None, {"epoch": 3})
    assert load_checkpoint(build_model("hrnet_tiny"), v1).ok
    run = Path(tiny(run="old").output_dir)
    run.mkdir()
    (run / "last.pth").write_bytes(v1.read_bytes())
    with pytest.raises(CheckpointError, match="holds weights only .* cannot resume a run"):
        train(tiny(run="old"), progress=False, resume=True)
    v9 = tmp_path / "v9.pth"
    torch.save({"format": "darkpose", "format_version": 9, "state_dict": model.state_dict()}, v9)
    with pytest.raises(CheckpointError, match=r"format version 9; this darkpose reads versions 1, 2"):
        read_checkpoint(v9)


# --- the command ----------------------------------------------------------------------------------


@pytest.fixture
def denormals_back():
    """The command flushes denormal floats (process-wide): give the default back."""
    yield
    torch.set_flush_denormal(False)


def flushed() -> bool:
    return (torch.tensor([1e-39]) * 1.0).item() == 0.0  # 1e-39: a float32 denormal


def test_darkpose_train_on_coco_mini(coco_mini, tmp_path, capsys, denormals_back):
    assert not flushed()
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {name: hrnet_tiny}\ninput: {image_size: [48, 64]}\n"
                      "train: {epochs: 1, batch_size: 16, val_every: 0}\n")
    out = tmp_path / "run"
    args = ["train", str(config), "--device", "cpu", "--no-progress",
            "--set", f"data.train_ann={coco_mini / 'annotations' / 'person_keypoints_train2017.json'}",
            "--set", f"data.train_images={coco_mini / 'train2017'}",
            "--set", "data.workers=0", "--set", f"output_dir={out}"]
    assert main(args) == 0
    assert flushed()  # on the CPU the command flushes denormals (HRNet's init is ~60x slower)
    printed = capsys.readouterr().out
    assert f"training finished after 1 epochs, 6 steps; written to {out}:" in printed  # 86 people
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "last.pth", "log.jsonl"]
    assert [r["step"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())] == [6]

    assert main(args) == 2  # the folder holds this run now
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"darkpose train: error: output_dir {out} holds a run of this config")
    assert main(["train", str(config), "--set", "train.lrr=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert "unknown key 'train.lrr'" in err
    assert main(["train", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: config file not found" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", str(config), "--device", "cuda"]) == 2
        assert "--device cuda: no CUDA device here" in capsys.readouterr().err
