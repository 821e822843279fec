"""``darkpose test [CONFIG] [--checkpoint F]``: the COCO AP table or the MPII PCKh table.

The config is CONFIG, else the one a training checkpoint stores (``meta["config"]`` of
``--checkpoint``, as ``darkpose train`` writes it), with the ``--set`` overrides on top. The
model of the config (``model``), its weights from ``--checkpoint`` (else
``model.init_checkpoint``), the validation split of ``data`` with the boxes, flip test,
decode, rescoring and NMS of ``test`` (:func:`darkpose.engine.evaluate.evaluate`). The
predictions are written to ``--results`` (default ``<output_dir>/results_<val_set>.json``),
never over an existing file unless ``--overwrite``. Bad input (a config typo, a missing file,
a checkpoint of another model) is one line on stderr naming the file or field, exit code 2.

Under ``torchrun`` (``torchrun --nproc-per-node G -m darkpose test CONFIG``) the persons are
shared out across the processes and gathered; rank 0 scores, writes and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "darkpose test"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, nargs="?", default=None,
                        help="experiment YAML (ours or an official yacs file). Optional with a "
                             "--checkpoint written by darkpose train: the config it stores is used. "
                             "When CONFIG is given, it wins and the checkpoint's config is ignored")
    parser.add_argument("--checkpoint", type=Path, help="weights to evaluate (default: model.init_checkpoint)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="config overrides, e.g. test.flip_test=false")
    parser.add_argument("--results", type=Path,
                        help="results JSON to write (default: <output_dir>/results_<val_set>.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))


def _format(table: dict[str, float]) -> str:
    width = max(len(k) for k in table)
    return "\n".join(f"  {k:<{width}}  {v:8.4f}" for k, v in table.items())


def _run(args: argparse.Namespace) -> int:
    import torch

    from darkpose._files import check_target
    from darkpose.commands.config_show import load_for_command
    from darkpose.data import load_metadata
    from darkpose.engine import distributed
    from darkpose.engine.data import build_dataset, split_paths
    from darkpose.engine.evaluate import evaluate
    from darkpose.engine.model import build_model_from_config
    from darkpose.inference import experiment_config, load_weights

    if args.config is None:
        if args.checkpoint is None:
            raise ValueError("no CONFIG: give an experiment YAML, or --checkpoint F of a training "
                             "checkpoint that stores its config")
        cfg = experiment_config(args.checkpoint, None, args.overrides,
                                hint=f"darkpose test CONFIG --checkpoint {args.checkpoint}")
    else:
        cfg = load_for_command("test", args.config, args.overrides)
        if cfg is None:
            return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    results = args.results or Path(cfg.output_dir) / f"results_{cfg.data.val_set}.json"
    if args.results is not None or results.parent.is_dir():
        check_target(results, args.overwrite, "results file", "--overwrite")
    metadata = load_metadata(cfg.data.metadata)
    dataset = build_dataset(cfg, "val", train=False)
    model = build_model_from_config(cfg, metadata.num_keypoints)
    checkpoint = args.checkpoint or cfg.model.init_checkpoint
    if checkpoint is None:
        print(f"{PROG}: warning: no --checkpoint and no model.init_checkpoint: evaluating "
              "randomly initialised weights", file=sys.stderr)
    else:
        load_weights(model, Path(checkpoint), cfg, metadata.num_keypoints)
    results.parent.mkdir(parents=True, exist_ok=True)
    launch = distributed.init_from_env(args.device)  # rank 0 of 1 without torchrun
    try:
        table = evaluate(model, cfg, device=launch.device, dataset=dataset, results_path=results,
                         overwrite=args.overwrite)
    finally:
        distributed.cleanup()
    if launch.rank != 0:
        return 0
    what = "PCKh" if cfg.data.dataset == "mpii" else "COCO keypoints"
    print(f"{what}: {split_paths(cfg, 'val').annotations} ({len(dataset)} persons), model "
          f"{cfg.model.name}, weights {checkpoint or 'random'}, flip test "
          f"{'on' if cfg.test.flip_test else 'off'}, decode {cfg.test.decode}")
    print(_format(table))
    print(f"results: {results}")
    return 0


def run(args: argparse.Namespace) -> int:
    import logging

    from darkpose.models import CheckpointError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except (ValueError, CheckpointError, FileNotFoundError, FileExistsError, IsADirectoryError) as e:
        print(f"{PROG}: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(error: Exception) -> str:
    """The message's first line; of an error re-raised from a DataLoader worker ("Caught
    ValueError in DataLoader worker process 0." then the worker's traceback), the original
    message, the traceback's last line."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    if lines[0].startswith("Caught ") and len(lines) > 1:
        return lines[-1].split(": ", 1)[-1]
    return lines[0]
