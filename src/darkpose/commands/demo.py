"""``darkpose demo [--out DIR] [--minutes M] ...``: the quick start on synthetic people.

Writes a synthetic COCO-format set, trains a small HRNet at 128x96 on the CPU within the
time budget, evaluates it with pycocotools through the test loop, and writes a report
folder (``report.md``, ``metrics.json``, plots, predicted skeletons): see
:mod:`darkpose.demo`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="report folder (default runs/demo)")
    parser.add_argument("--data", type=Path, default=None,
                        help="synthetic data folder (default OUT/data; reused when present)")
    parser.add_argument("--config", type=Path, default=None,
                        help="experiment YAML (default configs/demo_synthetic.yaml)")
    parser.add_argument("--minutes", type=float, default=8.0,
                        help="training budget in minutes (default 8: the demo ends within 10 on 2 cores)")
    parser.add_argument("--num-images", type=int, default=2000, help="synthetic training images (2000)")
    parser.add_argument("--num-val", type=int, default=250, help="synthetic validation images (250)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (repeatable)")
    parser.add_argument("--train-both", action="store_true",
                        help="also train on quantized targets (each training gets half the budget)")
    parser.add_argument("--overwrite", action="store_true", help="replace a report already in OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import torch

    from darkpose.config import ConfigError
    from darkpose.demo import run_demo
    from darkpose.models import CheckpointError

    # HRNet's N(0, 0.001) initialisation makes denormal floats, ~60x slower CPU steps
    # unflushed: a process-wide setting, so the command's (as darkpose train), not the library's
    torch.set_flush_denormal(True)
    try:
        result = run_demo(args.out, config=args.config, data=args.data, minutes=args.minutes,
                          num_images=args.num_images, num_val=args.num_val, seed=args.seed,
                          overrides=args.overrides, train_both=args.train_both,
                          overwrite=args.overwrite, progress=not args.no_progress)
    except (ConfigError, CheckpointError, FileNotFoundError, FileExistsError, ValueError) as e:
        message = " ".join(str(e).split())
        print(f"darkpose demo: error: {message}", file=sys.stderr)
        return 2
    print(result)
    return 0
