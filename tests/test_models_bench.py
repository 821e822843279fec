"""The model benchmark's code path on a tiny model: what each variant runs (no timing
assertions)."""

from __future__ import annotations

import json

import pytest
import torch

import darkpose.bench.models
import darkpose.models
from darkpose.bench.models import Variant, format_table, run_benchmark, variants
from darkpose.cli import main

BUILD = darkpose.models.build_model


@pytest.fixture
def recorded(monkeypatch):
    """The models run_benchmark builds (as usual, by name), each with a record of the
    conditions of every forward call: calls[j] lists those of the j-th model built."""
    nets: list[torch.nn.Module] = []
    calls: list[list[dict]] = []

    def build_and_record(name, **options):
        net = BUILD(name, **options)
        seen: list[dict] = []

        def hook(module, args, output):
            x = args[0]
            first = output[0] if isinstance(output, (list, tuple)) else output
            seen.append({
                "batch": x.shape[0], "training": module.training,
                "grad": torch.is_grad_enabled(), "inference": torch.is_inference_mode_enabled(),
                "channels_last": not x.is_contiguous(), "dtype": first.dtype,
            })  # fmt: skip

        net.register_forward_hook(hook)
        nets.append(net)
        calls.append(seen)
        return net

    monkeypatch.setattr(darkpose.models, "build_model", build_and_record)
    return nets, calls


def _changed(net: torch.nn.Module, name: str) -> bool:
    """Whether any parameter of ``net`` differs from the model run_benchmark starts from
    (parameters only: batch-norm statistics move in any training-mode forward)."""
    torch.manual_seed(0)
    start = dict(BUILD(name).named_parameters())
    return any(not torch.equal(v, start[k]) for k, v in net.named_parameters())


def test_variants_per_device():
    assert [v.name for v in variants("cpu", "forward", compile=True)] == [
        "fp32 eager", "channels_last + inference_mode",
        "channels_last + inference_mode + compile",
    ]
    assert [v.name for v in variants("cuda", "train", compile=False)] == [
        "fp32 eager", "bf16 autocast + channels_last",
    ]
    fast = variants("cuda", "forward", compile=False)[1]
    assert fast.bf16 and fast.channels_last and fast.inference_mode


def test_run_benchmark_forward_and_train_rows(recorded):
    nets, calls = recorded
    rows = run_benchmark(
        "hrnet_tiny", input_size=(48, 64), batch_sizes=(1, 2), devices=["cpu"],
        modes=["forward", "train"], compile=False, iters=2, warmup=1, progress=False,
    )
    assert [(r.mode, r.batch, r.variant) for r in rows] == [
        ("forward", 1, "fp32 eager"), ("forward", 1, "channels_last + inference_mode"),
        ("forward", 2, "fp32 eager"), ("forward", 2, "channels_last + inference_mode"),
        ("train", 1, "fp32 eager"), ("train", 1, "channels_last"),
        ("train", 2, "fp32 eager"), ("train", 2, "channels_last"),
    ]
    assert all(r.iters == 2 for r in rows)
    assert all(r.ratio == 1.0 for r in rows if r.variant == "fp32 eager")
    assert len(nets) == len(rows)  # a fresh model for each measurement
    for row, net, seen in zip(rows, nets, calls, strict=True):
        fast = row.variant != "fp32 eager"
        if row.mode == "forward":
            # 1 warm-up + 2 timed calls, in eval mode without autograd; the fast variant
            # under inference_mode on a channels_last input; the weights untouched
            assert len(seen) == 3
            assert all(c == {"batch": row.batch, "training": False, "grad": False,
                             "inference": fast, "channels_last": fast,
                             "dtype": torch.float32} for c in seen)  # fmt: skip
            assert not _changed(net, "hrnet_tiny")
        else:
            # one eval call (batch 1) finds the output shape, then 3 training steps that
            # update the weights
            assert len(seen) == 4 and seen[0]["batch"] == 1 and not seen[0]["training"]
            assert all(c == {"batch": row.batch, "training": True, "grad": True,
                             "inference": False, "channels_last": fast,
                             "dtype": torch.float32} for c in seen[1:])  # fmt: skip
            assert _changed(net, "hrnet_tiny")
    table = format_table(rows)
    assert table.count("\n") == len(rows) + 1 and "vs fp32 eager" in table


def test_hourglass_train_step_updates_the_weights(recorded):
    """The hourglass gives one heatmap per stack: the loss takes them all."""
    nets, calls = recorded
    rows = run_benchmark(
        "hourglass_4", input_size=(32, 32), batch_sizes=(2,), devices=["cpu"], modes=["train"],
        compile=False, iters=1, warmup=0, progress=False,
    )
    assert [r.variant for r in rows] == ["fp32 eager", "channels_last"]
    assert [len(seen) for seen in calls] == [2, 2] and all(_changed(n, "hourglass_4") for n in nets)


def test_bf16_channels_last_variant_runs_on_cpu(recorded, monkeypatch):
    """The GPU variant's code path (bf16 autocast, channels_last, the loss in float32),
    measured on the CPU by handing run_benchmark that variant."""
    nets, calls = recorded
    bf16 = Variant("bf16 autocast + channels_last", channels_last=True, bf16=True)
    monkeypatch.setattr(darkpose.bench.models, "variants", lambda device, mode, compile: [bf16])
    rows = run_benchmark(
        "hrnet_tiny", input_size=(48, 64), batch_sizes=(2,), devices=["cpu"],
        modes=["forward", "train"], compile=False, iters=1, warmup=0, progress=False,
    )
    assert [(r.mode, r.variant, r.ratio) for r in rows] == [
        ("forward", bf16.name, 1.0), ("train", bf16.name, 1.0),
    ]
    forward, train = calls
    assert [(c["dtype"], c["grad"], c["channels_last"]) for c in forward] == [
        (torch.bfloat16, False, True)
    ]
    assert [(c["dtype"], c["training"]) for c in train] == [
        (torch.float32, False), (torch.bfloat16, True)  # the shape probe runs in float32
    ]
    assert not _changed(nets[0], "hrnet_tiny") and _changed(nets[1], "hrnet_tiny")


def test_cli_writes_json_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "models", "--model", "hrnet_tiny", "--input-size", "48", "64",
            "--batch-sizes", "1", "--iters", "1", "--warmup", "0", "--no-compile",
            "--device", "cpu", "--json", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["model"] == "hrnet_tiny" and data["input_size"] == [48, 64]
    assert [r["variant"] for r in data["rows"]] == ["fp32 eager", "channels_last + inference_mode"]
    assert "| cpu" in capsys.readouterr().out
    assert main(argv) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main([*argv, "--force", "--quiet"]) == 0
    assert main(["bench", "models", "--model", "hrnet_w99"]) == 2
    assert "unknown --model 'hrnet_w99'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--num-joints", "0"], ["--input-size", "48", "0"], ["--batch-sizes", "1", "0"],
     ["--iters", "0"], ["--seconds", "nan"], ["--seconds", "-1"], ["--warmup", "-1"]],
)  # fmt: skip
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "models", "--model", "hrnet_tiny", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert argv[0] in err and "expected" in err
