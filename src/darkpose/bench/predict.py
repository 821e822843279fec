"""``darkpose bench predict``: persons per second of :class:`darkpose.Predictor`, split into
preprocess (box -> centre/scale, crop and normalise), model (the forward, with flip test when
asked) and decode + recovery to image pixels, each as a ratio to the model's time measured
in the same run.

The stages are the functions the Predictor runs (:meth:`darkpose.Predictor.crops`,
:func:`darkpose.engine.evaluate.crop_heatmaps`, :func:`~darkpose.engine.evaluate.heatmaps_to_keypoints`),
timed one by one on the same batch of B persons of a synthetic 640x480 photo, interleaved
round by round (:func:`darkpose.bench._common.time_interleaved`), together with the whole
``Predictor.predict`` call ("total"). Random weights: the time does not depend on them. The
same with the model exported as a heatmap graph (``darkpose.export``) and run through
onnxruntime, where that module is there.
Target: everything outside the model at most :data:`TARGET_OUTSIDE` of the model at batch 32.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkpose.bench._common import (
    argument,
    json_target_refused,
    machine,
    parse_size,
    positive_int,
    table,
    threads,
    time_interleaved,
    write_json,
)

__all__ = ["TARGET_OUTSIDE", "add_arguments", "format_report", "measure", "run"]

TARGET_OUTSIDE = 0.10
"""The issue's target: (preprocess + decode) / model at batch 32."""

PHOTO_SIZE = (640, 480)
"""(W, H) of the synthetic photo the persons are cropped from."""


def _persons(batch: int, rng: np.random.Generator) -> np.ndarray:
    """``batch`` person boxes (x, y, w, h) of 60-300 x 120-400 px inside the photo."""
    w = rng.uniform(60, 300, batch)
    h = rng.uniform(120, 400, batch)
    x = rng.uniform(0, PHOTO_SIZE[0] - w)
    y = rng.uniform(0, PHOTO_SIZE[1] - h)
    return np.stack([x, y, w, h], axis=1)


def measure_batch(predictor, batch: int, rounds: int, seed: int = 0, backend: str = "pytorch") -> dict[str, Any]:
    """Median ms of each stage and of the whole ``predict`` call for ``batch`` persons of one
    photo, and the ratios to the model's time."""
    from darkpose.engine.evaluate import crop_heatmaps, heatmaps_to_keypoints

    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, (PHOTO_SIZE[1], PHOTO_SIZE[0], 3), dtype=np.uint8)
    boxes = _persons(batch, rng)
    cfg = predictor.config

    def preprocess():
        return predictor.crops(photo, boxes)

    def model():
        images = torch.from_numpy(pixels).to(predictor.device)
        return crop_heatmaps(predictor.model, images, cfg, predictor.metadata.flip_pairs)

    pixels, affines = preprocess()
    heatmaps = model()
    stages = {
        "preprocess": preprocess,
        "model": model,
        "decode": lambda: heatmaps_to_keypoints(heatmaps, affines, cfg),
        "total": lambda: predictor.predict(photo, boxes, color="bgr"),
    }
    seconds = time_interleaved(stages, rounds)
    ms = {k: v * 1e3 for k, v in seconds.items()}
    model = ms["model"]
    return {
        "backend": backend, "batch": batch, "rounds": rounds, "ms": ms,
        "persons_per_s": batch / seconds["total"],
        "model_persons_per_s": batch / seconds["model"],
        "vs_model": {"preprocess": ms["preprocess"] / model, "decode": ms["decode"] / model,
                     "outside": (ms["preprocess"] + ms["decode"]) / model,
                     "total": ms["total"] / model},
    }


