"""``darkpose bench models``: forward (and training-step) throughput of a pose network.

Every figure is a ratio against the plain baseline measured in the same run, on the same
machine, batch size and mode: fp32, NCHW, eager, ``torch.no_grad`` for forward.

- CPU, forward: fp32 eager; channels_last + inference_mode; the same + torch.compile.
- CUDA (when ``torch.cuda.is_available()``), forward and training step: fp32 eager;
  bf16 autocast + channels_last; the same + torch.compile.
- CPU training step only with ``--train`` (slow on small machines).

A training step is forward, :class:`~darkpose.losses.JointsMSELoss` against a fixed random
target, backward and an Adam step. Time per iteration is the median over the timed
iterations, after warm-up (which includes compilation; its duration is reported apart).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from darkpose.bench._common import (
    json_target_refused,
    machine,
    non_negative_int,
    positive_float,
    positive_int,
    write_json,
)

__all__ = ["Row", "Variant", "add_arguments", "format_table", "run", "run_benchmark", "variants"]


@dataclass(frozen=True)
class Variant:
    """One way to run the model."""

    name: str
    channels_last: bool = False
    bf16: bool = False
    inference_mode: bool = False
    compile: bool = False


@dataclass
class Row:
    """One measurement: ``ratio`` is images/s over the baseline's in the same
    (device, mode, batch)."""

    device: str
    mode: str  # "forward" or "train"
    variant: str
    batch: int
    iters: int
    ms_per_iter: float
    images_per_s: float
    ratio: float
    warmup_s: float


def variants(device: str, mode: str, compile: bool) -> list[Variant]:
    """The variants measured for a device ("cpu" / "cuda") and mode ("forward" / "train");
    the first is the baseline."""
    base = Variant("fp32 eager")
    if device == "cpu" and mode == "forward":
        fast = Variant("channels_last + inference_mode", channels_last=True, inference_mode=True)
    elif device == "cpu":
        fast = Variant("channels_last", channels_last=True)
    else:
        fast = Variant("bf16 autocast + channels_last", channels_last=True, bf16=True,
                       inference_mode=mode == "forward")
    out = [base, fast]
    if compile:
        out.append(Variant(fast.name + " + compile", fast.channels_last, fast.bf16,
                           fast.inference_mode, compile=True))
    return out


def _as_float(output: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    if isinstance(output, (list, tuple)):
        return [o.float() for o in output]
    return output.float()


def _make_step(
    model: nn.Module, variant: Variant, x: torch.Tensor, mode: str, device: str
) -> Callable[[], None]:
    from darkpose.losses import JointsMSELoss

    net = torch.compile(model) if variant.compile else model
    autocast = (
        (lambda: torch.autocast(device_type=device, dtype=torch.bfloat16))
        if variant.bf16
        else contextlib.nullcontext
    )
    if mode == "forward":
        model.eval()
        grad_off = torch.inference_mode if variant.inference_mode else torch.no_grad

        def forward() -> None:
            with grad_off(), autocast():
                net(x)

        return forward

    model.train()
    with torch.no_grad():
        shape = model.eval()(x[:1]).shape[1:]
    model.train()
    target = torch.rand(x.shape[0], *shape, device=device)
    weight = torch.ones(x.shape[0], shape[0], device=device)
    criterion = JointsMSELoss(use_target_weight=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            output = net(x)
        loss = criterion(_as_float(output), target, weight)
        loss.backward()
        optimizer.step()

    return train_step


def _measure(
    step: Callable[[], None], iters: int | None, seconds: float, warmup: int, device: str,
    label: str, progress: bool,
) -> tuple[list[float], float]:
    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    live = progress and sys.stderr.isatty()
    if progress and not live:
        print(f"  {label} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - t0
    times: list[float] = []
    started = time.perf_counter()
    while True:
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
        if live:
            print(f"\r  {label}: {len(times)} iterations, last {times[-1] * 1e3:.0f} ms   ",
                  end="", file=sys.stderr, flush=True)
        if iters is not None:
            if len(times) >= iters:
                break
        elif len(times) >= 3 and time.perf_counter() - started >= seconds:
            break
    if live:
        print(file=sys.stderr, flush=True)
    return times, warmup_s


def run_benchmark(
    model: str = "hrnet_w32",
    *,
    num_joints: int = 17,
    input_size: tuple[int, int] = (192, 256),
    batch_sizes: Sequence[int] = (1, 32),
    devices: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    compile: bool = True,
    iters: int | None = None,
    seconds: float = 5.0,
    warmup: int = 1,
    progress: bool = True,
) -> list[Row]:
    """Measure every variant; return one :class:`Row` per (device, mode, batch, variant).

    Parameters
    ----------
    model : str
        A name of :func:`darkpose.models.list_models`.
    input_size : (int, int)
        (W, H) as in the official configs, e.g. (192, 256).
    batch_sizes : sequence of int
    devices : sequence of str, optional
        Default: ``["cpu"]`` plus ``"cuda"`` when available.
    modes : sequence of str, optional
        ``"forward"`` and/or ``"train"``. Default: forward on CPU, both on CUDA.
    compile : bool
        Also measure the torch.compile variant.
    iters : int, optional
        Timed iterations per measurement; default: at least 3 and at least ``seconds``.
    warmup : int
        Untimed iterations first (at least 1 with compile: compilation happens there).
    """
    from darkpose.models import build_model

    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    width, height = input_size
    rows: list[Row] = []
    jobs = []
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
        for mode in modes or (["forward"] if device == "cpu" else ["forward", "train"]):
            if mode not in ("forward", "train"):
                raise ValueError(f"mode must be 'forward' or 'train', got {mode!r}")
            for batch in batch_sizes:
                for variant in variants(device, mode, compile):
                    jobs.append((device, mode, batch, variant))
    baseline: dict[tuple[str, str, int], float] = {}
    for n, (device, mode, batch, variant) in enumerate(jobs, start=1):
        label = f"[{n}/{len(jobs)}] {device} {mode} batch {batch}: {variant.name}"
        torch.manual_seed(0)
        net = build_model(model, num_joints=num_joints).to(device)
        x = torch.randn(batch, 3, height, width, device=device)
        if variant.channels_last:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        step = _make_step(net, variant, x, mode, device)
        times, warmup_s = _measure(
            step, iters, seconds, max(warmup, 1 if variant.compile else 0), device, label,
            progress,
        )
        seconds_per_iter = statistics.median(times)
        images_per_s = batch / seconds_per_iter
        key = (device, mode, batch)
        baseline.setdefault(key, images_per_s)  # the first variant is the baseline
        rows.append(Row(device, mode, variant.name, batch, len(times), seconds_per_iter * 1e3,
                        images_per_s, images_per_s / baseline[key], warmup_s))
        if variant.compile:
            torch.compiler.reset()
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """Rows as an aligned text table (markdown-compatible)."""
    head = ("device", "mode", "batch", "variant", "ms/iter", "images/s", "vs fp32 eager",
            "warm-up s")
    body = [
        (r.device, r.mode, str(r.batch), r.variant, f"{r.ms_per_iter:.1f}",
         f"{r.images_per_s:.2f}", f"{r.ratio:.2f}x", f"{r.warmup_s:.1f}")
        for r in rows
    ]
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    lines = [fmt.format(*head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt.format(*line) for line in body]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="hrnet_w32", help="model name (darkpose models)")
    parser.add_argument("--num-joints", type=positive_int, default=17, metavar="K")
    parser.add_argument("--input-size", type=positive_int, nargs=2, default=(192, 256),
                        metavar=("W", "H"), help="input width and height; default 192 256")
    parser.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[1, 32], metavar="B")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CPU, and CUDA when available")
    parser.add_argument("--train", action="store_true",
                        help="also time a training step on CPU (always on with CUDA)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure torch.compile (default on)")
    parser.add_argument("--iters", type=positive_int, default=None,
                        help="timed iterations per measurement (default: >= 3 and >= --seconds)")
    parser.add_argument("--seconds", type=positive_float, default=5.0,
                        help="minimum timed seconds per measurement when --iters is not given")
    parser.add_argument("--warmup", type=non_negative_int, default=1, help="untimed iterations first")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the rows and the set-up as JSON")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from darkpose.models import MODELS

    if json_target_refused("bench models", args.json, args.force):
        return 2
    if args.model not in MODELS:
        print(f"darkpose bench models: unknown --model {args.model!r}; available: "
              f"{', '.join(MODELS)}", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("darkpose bench models: --device cuda but no CUDA device is available",
              file=sys.stderr)
        return 2
    devices = None if args.device == "auto" else [args.device]
    modes = None
    if args.train:
        modes = ["forward", "train"]
    width, height = args.input_size
    setup = {
        "model": args.model,
        "input_size": [width, height],
        **machine(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    print(f"{args.model} at {width}x{height} (W x H), torch {setup['torch']}, "
          f"{setup['torch_threads']} CPU threads" + (f", {setup['cuda']}" if setup["cuda"] else ""),
          file=sys.stderr)
    rows = run_benchmark(
        args.model,
        num_joints=args.num_joints,
        input_size=(width, height),
        batch_sizes=args.batch_sizes,
        devices=devices,
        modes=modes,
        compile=args.compile,
        iters=args.iters,
        seconds=args.seconds,
        warmup=args.warmup,
        progress=not args.quiet,
    )
    print(format_table(rows))
    write_json(args.json, {**setup, "rows": [asdict(r) for r in rows]}, force=args.force)
