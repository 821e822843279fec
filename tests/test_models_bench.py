"""The model benchmark's code path on a tiny model (structure only: no timing assertions)."""

from __future__ import annotations

import json

from darkpose.bench.models import format_table, run_benchmark, variants
from darkpose.cli import main


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


def test_run_benchmark_forward_and_train_rows():
    rows = run_benchmark(
        "hrnet_tiny", input_size=(48, 64), batch_sizes=(1, 2), devices=["cpu"],
        modes=["forward", "train"], compile=False, iters=1, warmup=0, progress=False,
    )
    assert [(r.mode, r.batch, r.variant) for r in rows] == [
        ("forward", 1, "fp32 eager"), ("forward", 1, "channels_last + inference_mode"),
        ("forward", 2, "fp32 eager"), ("forward", 2, "channels_last + inference_mode"),
        ("train", 1, "fp32 eager"), ("train", 1, "channels_last"),
        ("train", 2, "fp32 eager"), ("train", 2, "channels_last"),
    ]
    for row in rows:
        assert row.iters == 1 and row.images_per_s > 0
        assert row.images_per_s == row.batch / (row.ms_per_iter / 1e3)
    assert all(r.ratio == 1.0 for r in rows if r.variant == "fp32 eager")
    table = format_table(rows)
    assert table.count("\n") == len(rows) + 1 and "vs fp32 eager" in table


def test_hourglass_train_step_runs():
    rows = run_benchmark(
        "hourglass_4", input_size=(32, 32), batch_sizes=(2,), devices=["cpu"], modes=["train"],
        compile=False, iters=1, warmup=0, progress=False,
    )
    assert len(rows) == 2


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


def test_bf16_channels_last_step_runs_on_cpu():
    """The GPU variant's code path (autocast, channels_last, float loss) on the CPU."""
    import torch

    from darkpose.bench.models import Variant, _make_step
    from darkpose.models import build_model

    variant = Variant("bf16", channels_last=True, bf16=True)
    for mode in ("forward", "train"):
        model = build_model("hrnet_tiny").to(memory_format=torch.channels_last)
        x = torch.randn(2, 3, 64, 48).contiguous(memory_format=torch.channels_last)
        before = model.final_layer.bias.clone()
        _make_step(model, variant, x, mode, "cpu")()
        assert torch.equal(model.final_layer.bias, before) == (mode == "forward")
