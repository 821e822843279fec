"""The quick start: train, evaluate and show DARK on synthetic people, on a CPU, in minutes.

    run_demo(out, config=..., minutes=...) -> DemoResult

1. a synthetic COCO-format set (:mod:`darkpose.data.synthetic_people`) in ``<out>/data``,
   reused when it is there with the same size and seed;
2. the shipped experiment ``configs/demo_synthetic.yaml`` (a small HRNet at 128x96 input,
   32x24 heatmaps, unbiased targets), its epochs sized to the time budget from a measured
   training step, trained by :func:`darkpose.engine.train.train` (``darkpose train``);
3. the decode half of the paper's ablation from the trained model: AP of argmax, shift,
   dark-reference and dark, with and without flip test, each through
   :func:`darkpose.engine.evaluate.evaluate` (``darkpose test``);
4. the encode half through the oracle (:func:`darkpose.bench.oracle.ground_truth_models`,
   a model that returns the encoded ground truth, run through the same test loop): AP of
   quantized and unbiased targets with the dark decode; optionally (``train_both``) a
   second model trained on quantized targets;
5. a report folder: ``metrics.json``, ``report.md`` (tables and the commands that
   reproduce them), ``loss.png``, ``decode_ap.png`` and ``predictions.png`` (validation
   images with the predicted skeletons, :func:`darkpose.viz.draw_poses`).

Nothing here is a separate code path: the config, training, test loop and drawing are the
ones the commands run on COCO.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkpose.config import Config, apply_overrides, config_to_dict, load_config

__all__ = ["DEFAULT_CONFIG", "DemoResult", "REPORT_FILES", "run_demo"]

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo_synthetic.yaml"
"""The shipped demo experiment, in the repository beside the package (the README's
editable install); give ``config=`` for another."""

REPORT_FILES = ("metrics.json", "report.md", "loss.png", "decode_ap.png", "predictions.png")
DECODES = ("argmax", "shift", "dark-reference", "dark")
_STAMP = "synthetic.json"  # in the data folder: what it was made with


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its report, and the figures of it (``metrics`` as in
    ``metrics.json``)."""

    out: Path
    files: dict[str, Path]
    metrics: dict[str, Any]

    def __str__(self) -> str:
        m = self.metrics
        dark = m["decode"]["dark"]["flip"]
        lines = [f"demo finished in {m['seconds']['total']:.0f} s: AP {dark:.3f} (dark decode, flip "
                 f"test) on {m['data']['val_persons']} synthetic validation persons"]
        lines += [f"  {name:<16} {path}" for name, path in self.files.items()]
        return "\n".join(lines)


def _data(folder: Path, num_train: int, num_val: int, seed: int, progress: bool) -> dict[str, Any]:
    """The synthetic set in ``folder``: reused when its stamp matches, else (re)written."""
    from darkpose.data.synthetic_people import make_synthetic_dataset

    want = {"num_train": num_train, "num_val": num_val, "seed": seed}
    stamp = folder / _STAMP
    if stamp.is_file():
        try:
            if json.loads(stamp.read_text(encoding="utf-8")) == want:
                return {**want, "reused": True, "seconds": 0.0}
        except json.JSONDecodeError:
            pass
    if folder.is_dir() and any(folder.iterdir()) and not stamp.is_file():
        raise FileExistsError(f"{folder}: the data folder holds files that are not a demo dataset; "
                              "give another --data folder")
    started = time.perf_counter()
    make_synthetic_dataset(folder, num_train, num_val, seed, overwrite=True, progress=progress)
    stamp.write_text(json.dumps(want), encoding="utf-8")
    return {**want, "reused": False, "seconds": time.perf_counter() - started}


def _step_seconds(cfg: Config, dataset) -> float:
    """Seconds per training step of ``cfg`` on the CPU, measured on one batch in memory (the
    median of steps 9-16: the first steps of a process run up to 3x slower, measured 0.29 s
    and 0.14 s over steps 3-5 and 5-8 against 0.09 s in the loop; channels-last when the
    config says so), a fresh model thrown away after."""
    from darkpose.engine.model import build_model_from_config
    from darkpose.engine.train import apply_gradients, build_loss, build_optimizer, forward_loss

    t = cfg.train
    n = min(t.batch_size, len(dataset))
    batch = dataset.transform.collate([dataset[(0, i)] for i in range(n)]).to(
        "cpu", channels_last=t.channels_last)
    rng = torch.get_rng_state()
    try:
        model = build_model_from_config(cfg, dataset.metadata.num_keypoints).train()
    finally:
        torch.set_rng_state(rng)  # the measurement leaves the run's randomness alone
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, criterion = build_optimizer(model, t), build_loss(t)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    times = []
    for _ in range(16):
        started = time.perf_counter()
        loss = forward_loss(model, criterion, batch.image, batch.target, batch.target_weight, None)
        apply_gradients(loss, model, optimizer, scaler, t.grad_clip)
        times.append(time.perf_counter() - started)
    return float(np.median(times[8:])) * t.batch_size / n


