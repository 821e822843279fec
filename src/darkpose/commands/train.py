"""`darkpose train CONFIG [--set key=value ...] [--resume] [--overwrite] [--device D] [--max-steps N]`."""

from __future__ import annotations

import argparse
import logging
import sys

_EPILOG = """\
Writes last.pth (every epoch; resumes the run), best.pth (best validation metric),
log.jsonl and curves.png into the config's output_dir. Exit status: 0 done, 1 the loss
became NaN/Inf (last.pth keeps the last good state), 2 bad input (config, paths,
checkpoint, an output folder holding another run)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("config", help="experiment YAML (ours or an official HRNet/DarkPose one)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=5e-4 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in output_dir from its last.pth, exactly")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of a run already in output_dir")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N",
                        help="stop after N optimiser steps of the run (saving last.pth)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import torch

    from darkpose.commands.config_show import load_for_command
    from darkpose.config import ConfigError
    from darkpose.engine.train import NonFiniteLossError, train
    from darkpose.models import CheckpointError

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.max_steps is not None and args.max_steps < 0:
        print(f"darkpose train: error: --max-steps must be >= 0, got {args.max_steps}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        device = torch.device(device)
    except RuntimeError as e:
        print(f"darkpose train: error: --device {device!r}: {e}", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"darkpose train: error: --device {device}: no CUDA device here (use --device cpu)",
              file=sys.stderr)
        return 2
    if device.type == "cpu":
        # HRNet's N(0, 0.001) initialisation makes denormal floats; unflushed they make the
        # first CPU steps ~60x slower. A process-wide setting: the command's, not the library's.
        torch.set_flush_denormal(True)
    cfg = load_for_command("train", args.config, args.overrides)
    if cfg is None:
        return 2
    try:
        summary = train(cfg, device=device, resume=args.resume, overwrite=args.overwrite,
                        progress=not args.no_progress, max_steps=args.max_steps)
    except NonFiniteLossError as e:
        print(f"darkpose train: {e}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, FileNotFoundError, FileExistsError, ValueError) as e:
        message = " ".join(str(e).split()) if isinstance(e, ConfigError) else str(e)
        print(f"darkpose train: error: {message}", file=sys.stderr)
        return 2
    print(summary)
    return 0
