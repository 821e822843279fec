"""``darkpose models``: the model names with their parameter counts.

The models are built on the ``meta`` device (shapes only, no memory, no initialisation work),
so listing even the 68 M-parameter ResNet-152 baseline takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import json

import torch

from darkpose.models import MODELS, build_model, count_parameters

__all__ = ["add_arguments", "parameter_counts", "run"]


def parameter_counts(num_joints: int = 17) -> dict[str, int]:
    """Parameter count of every registered model for ``num_joints`` heatmaps."""
    counts = {}
    for name in MODELS:
        with torch.device("meta"):
            model = build_model(name, num_joints=num_joints)
        counts[name] = count_parameters(model)
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--num-joints", type=int, default=17, metavar="K",
        help="number of heatmaps (COCO 17, MPII 16); default 17",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object name -> count")


def run(args: argparse.Namespace) -> int:
    if args.num_joints < 1:
        raise SystemExit(f"darkpose models: --num-joints must be positive, got {args.num_joints}")
    counts = parameter_counts(args.num_joints)
    if args.json:
        print(json.dumps(counts, indent=2))
        return 0
    width = max(len(name) for name in counts)
    print(f"{'name':<{width}}  {'parameters':>12}  description   (num_joints={args.num_joints})")
    for name, count in counts.items():
        print(f"{name:<{width}}  {count:>12,}  {MODELS[name].description}")
    return 0