def _epochs_for(budget_s: float, step_s: float, steps_per_epoch: int, overhead: float = 1.25) -> int:
    """Whole epochs that fit the budget at ``step_s`` per step (the loop costs ``overhead``
    times the step alone: data loading, logging, the epoch's checkpoint)."""
    return max(1, int(budget_s / (step_s * overhead * steps_per_epoch)))


class _SameOutputs(torch.nn.Module):
    """The trained model, each batch's output kept: the decode ablation evaluates the same
    crops eight times (four decodes, flip test on and off), so the network runs once per
    distinct batch and every evaluation still goes through the whole test loop."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.outputs: dict[bytes, torch.Tensor] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        import hashlib

        key = hashlib.sha1(images.contiguous().cpu().numpy().tobytes()).digest()
        if key not in self.outputs:
            self.outputs[key] = self.model(images)
        return self.outputs[key]


def _evaluate(model, cfg: Config, dataset, decode: str, flip: bool) -> dict[str, float]:
    from darkpose.engine.evaluate import evaluate

    test = dataclasses.replace(cfg.test, decode=decode, flip_test=flip)
    return evaluate(model, dataclasses.replace(cfg, test=test), dataset=dataset, progress=False)


def _oracle(cfg: Config, dataset, progress: bool) -> dict[str, float]:
    """AP of perfect heatmaps of each target type (dark decode, flip test off)."""
    from darkpose.bench.oracle import ground_truth_models

    methods = ("quantized", "unbiased")
    data = ground_truth_models(dataset, cfg, methods, flip=False, progress=progress)
    return {m: _evaluate(data["models"][m], cfg, dataset, "dark", False)["AP"] for m in methods}


def _trained_model(cfg: Config, summary, num_joints: int):
    from darkpose.engine.model import build_model_from_config
    from darkpose.models import load_checkpoint

    model = build_model_from_config(cfg, num_joints)
    load_checkpoint(model, summary.last_checkpoint)
    return model.eval()


def _train(cfg: Config, budget_s: float, progress: bool, overwrite: bool) -> tuple[Config, Any, dict]:
    """Size the epochs to the budget, train, and return the config run, the summary and
    the timing figures."""
    import math

    from darkpose.engine.data import build_dataset
    from darkpose.engine.train import train

    dataset = build_dataset(cfg, "train", train=True, targets="batch")
    step_s = _step_seconds(cfg, dataset)
    steps_per_epoch = math.ceil(len(dataset) / cfg.train.batch_size)
    epochs = _epochs_for(budget_s, step_s, steps_per_epoch)
    cfg = apply_overrides(cfg, [f"train.epochs={epochs}"])
    started = time.perf_counter()
    summary = train(cfg, progress=progress, overwrite=overwrite)
    seconds = time.perf_counter() - started
    timing = {"step_s": step_s, "epochs": epochs, "steps": summary.step, "seconds": seconds,
              "samples_per_s": summary.step * cfg.train.batch_size / max(seconds, 1e-9),
              "train_persons": len(dataset)}
    return cfg, summary, timing


def _plots(out: Path, log: Path, decode: dict[str, dict[str, float]]) -> dict[str, Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from darkpose._files import write_new
    from darkpose.engine.train import plot_curves

    files = {"loss.png": plot_curves(log, out / "loss.png")}
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = np.arange(len(DECODES))
    for shift, (key, label) in zip((-0.2, 0.2), (("no_flip", "no flip test"), ("flip", "flip test")),
                                   strict=True):
        ax.bar(x + shift, [decode[d][key] for d in DECODES], width=0.4, label=label)
    ax.set(xticks=x, xticklabels=list(DECODES), ylabel="COCO AP (synthetic val)",
           title="decoding the same trained model")
    ax.legend(loc="lower right")
    files["decode_ap.png"] = write_new(out / "decode_ap.png",
                                       lambda f: fig.savefig(f, format="png", dpi=90), force=True,
                                       what="plot")
    return files


def _predictions_grid(out: Path, model, cfg: Config, dataset, images: int = 12) -> Path:
    """Validation images with the predicted skeletons (keypoints of score >= 0.3)."""
    import cv2

    from darkpose._files import write_new
    from darkpose.data import read_image
    from darkpose.engine.evaluate import predict
    from darkpose.viz import draw_poses, image_grid

    preds = predict(model, dataset, cfg, progress=False)
    tiles = []
    for image_id in list(dict.fromkeys(dataset.image_ids.tolist()))[:images]:
        rows = np.flatnonzero(dataset.image_ids == image_id)
        photo = read_image(dataset.image_paths[rows[0]], "bgr")
        tiles.append(draw_poses(photo, preds.keypoints[rows], dataset.metadata, score_threshold=0.3))
    grid = image_grid(tiles, 4, cell_size=(240, 240))
    ok, data = cv2.imencode(".png", grid)
    return write_new(out / "predictions.png", lambda f: f.write(data.tobytes()), force=True,
                     what="image")


def _commands(cfg: Config, data: Path, config_path: Path, num_train: int, num_val: int, seed: int) -> str:
    sets = (f"--set data.root={data} --set train.epochs={cfg.train.epochs} "
            f"--set output_dir={cfg.output_dir}")
    ckpt = Path(cfg.output_dir) / "last.pth"
    lines = [
        f"darkpose make-synthetic {data} --num-images {num_train} --num-val {num_val} --seed {seed}",
        f"darkpose train {config_path} {sets}",
    ]
    for d in DECODES:
        lines.append(f"darkpose test --checkpoint {ckpt} --set test.decode={d} --set test.flip_test=true "
                     f"--results {Path(cfg.output_dir) / f'results_{d}.json'}")
    return "\n".join(lines)


def _report(m: dict[str, Any], commands: str) -> str:
    d, o = m["decode"], m["encode_oracle"]
    lines = [
        "# darkpose demo: DARK on synthetic people",
        "",
        f"Model `{m['model']['name']}` ({m['model']['parameters']:,} parameters), input "
        f"{m['input']['image_size'][0]}x{m['input']['image_size'][1]} (W x H), heatmaps "
        f"{m['input']['heatmap_size'][0]}x{m['input']['heatmap_size'][1]}, sigma {m['input']['sigma']:g}, "
        f"blur kernel {m['input']['blur_kernel']}; trained {m['train']['epochs']} epochs "
        f"({m['train']['steps']} steps, {m['train']['seconds']:.0f} s, {m['train']['samples_per_s']:.0f} "
        f"samples/s) on {m['data']['train_persons']} persons of {m['data']['num_train']} synthetic images; "
        f"evaluated with pycocotools on {m['data']['val_persons']} persons of {m['data']['num_val']} "
        f"held-out images (ground-truth boxes). Whole demo: {m['seconds']['total']:.0f} s.",
        "",
        "## Decoding (the same trained model)",
        "",
        "| decode | AP, no flip test | AP, flip test |",
        "|---|---|---|",
        *(f"| {k} | {d[k]['no_flip']:.3f} | {d[k]['flip']:.3f} |" for k in DECODES),
        "",
        "Full table (dark decode, flip test): "
        + ", ".join(f"{k} {v:.3f}" for k, v in m["val"].items()),
        "",
        "## Encoding",
        "",
        "Perfect heatmaps (the encoded ground truth, through the same test loop, dark decode):",
        "",
        "| targets | AP |",
        "|---|---|",
        f"| quantized (HRNet) | {o['quantized']:.3f} |",
        f"| unbiased (DARK) | {o['unbiased']:.3f} |",
        "",
    ]
    if "encode_trained" in m:
        t = m["encode_trained"]
        lines += [
            "Trained on each target type (same budget, dark decode, flip test):",
            "",
            "| targets | AP |",
            "|---|---|",
            f"| quantized | {t['quantized']:.3f} |",
            f"| unbiased | {t['unbiased']:.3f} |",
            "",
        ]
    lines += [
        "## What this shows",
        "",
        m["findings"],
        "",
        "## Files",
        "",
        "- `metrics.json`: every figure above; `loss.png`: the training loss per epoch;",
        "  `decode_ap.png`: AP per decode method; `predictions.png`: validation images with the",
        "  predicted skeletons (keypoints of score >= 0.3).",
        "",
        "## Reproduce",
        "",
        "```bash",
        commands,
        "```",
        "",
    ]
    return "\n".join(lines)


def _findings(m: dict[str, Any]) -> str:
    d, o = m["decode"], m["encode_oracle"]
    gap = o["unbiased"] - o["quantized"]
    text = [
        f"- Decoding: from the same heatmaps, dark gives {d['dark']['flip']:.3f} AP against "
        f"{d['shift']['flip']:.3f} for the quarter-pixel shift and {d['argmax']['flip']:.3f} for the "
        f"argmax (flip test); dark-reference {d['dark-reference']['flip']:.3f}.",
        f"- Encoding: with perfect heatmaps, unbiased targets score {o['unbiased']:.3f} and quantized "
        f"{o['quantized']:.3f} ({gap:+.3f}): the quantisation bias alone.",
    ]
    if "encode_trained" in m:
        t = m["encode_trained"]
        text.append(f"- Trained on each: unbiased {t['unbiased']:.3f}, quantized {t['quantized']:.3f} "
                    f"({t['unbiased'] - t['quantized']:+.3f}).")
    else:
        text.append("- The demo trains one model (unbiased targets); whether the encoding gap survives "
                    "a short CPU training, where the model's own error is larger than the "
                    "quantisation bias, is not measured here (`--train-both` trains a quantized one too).")
    return "\n".join(text)


def run_demo(
    out: str | Path = "runs/demo",
    *,
    config: str | Path | None = None,
    data: str | Path | None = None,
    minutes: float = 8.0,
    num_images: int = 2000,
    num_val: int = 250,
    seed: int = 0,
    overrides: tuple[str, ...] | list[str] = (),
    train_both: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> DemoResult:
    """Run the quick start (see the module docstring) and write its report into ``out``.

    ``minutes``: the training budget (the whole demo takes about a minute more: data,
    evaluation, report); with ``train_both`` each of the two trainings gets half.
    ``data``: the synthetic set's folder (default ``<out>/data``). A report already in
    ``out`` is an error unless ``overwrite``.
    """
    from darkpose._files import check_target, write_new
    from darkpose.config import blur_kernel
    from darkpose.data.transforms import default_sigma
    from darkpose.engine.data import build_dataset
    from darkpose.models import count_parameters

    started = time.perf_counter()
    if not minutes > 0:
        raise ValueError(f"minutes: expected a positive number, got {minutes!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES[:2]:
        check_target(out / name, overwrite, "demo report", "--overwrite")
    data_dir = Path(data) if data is not None else out / "data"
    config_path = Path(config) if config is not None else DEFAULT_CONFIG
    base = [f"data.root={data_dir}", "data.train_set=train", "data.val_set=val",
            f"output_dir={out / 'train'}", *overrides]
    cfg = load_config(config_path, base)
    data_info = _data(data_dir, num_images, num_val, seed, progress)
    budget = minutes * 60.0 / (2 if train_both else 1)
    cfg, summary, timing = _train(cfg, budget, progress, overwrite)
    val = build_dataset(cfg, "val", train=False)
    model = _SameOutputs(_trained_model(cfg, summary, val.metadata.num_keypoints))

    decode = {d: {"no_flip": _evaluate(model, cfg, val, d, False)["AP"],
                  "flip": _evaluate(model, cfg, val, d, True)["AP"]} for d in DECODES}
    table = _evaluate(model, cfg, val, "dark", True)
    heatmap = cfg.input.heatmap_size or [s // 4 for s in cfg.input.image_size]
    metrics: dict[str, Any] = {
        "model": {"name": cfg.model.name, "parameters": count_parameters(model.model)},
        "input": {"image_size": list(cfg.input.image_size), "heatmap_size": list(heatmap),
                  "sigma": cfg.target.sigma or default_sigma(tuple(cfg.input.image_size)),
                  "blur_kernel": blur_kernel(cfg)},
        "data": {**data_info, "train_persons": timing["train_persons"], "val_persons": len(val),
                 "folder": str(data_dir)},
        "train": {k: v for k, v in timing.items() if k != "train_persons"},
        "decode": decode,
        "val": table,
        "encode_oracle": _oracle(cfg, val, progress),
    }
    if train_both:
        q_cfg = apply_overrides(cfg, ["target.method=quantized", f"output_dir={out / 'train_quantized'}"])
        q_cfg, q_summary, _ = _train(q_cfg, budget, progress, overwrite)
        q_model = _trained_model(q_cfg, q_summary, val.metadata.num_keypoints)
        metrics["encode_trained"] = {"unbiased": decode["dark"]["flip"],
                                     "quantized": _evaluate(q_model, q_cfg, val, "dark", True)["AP"]}
    files = _plots(out, summary.log_file, decode)
    files["predictions.png"] = _predictions_grid(out, model.model, cfg, val)
    metrics["findings"] = _findings(metrics)
    metrics["config"] = config_to_dict(cfg)
    metrics["seconds"] = {"data": data_info["seconds"], "train": timing["seconds"],
                          "total": time.perf_counter() - started}
    commands = _commands(cfg, data_dir, config_path, num_images, num_val, seed)
    metrics["commands"] = commands.splitlines()
    files["report.md"] = write_new(out / "report.md", lambda f: f.write(_report(metrics, commands).encode()),
                                   force=overwrite, what="demo report", force_hint="--overwrite")
    files["metrics.json"] = write_new(out / "metrics.json",
                                      lambda f: f.write(json.dumps(metrics, indent=1).encode()),
                                      force=overwrite, what="demo report", force_hint="--overwrite")
    files = {name: files[name] for name in REPORT_FILES}
    files["checkpoint"] = summary.last_checkpoint
    if progress:
        print(f"demo: report in {out}", file=sys.stderr)
    return DemoResult(out, files, metrics)
