"""``darkpose config convert OLD.yaml [-o NEW.yaml] [--force]``: an official HRNet/DarkPose
experiment file written in our format (stdout without ``-o``).

The written file holds every field, with the source and the ignored official keys in a
comment at its top; it loads back to the same config. An existing file is never replaced
unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from darkpose._files import write_new
from darkpose.commands.config_show import config_yaml, load_for_command

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="official experiment YAML (also accepts ours)")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the result, e.g. --set data.root=/data/coco")


def run(args: argparse.Namespace) -> int:
    ignored: list[str] = []
    cfg = load_for_command("config convert", args.config, args.overrides, ignored)
    if cfg is None:
        return 2
    header = f"# darkpose config converted from {args.config}\n"
    if ignored:
        header += f"# official keys with no effect here, not converted: {', '.join(ignored)}\n"
    text = header + config_yaml(cfg)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        write_new(args.output, lambda f: f.write(text.encode("utf-8")), force=args.force,
                  what="config", force_hint="--force")
    except (FileExistsError, FileNotFoundError, IsADirectoryError) as e:
        print(f"darkpose config convert: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
