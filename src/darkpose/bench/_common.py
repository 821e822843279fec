"""Helpers shared by the benchmarks: timing, thread settings, command-line values, tables,
JSON output that never overwrites."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """Run the block with torch and OpenCV on ``count`` threads each, and give both back the
    counts they had before, however the block ends."""
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(count)
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU, core and thread counts, library versions."""
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


def parse_size(text: str) -> tuple[int, int]:
    """"256x192" (HEIGHTxWIDTH, as the paper writes it) -> (W, H) = (192, 256).

    Both sides must be multiples of 4 (the heatmap stride) and at least 8, so that the
    heatmaps are at least 2x2 (the crop affine maps a length onto W - 1 heatmap pixels).
    """
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"an input size is HEIGHTxWIDTH like 256x192, got {text!r}") from None
    if h % 4 or w % 4 or h < 8 or w < 8:
        raise ValueError(
            f"input size {text!r}: height and width must be multiples of 4 (stride 4) and at "
            "least 8 (heatmaps of at least 2x2)"
        )
    return w, h


def parse_sizes(text: str) -> list[str]:
    """"128x96,256x192" -> ["128x96", "256x192"], each checked by :func:`parse_size`."""
    sizes = [s.strip() for s in text.split(",") if s.strip()]
    if not sizes:
        raise ValueError(f"expected input sizes HEIGHTxWIDTH, comma-separated, got {text!r}")
    for s in sizes:
        parse_size(s)
    return sizes


def argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` as an argparse ``type``: its ValueError becomes the usage error's message."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__
    return convert


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse ``type``: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def odd_int(text: str) -> int:
    """An argparse ``type``: an odd integer >= 1."""
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"expected an odd positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse ``type``: a finite number >= 0."""
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


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
