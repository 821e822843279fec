"""Helpers shared by the benchmarks: timing, tables, JSON output that never overwrites."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def time_call(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Wall-clock seconds of ``fn()``: median and best of ``repeats`` runs after warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "best_s": min(times), "runs": len(times)}


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median wall-clock seconds of each function, timed in rounds that run every function
    once (in a rotating order), so that drifts in the machine's speed hit all of them alike."""
    names = list(fns)
    for name in names:  # warm-up
        fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(max(1, repeats)):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def machine() -> dict[str, Any]:
    import numpy as np
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }


def check_json_target(path: str | None, force: bool) -> Path | None:
    """Refuse, before any work is done, to overwrite an existing file unless forced."""
    if path is None:
        return None
    target = Path(path)
    if target.exists() and not force:
        raise SystemExit(f"--json: {target} already exists; pass --force to overwrite it")
    if not target.parent.exists():
        raise SystemExit(f"--json: folder {target.parent} does not exist")
    return target


def write_json(target: Path | None, payload: dict[str, Any]) -> None:
    if target is not None:
        target.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {target}")


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table, columns right-aligned except the first two."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])
