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

from darkpose._files import check_target, write_new


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
    """Print why and return True when ``--json PATH`` cannot be written: a directory, a folder
    that does not exist, or an existing file without ``--force`` (nothing a user made is
    overwritten unasked). Checked before any work, so a run never ends in a refusal."""
    if path is None:
        return False
    try:
        check_target(path, force, "--json", "--force")
    except OSError as e:
        print(f"darkpose {command}: {e}", file=sys.stderr)
        return True
    return False


def write_json(path: str | Path | None, payload: Any, force: bool = False) -> None:
    """Write ``payload`` as indented JSON to ``path``, if a path is given. The file is created
    exclusively (see :func:`darkpose._files.write_new`): without ``force`` a file that appeared
    since :func:`json_target_refused` looked is left as it was (FileExistsError)."""
    if path is None:
        return
    text = json.dumps(payload, indent=2) + "\n"
    write_new(path, lambda f: f.write(text.encode()), force=force, what="--json", force_hint="--force")
    print(f"wrote {path}", file=sys.stderr)


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table, columns right-aligned except the first two."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])
