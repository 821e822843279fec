"""``darkpose make-synthetic OUT --num-images N [--num-val M] [--seed S] [--overwrite]``:
write a synthetic COCO-format keypoint dataset (humanoid figures with the 17 COCO keypoints;
:mod:`darkpose.data.synthetic_people`) that ``darkpose train`` / ``darkpose test`` read with
``--set data.root=OUT --set data.train_set=train --set data.val_set=val``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="folder to write (must be new or empty)")
    parser.add_argument("--num-images", type=int, default=1000, metavar="N",
                        help="training images (default 1000)")
    parser.add_argument("--num-val", type=int, default=None, metavar="M",
                        help="validation images (default N / 4, at least 1)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same bytes")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the synthetic dataset in a non-empty OUT")


def run(args: argparse.Namespace) -> int:
    from darkpose.data.synthetic_people import make_synthetic_dataset

    num_val = max(1, args.num_images // 4) if args.num_val is None else args.num_val
    started = time.perf_counter()
    try:
        summary = make_synthetic_dataset(args.out, args.num_images, num_val, args.seed,
                                         overwrite=args.overwrite, progress=sys.stderr.isatty())
    except (ValueError, OSError) as e:
        print(f"darkpose make-synthetic: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    total = sum(summary.images.values())
    for split in ("train", "val"):
        print(f"{split}: {summary.images[split]} images, {summary.persons[split]} persons -> "
              f"{summary.annotation_files[split]}")
    print(f"wrote {total} images in {seconds:.1f} s ({total / max(seconds, 1e-9):.0f} images/s) "
          f"under {summary.root}")
    return 0
