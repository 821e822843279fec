"""Helpers shared by the benchmarks: timing, tables, JSON output that never overwrites."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
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


def json_target_refused(command: str, path: str | Path | None, force: bool) -> bool:
    """Print why and return True when ``--json PATH`` names an existing file and ``--force``
    was not given: nothing a user made is overwritten unasked. Checked before any work."""
    if path is not None and Path(path).exists() and not force:
        print(f"darkpose {command}: {path} already exists; pass --force to overwrite it", file=sys.stderr)
        return True
    return False


def write_json(path: str | Path | None, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` (creating its folder), if a path is given."""
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {target}", file=sys.stderr)


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table, columns right-aligned except the first two."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])
