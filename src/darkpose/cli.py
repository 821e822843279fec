"""The ``darkpose`` command.

Each command lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``. Only the module of the command being run is imported, so
``darkpose --help`` stays fast and one command's dependencies never slow another.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (words, module, one-line help). Add a command by adding a row.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("bench", "codec"), "darkpose.bench.codec", "speed of encode/decode against the argmax floor"),
    (("bench", "codec-accuracy"), "darkpose.bench.codec_accuracy",
     "localisation error of every decode against the Cramer-Rao bound"),
    (("bench", "tails"), "darkpose.bench.tails", "study: recovering peaks beyond the 1.5 px reach of dark"),
    (("bench", "oracle"), "darkpose.bench.oracle", "COCO AP that perfect heatmaps would give"),
    (("bench", "pipeline"), "darkpose.bench.pipeline", "training-sample throughput vs. JPEG decode"),
    (("bench", "models"), "darkpose.bench.models", "forward/training throughput of the models"),
    (("bench", "train"), "darkpose.bench.train", "training-loop time against the model step alone"),
    (("bench", "predict"), "darkpose.bench.predict", "persons/s of the Predictor: crop, model, decode"),
    (("models",), "darkpose.models.listing", "list the model names with parameter counts"),
    (("config", "show"), "darkpose.commands.config_show", "print the resolved config of an experiment"),
    (("config", "convert"), "darkpose.commands.config_convert", "write an official yacs experiment as ours"),
    (("train",), "darkpose.commands.train", "train a model from an experiment config"),
    (("test",), "darkpose.commands.test", "evaluate a model (COCO AP or MPII PCKh)"),
    (("predict",), "darkpose.commands.predict", "keypoints on your images or video, drawn"),
    (("export",), "darkpose.commands.export",
     "write an ONNX graph: heatmaps, or coordinates with the DARK decode inside"),
    (("demo",), "darkpose.commands.demo", "quick start: train and evaluate DARK on synthetic people (CPU, minutes)"),
    (("make-synthetic",), "darkpose.commands.make_synthetic", "write a synthetic COCO-format keypoint dataset"),
]


def _usage() -> str:
    from darkpose import __version__

    width = max(len(" ".join(words)) for words, _, _ in COMMANDS)
    lines = [
        f"darkpose {__version__}: top-down pose estimation built around DARK",
        "",
        "usage: darkpose COMMAND [options]   (darkpose COMMAND --help for its options)",
        "",
        "commands:",
    ]
    for words, _, text in COMMANDS:
        lines.append(f"  {' '.join(words):<{width}}  {text}")
    return "\n".join(lines)


def _find_command(argv: list[str]) -> tuple[tuple[str, ...], str, str] | None:
    for entry in sorted(COMMANDS, key=lambda c: -len(c[0])):
        words = entry[0]
        if tuple(argv[: len(words)]) == words:
            return entry
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from darkpose import __version__

        print(__version__)
        return 0
    entry = _find_command(argv)
    if entry is None:
        print(f"darkpose: unknown command {' '.join(argv[:2])!r}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    words, module_name, text = entry
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog="darkpose " + " ".join(words), description=text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[len(words) :])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
