"""Distributed data parallel on the CPU: two processes with the gloo backend, spawned by the
tests (``torch.multiprocessing.spawn``, a free localhost port), against one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from darkpose.config import Config, apply_overrides
from darkpose.engine import distributed
from darkpose.engine.distributed import ShardedEpochOrder
from darkpose.models import MODELS, ModelEntry, read_checkpoint

WORLD = 2


class PlainNet(nn.Module):
    """Stride-4 heatmaps without BatchNorm or dropout: its gradient over a batch is the mean
    of the per-sample gradients, so two ranks of half batches average to the whole batch's
    (BatchNorm would normalise each rank's half by its own statistics)."""

    def __init__(self, num_joints: int = 17) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, num_joints, 1))

    def forward(self, x):
        return self.body(x)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, job, args) -> None:
    """One rank: the environment torchrun would give, the process group, ``job(*args)``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)  # two processes on a small machine
    MODELS["test_plain_net"] = ModelEntry(PlainNet)  # this child process's registry
    launch = distributed.init_from_env("cpu")
    assert (launch.rank, launch.world_size, str(launch.device)) == (rank, WORLD, "cpu")
    try:
        job(*args)
    finally:
        distributed.cleanup()


def spawn(job, *args) -> None:
    """``job(*args)`` on each of ``WORLD`` ranks (a module-level function: the children
    import this module)."""
    mp.spawn(_worker, args=(free_port(), job, args), nprocs=WORLD, join=True)


# -- the data order -----------------------------------------------------------------------------


def test_sharded_order_deals_one_permutation_out_and_resumes_from_a_position():
    whole = ShardedEpochOrder(10, seed=3)
    whole.set_epoch(2)
    order = list(whole)
    assert sorted(order) == list(range(10))
    shares = []
    for r in range(4):
        s = ShardedEpochOrder(10, seed=3, rank=r, world_size=4)
        s.set_epoch(2)
        shares.append(list(s))
        assert len(s) == s.share == 3
    padded = order + order[:2]  # 12 = 3 x 4: the first two again, as DistributedSampler pads
    assert shares == [padded[r::4] for r in range(4)]
    s.start = 2  # rank 3, two of its samples done
    assert list(s) == shares[3][2:] and len(s) == 1
    other = ShardedEpochOrder(10, seed=3)
    other.set_epoch(3)
    assert list(other) != order  # a function of (seed, epoch)
    with pytest.raises(ValueError, match=r"rank 2 is not in range\(world_size=2\)"):
        ShardedEpochOrder(10, seed=3, rank=2, world_size=2)


# -- (a) training: 2 processes of batch B equal 1 process of batch 2B -----------------------------


def train_config(data: Path, run: Path, batch_size: int) -> Config:
    ann, images = data / "person_keypoints.json", data / "images"
    return apply_overrides(Config(), [
        f"data.train_ann={ann}", f"data.train_images={images}", "data.workers=0",
        "input.image_size=[32,32]", "model.name=test_plain_net", f"train.batch_size={batch_size}",
        "train.epochs=2", "train.val_every=0", "train.optimizer=sgd", "train.lr=0.5",
        "train.momentum=0.9", f"output_dir={run}"])


def _train_job(data: Path, out: Path) -> None:
    from darkpose.engine.train import train

    whole = train(train_config(data, out / "ddp", 2), progress=False)
    assert (whole.epoch, whole.step) == (2, 4)  # 8 persons: 4 a rank, 2 steps an epoch
    with pytest.raises(FileExistsError, match="holds a run of this config"):  # on every rank
        train(train_config(data, out / "ddp", 2), progress=False)
    parts = train_config(data, out / "ddp_parts", 2)
    assert train(parts, progress=False, max_steps=1).step == 1  # mid-epoch 1
    assert train(parts, progress=False, resume=True).step == 4


def test_two_processes_train_the_weights_of_one_process_with_the_global_batch(tmp_path, monkeypatch):
    from darkpose.engine.train import train
    from test_engine_train import write_tiny_coco

    write_tiny_coco(tmp_path / "data")  # 4 photos, 8 persons
    spawn(_train_job, tmp_path / "data", tmp_path)
    monkeypatch.setitem(MODELS, "test_plain_net", ModelEntry(PlainNet))
    single = train(train_config(tmp_path / "data", tmp_path / "single", 4), progress=False)
    assert single.step == 4

    ddp = read_checkpoint(tmp_path / "ddp" / "last.pth")
    one = read_checkpoint(single.last_checkpoint)
    assert ddp.state_dict.keys() == one.state_dict.keys()  # the unwrapped model's (no "module.")
    assert ddp.meta["step"] == 4
    initial = read_checkpoint_initial(tmp_path)
    for key, value in one.state_dict.items():
        # measured: max |difference| 3.0e-8 (float32 sums in another order), while the
        # weights move by 0.01 to 0.10 from their initial values
        torch.testing.assert_close(ddp.state_dict[key], value, rtol=0, atol=1e-7,
                                   msg=lambda m, key=key: f"{key}: {m}")
        assert not torch.equal(value, initial[key])
    lines = (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 2  # rank 0 alone logs
    # a 2-process run stopped mid-epoch and resumed: the same weights, bit for bit
    resumed = read_checkpoint(tmp_path / "ddp_parts" / "last.pth")
    for key, value in ddp.state_dict.items():
        assert torch.equal(resumed.state_dict[key], value), key


def read_checkpoint_initial(tmp_path: Path) -> dict:
    """The weights before the first step (a run of 0 steps)."""
    from darkpose.engine.train import train

    cfg = train_config(tmp_path / "data", tmp_path / "initial", 4)
    return read_checkpoint(train(cfg, progress=False, max_steps=0).last_checkpoint).state_dict


# -- (b) evaluation: sharded across 2 processes, gathered, the AP of 1 process -------------------


def _evaluate_job(coco_mini: Path, out: Path) -> None:
    from darkpose.engine.data import build_dataset
    from darkpose.engine.evaluate import evaluate, predict
    from test_engine_evaluate import ground_truth_model, mini_config

    cfg = mini_config(coco_mini)
    ds = build_dataset(cfg, "val", train=False)
    model = ground_truth_model(ds, cfg)
    preds = predict(model, ds, cfg, progress=False)
    table = evaluate(model, cfg, dataset=ds, results_path=out / "results.json", progress=False)
    torch.save({"keypoints": torch.from_numpy(preds.keypoints), "table": table},
               out / f"rank{distributed.rank()}.pt")


def test_two_processes_evaluate_the_ap_of_one_process(coco_mini, tmp_path):
    from darkpose.engine.data import build_dataset
    from darkpose.engine.evaluate import evaluate, predict
    from test_engine_evaluate import ground_truth_model, mini_config

    spawn(_evaluate_job, coco_mini, tmp_path)
    cfg = mini_config(coco_mini)
    ds = build_dataset(cfg, "val", train=False)
    model = ground_truth_model(ds, cfg)
    keypoints = predict(model, ds, cfg, progress=False).keypoints
    table = evaluate(model, cfg, dataset=ds, results_path=tmp_path / "single.json", progress=False)
    assert table["AP"] == pytest.approx(0.9913, abs=1e-4)  # test_engine_evaluate's figure
    for r in range(WORLD):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=False)
        assert got["table"] == table  # rank 0's, on every rank
        # every rank has every person (86, gathered in dataset order)
        np.testing.assert_array_equal(got["keypoints"].numpy(), keypoints)
    assert (tmp_path / "results.json").read_text() == (tmp_path / "single.json").read_text()


# -- the command under torchrun ---------------------------------------------------------------------


def test_torchrun_darkpose_train_writes_one_run(coco_mini, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {name: hrnet_tiny}\ninput: {image_size: [48, 64]}\n"
                      "train: {epochs: 1, batch_size: 8, val_every: 0}\n")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}",
            "-m", "darkpose", "train", str(config), "--device", "cpu", "--no-progress",
            "--max-steps", "2",
            "--set", f"data.train_ann={coco_mini / 'annotations' / 'person_keypoints_train2017.json'}",
            "--set", f"data.train_images={coco_mini / 'train2017'}",
            "--set", "data.workers=0", "--set", f"output_dir={out}"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training stopped after 0 epochs, 2 steps") == 1, done.stdout  # rank 0's
    last = read_checkpoint(out / "last.pth")
    # 86 persons: 43 a rank; 2 steps of 8 per rank = 16 samples of rank 0's share
    assert (last.training["step"], last.training["position"]) == (2, 16)
    assert sorted(p.name for p in out.iterdir()) == ["last.pth"]


def test_without_torchrun_there_is_one_process_and_a_bad_environment_is_named(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_from_env("cpu") == distributed.Launch(0, 1, 0, torch.device("cpu"))
    assert not distributed.is_distributed() and distributed.is_main()
    assert distributed.gather("x") == ["x"] and distributed.world_size() == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="environment variable RANK: expected an integer "
                                         r"\(torchrun sets it\), got 'one'"):
        distributed.init_from_env("cpu")
    assert not distributed.is_distributed()
