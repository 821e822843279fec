"""``darkpose bench train CONFIG``: what the training loop costs beyond the model's step.

For each DataLoader worker count, two measurements on the same batches, one right after the
other:

- the loop: an iteration of ``darkpose train``'s loop (the next batch from the DataLoader
  with its workers, the transfer to the device, forward, loss, backward, optimiser step);
- the step: the same forward, loss, backward and optimiser step alone, on the batches the
  loop just used, kept in a list (already on the device).

The ratio loop / step (mean time per iteration over the timed iterations) says what the
data pipeline costs the loop: 1.0 when the workers keep up. Target: at most 1.10 once they
do; the report names the fewest workers that reach it.

The pieces are the loop's own (:mod:`darkpose.engine.train`): the training split from
``build_dataset`` with the transform's batch ``collate``, an ``EpochSampler`` over a
permutation seeded by ``(train.seed, epoch 0)``, the model of ``build_model_from_config``
(initialised under ``train.seed``), ``build_optimizer`` and ``build_loss``, and the
config's ``train.amp`` / ``channels_last`` / ``compile`` / ``grad_clip``. The timed samples
form one long epoch (the permutation repeated), so no epoch start interrupts the workers;
the learning-rate schedule is left out (a scalar per step). The first ``warmup`` loop
iterations (worker start-up, first batches) are not timed.

With CUDA, the same in-memory batches also time the step in three variants: fp32 eager,
bf16 autocast + channels_last, the same + ``torch.compile`` (steps/s against fp32 eager).
This path has not been run on a GPU in this project yet.
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
from typing import Any

import torch
from torch import nn

from darkpose.bench._common import (
    json_target_refused,
    machine,
    non_negative_int,
    positive_int,
    table,
    threads,
    write_json,
)
from darkpose.data.sample import Batch

__all__ = ["TARGET_RATIO", "LoopRow", "add_arguments", "format_report", "measure", "run"]

TARGET_RATIO = 1.10
_AMP = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class LoopRow:
    """One worker count: mean ms per iteration of the loop and of the step alone (the same
    batches), their ratio, and every timed iteration (ms)."""

    workers: int
    loop_ms: float
    step_ms: float
    ratio: float
    loop_iter_ms: list[float]
    step_iter_ms: list[float]
    warmup_s: float  # the untimed first loop iterations: worker start-up, first batches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fresh_model(cfg, num_joints: int, device: torch.device, channels_last: bool) -> nn.Module:
    """The config's model, initialised under ``train.seed`` (the caller's RNG untouched)."""
    from darkpose.engine.model import build_model_from_config

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.train.seed)
        model = build_model_from_config(cfg, num_joints).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.train()


def _make_step(cfg, num_joints: int, device: torch.device, channels_last: bool, amp: str,
               compile: bool) -> tuple[Callable[[Batch], Batch], Callable[[Batch], float]]:
    """(to_device, step) for a fresh model: ``to_device(batch)`` moves a collated batch as
    the loop does; ``step(batch)`` is forward, loss, backward and optimiser step (with the
    config's grad clip and, under fp16, a grad scaler); it returns the loss."""
    from darkpose.engine.train import apply_gradients, build_loss, build_optimizer, forward_loss

    t = cfg.train
    model = _fresh_model(cfg, num_joints, device, channels_last)
    optimizer, criterion = build_optimizer(model, t), build_loss(t)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    net = torch.compile(model) if compile else model
    dtype = _AMP[amp]

    def to_device(batch: Batch) -> Batch:
        return batch.to(device, channels_last=channels_last)

    def step(b: Batch) -> float:
        loss = forward_loss(net, criterion, b.image, b.target, b.target_weight, dtype)
        value = loss.item()  # the loop reads the loss too (its non-finite check)
        apply_gradients(loss, model, optimizer, scaler, t.grad_clip)
        return value

    return to_device, step


def _time_steps(step: Callable[[dict], float], batches: Sequence[dict], warmup: int,
                device: torch.device) -> tuple[list[float], float]:
    """ms of ``step`` on each batch (after ``warmup`` untimed steps on the first), and the
    warm-up's seconds."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step(batches[0])
    _sync(device)
    warmup_s = time.perf_counter() - t0
    times = []
    for b in batches:
        t0 = time.perf_counter()
        step(b)
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times, warmup_s


def _loop_row(cfg, dataset, workers: int, batch_size: int, iters: int, warmup: int,
              device: torch.device) -> tuple[LoopRow, list[dict]]:
    """Time ``warmup + iters`` iterations of the loop, then the step alone on the timed
    batches (kept on the device); return the row and those batches."""
    from torch.utils.data import DataLoader, RandomSampler

    from darkpose.data import EpochSampler
    from darkpose.engine.train import epoch_order_seed

    t = cfg.train
    order = RandomSampler(range(len(dataset)), num_samples=(warmup + iters) * batch_size,
                          generator=torch.Generator().manual_seed(epoch_order_seed(t.seed, 0)))
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=EpochSampler(order), num_workers=workers,
        collate_fn=dataset.transform.collate, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(t.seed),
    )
    num_joints = dataset.metadata.num_keypoints
    to_device, step = _make_step(cfg, num_joints, device, t.channels_last, t.amp, t.compile)
    batches = iter(loader)
    kept, loop_ms, warmup_s = [], [], 0.0
    t0 = time.perf_counter()
    for i in range(warmup + iters):
        if i == warmup:
            warmup_s = time.perf_counter() - t0
        start = time.perf_counter()
        b = to_device(next(batches))
        step(b)
        _sync(device)
        if i >= warmup:
            loop_ms.append((time.perf_counter() - start) * 1e3)
            kept.append(b)
    del batches  # the workers stop before the step is timed alone
    # a fresh model and optimiser for the step alone, so both start from the same weights
    _, step = _make_step(cfg, num_joints, device, t.channels_last, t.amp, t.compile)
    step_ms, _ = _time_steps(step, kept, max(warmup, 1), device)
    loop, alone = statistics.fmean(loop_ms), statistics.fmean(step_ms)
    return LoopRow(workers, loop, alone, loop / alone, loop_ms, step_ms, warmup_s), kept


def _cuda_variants(cfg, num_joints: int, batches: list[dict], warmup: int, compile: bool,
                   device: torch.device) -> list[dict[str, Any]]:
    """Steps/s of fp32 eager, bf16 autocast + channels_last (+ compile) on ``batches``."""
    from darkpose.bench.models import variants

    rows: list[dict[str, Any]] = []
    for v in variants("cuda", "train", compile):
        to_device, step = _make_step(cfg, num_joints, device, v.channels_last,
                                     "bf16" if v.bf16 else "none", v.compile)
        times, warmup_s = _time_steps(step, [to_device(b) for b in batches],
                                      max(warmup, 1 if v.compile else 0), device)
        ms = statistics.fmean(times)
        base = rows[0]["ms_per_step"] if rows else ms
        rows.append({"variant": v.name, "ms_per_step": ms, "steps_per_s": 1e3 / ms,
                     "vs_fp32_eager": base / ms, "warmup_s": warmup_s})
        if v.compile:
            torch.compiler.reset()
    return rows


def measure(
    cfg,
    *,
    workers: Sequence[int] = (0, 1, 2),
    iters: int = 20,
    warmup: int = 2,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    compile: bool = True,
    num_threads: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Time the loop against the step alone for each worker count (see the module docstring).

    Parameters
    ----------
    cfg : Config
        The experiment: its training split, model, optimiser, loss and ``train`` flags.
    workers : worker counts, one row each
    iters : timed iterations per row; warmup : untimed loop iterations first
    batch_size : default ``cfg.train.batch_size``
    device : "cpu", "cuda", ...; on CUDA the fp32 / bf16 (+ compile) variants are timed too
    compile : include the ``torch.compile`` variant on CUDA
    num_threads : torch and OpenCV threads of this process during the run (default: as they
        are); the process gets its counts back at the end

    Returns
    -------
    dict: model, image_size (W, H), batch_size, iters, warmup, device, the machine
    (:func:`~darkpose.bench._common.machine`), rows (:class:`LoopRow` as dicts),
    keeps_up_with (the fewest workers whose ratio is within ``TARGET_RATIO``, or None) and,
    on CUDA, cuda_variants.
    """
    from darkpose.config import ConfigError
    from darkpose.engine.data import build_dataset

    if iters < 1 or warmup < 0 or not workers or min(workers) < 0:
        raise ValueError(f"need iters >= 1, warmup >= 0 and worker counts >= 0, got iters={iters}, "
                         f"warmup={warmup}, workers={list(workers)}")
    batch_size = cfg.train.batch_size if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = torch.device(device)
    if cfg.train.amp not in _AMP:
        raise ConfigError(f"train.amp: expected 'none', 'bf16' or 'fp16', got {cfg.train.amp!r}")
    if cfg.train.amp != "none" and device.type != "cuda":
        raise ConfigError(f"train.amp: {cfg.train.amp} autocast needs a CUDA device (got {device}); "
                          "set train.amp=none to time the float32 loop on the CPU")
    dataset = build_dataset(cfg, "train", train=True, targets="batch")
    with threads(torch.get_num_threads() if num_threads is None else num_threads):
        report: dict[str, Any] = {
            "model": cfg.model.name, "model_options": dict(cfg.model.options),
            "image_size": list(cfg.input.image_size), "batch_size": batch_size, "iters": iters,
            "warmup": warmup, "device": str(device), "amp": cfg.train.amp,
            "channels_last": cfg.train.channels_last, "compile": cfg.train.compile, **machine(),
            "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        }
        rows, batches = [], []
        for w in workers:
            if progress:
                print(f"  {w} workers ...", file=sys.stderr, flush=True)
            row, batches = _loop_row(cfg, dataset, w, batch_size, iters, warmup, device)
            rows.append(row)
        report["rows"] = [asdict(r) for r in rows]
        report["keeps_up_with"] = next((r.workers for r in sorted(rows, key=lambda r: r.workers)
                                        if r.ratio <= TARGET_RATIO), None)
        if device.type == "cuda":
            report["cuda_variants"] = _cuda_variants(cfg, dataset.metadata.num_keypoints,
                                                     batches, warmup, compile, device)
    return report


def format_report(r: dict[str, Any]) -> str:
    w, h = r["image_size"]
    lines = [f"{r['model']} at {h}x{w} (HxW), batch {r['batch_size']}, {r['iters']} timed "
             f"iterations after {r['warmup']} warm-up, {r['device']}, {r['torch_threads']} torch "
             "threads", ""]
    rows = [[str(x["workers"]), "", f"{x['loop_ms']:.1f}", f"{x['step_ms']:.1f}", f"{x['ratio']:.3f}",
             f"{x['warmup_s']:.1f}"] for x in r["rows"]]
    lines.append(table(rows, ["workers", "", "loop ms/iter", "step ms/iter", "loop / step",
                              "warm-up s"]))
    keeps = r["keeps_up_with"]
    lines.append("")
    lines.append(f"the loop is within {TARGET_RATIO:.2f}x of the step from {keeps} workers" if keeps
                 is not None else f"the loop is not within {TARGET_RATIO:.2f}x of the step with "
                 "the worker counts tried")
    if "cuda_variants" in r:
        rows = [[v["variant"], "", f"{v['ms_per_step']:.1f}", f"{v['steps_per_s']:.2f}",
                 f"{v['vs_fp32_eager']:.2f}x", f"{v['warmup_s']:.1f}"] for v in r["cuda_variants"]]
        lines += ["", f"step on {r['cuda']}:",
                  table(rows, ["variant", "", "ms/step", "steps/s", "vs fp32 eager", "warm-up s"])]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML (ours or an official HRNet/DarkPose one)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set data.root=PATH (repeatable)")
    parser.add_argument("--workers", type=non_negative_int, nargs="+", default=[0, 1, 2], metavar="N",
                        help="DataLoader worker counts, one row each (default: 0 1 2)")
    parser.add_argument("--iters", type=positive_int, default=20, help="timed iterations (%(default)s)")
    parser.add_argument("--warmup", type=non_negative_int, default=2,
                        help="untimed loop iterations first (%(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=None, metavar="B",
                        help="default: the config's train.batch_size")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch/OpenCV threads of the main process during the run (default: as is)")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="on CUDA, also time the torch.compile variant (default on)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the figures as JSON")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")


def _flushing_denormals() -> bool:
    """Whether this thread flushes denormal floats (there is no getter: a denormal times one
    reads as zero when it does)."""
    return torch.tensor([1e-39]).mul(1.0).item() == 0.0


@contextlib.contextmanager
def _flush_denormals(on: bool):
    """Flush denormals in the block (HRNet's N(0, 0.001) initialisation makes the CPU ~60x
    slower otherwise, as in ``darkpose train``); give the setting back after it."""
    before = _flushing_denormals()
    torch.set_flush_denormal(on or before)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def run(args: argparse.Namespace) -> int:
    from darkpose.commands.config_show import load_for_command
    from darkpose.config import ConfigError

    name = "bench train"
    if json_target_refused(name, args.json, args.force):
        return 2
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as e:
        print(f"darkpose {name}: error: --device {args.device!r}: {e}", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"darkpose {name}: error: --device {device}: no CUDA device here", file=sys.stderr)
        return 2
    cfg = load_for_command(name, args.config, args.overrides)
    if cfg is None:
        return 2
    try:
        with _flush_denormals(device.type == "cpu"):
            report = measure(cfg, workers=args.workers, iters=args.iters, warmup=args.warmup,
                             batch_size=args.batch_size, device=device, compile=args.compile,
                             num_threads=args.threads, progress=True)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"darkpose {name}: error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    write_json(args.json, report, force=args.force)
    return 0
