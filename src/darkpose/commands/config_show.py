"""``darkpose config show CONFIG [--set key=value ...]``: the resolved config as YAML.

Prints every field (ours or an official yacs file, after the overrides) in our format on
stdout; the official keys that have no effect here go to stderr as one warning line.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from darkpose.config import ConfigError, config_to_dict, ignored_keys_message, load_config

__all__ = ["add_arguments", "config_yaml", "load_for_command", "run"]


class _Dumper(yaml.SafeDumper):
    """Sections as blocks, lists on one line (``image_size: [192, 256]``)."""


_Dumper.add_representer(
    list, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)
)


def config_yaml(cfg) -> str:
    """``cfg`` in our YAML format (every field; :func:`darkpose.config.load_config` reads it
    back to the same :class:`~darkpose.config.Config`)."""
    return yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def load_for_command(command: str, path, overrides, ignored: list[str] | None = None):
    """The config of a command's CONFIG argument, or None after printing the config error as
    ``darkpose COMMAND: message`` on stderr; the ignored official keys are printed there as
    one warning line (and appended to ``ignored`` when given)."""
    ignored = [] if ignored is None else ignored
    try:
        cfg = load_config(path, overrides, ignored=ignored)
    except ConfigError as e:
        print(f"darkpose {command}: {e}", file=sys.stderr)
        return None
    message = ignored_keys_message(path, ignored)
    if message:
        print(message, file=sys.stderr)
    return cfg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML (ours or an official HRNet/DarkPose one)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field, e.g. --set train.lr=5e-4 (repeatable)")


def run(args: argparse.Namespace) -> int:
    cfg = load_for_command("config show", args.config, args.overrides)
    if cfg is None:
        return 2
    sys.stdout.write(config_yaml(cfg))
    return 0