def measure(
    model: str = "hrnet_w32",
    input_size: tuple[int, int] = (192, 256),
    batch_sizes: Sequence[int] = (1, 32),
    *,
    rounds: int = 5,
    flip_test: bool = False,
    device: str = "cpu",
    num_threads: int | None = None,
    onnx: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """The report: set-up, the machine and one row per batch size (:func:`measure_batch`);
    with ``onnx`` (CPU, and ``darkpose.export`` there) also one of the same model exported as
    a heatmap graph and run through onnxruntime by the Predictor, the same stages around it.

    ``input_size``: (W, H); ``rounds``: timed rounds after one warm-up round;
    ``num_threads``: torch and OpenCV threads during the run (default: as they are; given
    back at the end).
    """
    from darkpose.config import Config, apply_overrides
    from darkpose.inference import Predictor
    from darkpose.models import build_model

    if rounds < 1 or not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"need rounds >= 1 and batch sizes >= 1, got rounds={rounds}, "
                         f"batch sizes {list(batch_sizes)}")
    width, height = input_size
    onnx = onnx and device == "cpu" and importlib.util.find_spec("darkpose.export") is not None
    with threads(torch.get_num_threads() if num_threads is None else num_threads), \
            tempfile.TemporaryDirectory() as folder:
        rows = []
        for batch in batch_sizes:
            cfg = apply_overrides(Config(), [f"model.name={model}", f"input.image_size=[{width}, {height}]",
                                             f"test.flip_test={'true' if flip_test else 'false'}",
                                             f"test.batch_size={batch}"])
            torch.manual_seed(0)
            net = build_model(model, 17)
            predictor = Predictor.from_model(net, cfg, device=device)
            if progress:
                print(f"  batch {batch} ...", file=sys.stderr, flush=True)
            rows.append(measure_batch(predictor, batch, rounds))
            if onnx:
                if progress:
                    print(f"  batch {batch}, onnxruntime ...", file=sys.stderr, flush=True)
                rows.append(measure_batch(_onnx_predictor(net, cfg, folder), batch, rounds, backend="onnxruntime"))
        report = {"model": model, "input_size": [width, height], "flip_test": flip_test,
                  "decode": cfg.test.decode, "device": device, "photo_size": list(PHOTO_SIZE),
                  **machine(), "rows": rows, "target_outside": TARGET_OUTSIDE}
    return report


def _onnx_predictor(net: torch.nn.Module, cfg, folder: str):
    """``net`` exported as a heatmap graph into ``folder`` (once: the batch is dynamic), as a
    Predictor (onnxruntime) with ``cfg``'s batch size."""
    from darkpose.export import export_onnx
    from darkpose.inference import Predictor

    path = Path(folder) / "model.onnx"
    if not path.exists():
        export_onnx(net, cfg, path)
    return Predictor(path, overrides=[f"test.batch_size={cfg.test.batch_size}"])


def format_report(r: dict[str, Any]) -> str:
    w, h = r["input_size"]
    lines = [f"{r['model']} at {h}x{w} (HxW), flip test {'on' if r['flip_test'] else 'off'}, decode "
             f"{r['decode']}, {r['device']}, {r['torch_threads']} torch threads; medians of "
             f"{r['rows'][0]['rounds']} rounds", ""]
    rows = [[x["backend"], str(x["batch"]), f"{x['persons_per_s']:.1f}", f"{x['ms']['preprocess']:.1f}",
             f"{x['ms']['model']:.1f}", f"{x['ms']['decode']:.2f}", f"{x['ms']['total']:.1f}",
             f"{x['vs_model']['preprocess']:.3f}", f"{x['vs_model']['decode']:.3f}",
             f"{x['vs_model']['outside']:.3f}"] for x in r["rows"]]
    lines.append(table(rows, ["backend", "batch", "persons/s", "preprocess ms", "model ms", "decode ms",
                              "total ms", "pre / model", "decode / model", "outside / model"]))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="hrnet_w32", help="model name (darkpose models)")
    parser.add_argument("--input-size", type=argument(parse_size), default=(192, 256), metavar="HxW",
                        help="network input, HEIGHTxWIDTH (default 256x192)")
    parser.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[1, 32], metavar="B")
    parser.add_argument("--rounds", type=positive_int, default=5, help="timed rounds (%(default)s)")
    parser.add_argument("--flip-test", action="store_true", help="time the model with flip test (two forwards)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch/OpenCV threads during the run (default: as is)")
    parser.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=True,
                        help="also the onnxruntime rows (CPU, when darkpose.export is there; default on)")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds: hrnet_tiny at 64x48, batches 1 and 4, 3 rounds")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --json file")


def run(args: argparse.Namespace) -> int:
    from darkpose.models import MODELS

    if json_target_refused("bench predict", args.json, args.force):
        return 2
    if args.model not in MODELS:
        print(f"darkpose bench predict: unknown --model {args.model!r}; available: {', '.join(MODELS)}",
              file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("darkpose bench predict: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    if args.quick:
        args.model, args.input_size, args.batch_sizes, args.rounds = "hrnet_tiny", (48, 64), [1, 4], 3
    report = measure(args.model, args.input_size, args.batch_sizes, rounds=args.rounds,
                     flip_test=args.flip_test, device=args.device, num_threads=args.threads, onnx=args.onnx,
                     progress=True)
    print(format_report(report))
    write_json(args.json, report, force=args.force)
    return 0
