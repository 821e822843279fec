"""``darkpose export``: write an ONNX graph of a model (heatmaps, or coordinates with the DARK
decode inside), or of the decode alone.

    darkpose export --checkpoint F [--config C] [--set k=v ...] --onnx OUT.onnx
                    [--with-decode [--image-coords]] [--flip-test] [--method M] [--blur-kernel K]
                    [--opset N] [--overwrite]
    darkpose export --decoder-only --heatmap-size WxH [--method dark] [--blur-kernel 11] --onnx OUT.onnx

The model and its config come as for ``darkpose test``: CONFIG if given, else the config the
checkpoint stores, with ``--set`` on top; the weights from ``--checkpoint`` (strict). The
graph is :func:`darkpose.export.export_onnx` / :func:`darkpose.export.export_decoder`
(docs/export.md). Bad input (a missing file, a checkpoint of another model or keypoint count,
a malformed ``--heatmap-size``, an existing OUT without ``--overwrite``) is one line on stderr
naming the file or option, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "darkpose export"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from darkpose.codec import DECODE_METHODS

    parser.add_argument("--checkpoint", type=Path, help="weights (a darkpose training checkpoint stores its config)")
    parser.add_argument("--config", type=Path, help="experiment YAML; wins over the checkpoint's stored config")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. input.convention=hrnet")
    parser.add_argument("--onnx", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--with-decode", action="store_true",
                        help="output coords (N, K, 2) and scores (N, K) instead of heatmaps")
    parser.add_argument("--image-coords", action="store_true",
                        help="with --with-decode: a second input heatmap_to_image (N, 2, 3), coords in image pixels")
    parser.add_argument("--flip-test", action="store_true", help="the flip test inside the graph")
    parser.add_argument("--method", choices=DECODE_METHODS,
                        help="decode (default: test.decode of the config; dark with --decoder-only)")
    parser.add_argument("--blur-kernel", type=int,
                        help="odd modulation kernel (default: the config's; 11 with --decoder-only)")
    parser.add_argument("--decoder-only", action="store_true", help="the decode alone: heatmaps -> coords, scores")
    parser.add_argument("--heatmap-size", metavar="WxH", help="with --decoder-only: heatmap width x height, e.g. 48x64")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: darkpose.export.DEFAULT_OPSET)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")


def parse_size(text: str | None, option: str = "--heatmap-size") -> tuple[int, int]:
    """``"48x64"`` -> (48, 64); ValueError naming ``option`` otherwise."""
    parts = (text or "").lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise ValueError(f"{option}: expected WxH, two positive integers such as 48x64, got {text!r}")
    return int(parts[0]), int(parts[1])


def _run(args: argparse.Namespace) -> int:
    from darkpose.export import export_decoder, export_onnx

    if args.decoder_only:
        extra = [opt for opt, given in (("--checkpoint", args.checkpoint), ("--config", args.config),
                                        ("--with-decode", args.with_decode), ("--flip-test", args.flip_test),
                                        ("--image-coords", args.image_coords), ("--set", args.overrides)) if given]
        if extra:
            raise ValueError(f"--decoder-only takes no {', '.join(extra)}: it exports the decode alone")
        size = parse_size(args.heatmap_size)
        path = export_decoder(args.onnx, size, args.method or "dark",
                              11 if args.blur_kernel is None else args.blur_kernel,
                              opset=args.opset, overwrite=args.overwrite)
        print(f"wrote {path}: decode {args.method or 'dark'} of heatmaps (N, K, {size[1]}, {size[0]}) -> "
              "coords (N, K, 2), scores (N, K)")
        return 0
    if args.heatmap_size is not None:
        raise ValueError("--heatmap-size: only with --decoder-only (a model's heatmap size comes from its config)")
    if args.checkpoint is None:
        raise ValueError("--checkpoint: required (or --decoder-only --heatmap-size WxH for the decode alone)")
    if not args.checkpoint.is_file():
        raise FileNotFoundError(f"--checkpoint {args.checkpoint}: file not found")
    if args.image_coords and not args.with_decode:
        raise ValueError("--image-coords: needs --with-decode (image coordinates come from the decode)")
    cfg, model = load_model(args.checkpoint, args.config, args.overrides)
    if cfg is None:
        return 2
    path = export_onnx(model, cfg, args.onnx, with_decode=args.with_decode, flip_test=args.flip_test,
                       image_coords=args.image_coords, method=args.method, blur_kernel=args.blur_kernel,
                       opset=args.opset, overwrite=args.overwrite)
    width, height = cfg.input.image_size
    what = ("coords (N, K, 2) in " + ("image" if args.image_coords else "heatmap") + " pixels, scores (N, K)"
            if args.with_decode else "heatmaps (N, K, h, w)")
    print(f"wrote {path}: {cfg.model.name} images (N, 3, {height}, {width}) -> {what}"
          f"{', flip test' if args.flip_test else ''}")
    return 0


def load_model(checkpoint: Path, config: Path | None, overrides: list[str]):
    """(config, model with the checkpoint's weights) as ``darkpose test`` builds them; (None,
    None) after a config error was printed."""
    from darkpose.commands.config_show import load_for_command
    from darkpose.data import load_metadata
    from darkpose.engine.model import build_model_from_config
    from darkpose.inference import experiment_config, load_weights

    if config is None:
        cfg = experiment_config(checkpoint, None, overrides,
                                hint=f"darkpose export CONFIG --checkpoint {checkpoint} --onnx OUT")
    else:
        cfg = load_for_command("export", config, overrides)
        if cfg is None:
            return None, None
    num_keypoints = load_metadata(cfg.data.metadata).num_keypoints
    model = build_model_from_config(cfg, num_keypoints)
    load_weights(model, checkpoint, cfg, num_keypoints)
    return cfg, model


def run(args: argparse.Namespace) -> int:
    from darkpose.commands.test import _one_line
    from darkpose.models import CheckpointError

    try:
        return _run(args)
    except (ValueError, CheckpointError, FileNotFoundError, FileExistsError, IsADirectoryError) as e:
        print(f"{PROG}: {_one_line(e)}", file=sys.stderr)
        return 2
