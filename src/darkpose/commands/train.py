"""`darkpose train CONFIG [--set key=value ...] [--resume] [--overwrite] [--device D] [--max-steps N]`.

Under ``torchrun`` (``torchrun --nproc-per-node G -m darkpose train CONFIG``) each process
joins the process group of the environment and trains on GPU ``LOCAL_RANK`` (gloo on the
CPU); rank 0 prints and writes the files.
"""

from __future__ import annotations

import argparse
import logging
import sys

_EPILOG = """\
Writes last.pth (every epoch; resumes the run), best.pth (best validation metric),
log.jsonl and curves.png into the config's output_dir. Exit status: 0 done, 1 the loss
became NaN/Inf (last.pth keeps the last good state), 2 bad input (config, paths,
checkpoint, an output folder holding another run).

Many GPUs: torchrun --nproc-per-node G -m darkpose train CONFIG (train.batch_size is per
process); many machines: torchrun --nnodes N --nproc-per-node G --rdzv-backend c10d
--rdzv-endpoint HOST:PORT -m darkpose train CONFIG on each."""


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
    from darkpose.engine import distributed
    from darkpose.engine.train import NonFiniteLossError, train
    from darkpose.models import CheckpointError

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.max_steps is not None and args.max_steps < 0:
        print(f"darkpose train: error: --max-steps must be >= 0, got {args.max_steps}", file=sys.stderr)
        return 2
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
        launch = distributed.init_from_env(device.type)  # rank 0 of 1 without torchrun
    except ValueError as e:  # a torchrun environment that does not fit this machine
        print(f"darkpose train: error: {e}", file=sys.stderr)
        return 2
    main = launch.rank == 0
    logging.basicConfig(level=logging.INFO if main else logging.WARNING, format="%(message)s")
    try:
        summary = train(cfg, device=launch.device if launch.world_size > 1 else device,
                        resume=args.resume, overwrite=args.overwrite,
                        progress=not args.no_progress, max_steps=args.max_steps)
    except NonFiniteLossError as e:  # every rank raises it (the loss is averaged over them)
        if main:
            print(f"darkpose train: {e}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, FileNotFoundError, FileExistsError, ValueError) as e:
        if main:
            message = " ".join(str(e).split()) if isinstance(e, ConfigError) else str(e)
            print(f"darkpose train: error: {message}", file=sys.stderr)
        return 2
    finally:
        distributed.cleanup()
    if main:
        print(summary)
    return 0
