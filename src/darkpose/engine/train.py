"""The training loop: one function, read top to bottom (after nanoGPT's ``train.py``).

``train(cfg)`` builds the training set, the model, the optimiser and the schedule from the
config, then runs ``cfg.train.epochs`` epochs, writing into ``cfg.output_dir``:

    last.pth     every epoch and at a stop: the weights plus everything that resumes the run
    best.pth     when the validation metric (COCO AP, MPII PCKh Mean) improves
    log.jsonl    one JSON object per epoch: loss, learning rate, speed, validation metrics
    curves.png   the loss and metric curves, rewritten each epoch

Exact resume. A run is a function of the config: the data order of epoch ``e`` is a
permutation drawn from a generator seeded by ``(train.seed, e)``, each sample a function of
``(seed, epoch, index)`` (:mod:`darkpose.data.base`), and the learning rate a function of the
step. ``last.pth`` stores the optimiser, scheduler, grad scaler, RNG states (torch, CUDA,
numpy, python) and the position in the epoch's order, so a run stopped anywhere and resumed
(``resume=True``) ends with the weights an uninterrupted run ends with, bit for bit (with
``torch.use_deterministic_algorithms(True)``).

Many processes (``torchrun``, :mod:`darkpose.engine.distributed`): when a process group is
initialised, each rank trains on its share of the epoch's order
(:class:`~darkpose.engine.distributed.ShardedEpochOrder`), the model runs in
``DistributedDataParallel`` (gradients averaged over the global batch of
``train.batch_size`` x world size), rank 0 alone logs, shows progress and writes the files
(the others wait at a barrier), and validation is sharded across the ranks. All ranks seed
the same generators, so their RNG states stay equal and rank 0's resume every rank.

The caller's RNG states are left as they were: the run seeds and uses the global generators
(model initialisation, dropout) inside a scope that gives the caller's states back on return.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from darkpose._files import write_new
from darkpose.config import Config, ConfigError, TrainConfig, config_to_dict
from darkpose.engine import distributed
from darkpose.engine.data import build_dataset
from darkpose.engine.distributed import ShardedEpochOrder, epoch_order_seed
from darkpose.engine.model import build_model_from_config

__all__ = [
    "NonFiniteLossError",
    "TrainSummary",
    "apply_gradients",
    "build_loss",
    "build_optimizer",
    "epoch_order_seed",
    "forward_loss",
    "lr_factor",
    "main_metric",
    "plot_curves",
    "train",
]

logger = logging.getLogger(__name__)

LAST, BEST, LOG, PLOT = "last.pth", "best.pth", "log.jsonl", "curves.png"
_AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf: the run stopped before that step changed the weights."""


@dataclass
class TrainSummary:
    """What a run did and wrote.

    ``epoch``: epochs completed; ``step``: optimiser steps since the run began (across
    resumes); ``finished``: all ``train.epochs`` done (False after ``max_steps``);
    ``best_metric``: (name, value) of the best validation, or None; ``skipped_keys``: the
    ``model.init_checkpoint`` tensors not loaded (a head of another number of keypoints).
    """

    output_dir: Path
    epoch: int
    step: int
    finished: bool
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_metric: tuple[str, float] | None
    log_file: Path
    plot_file: Path | None
    skipped_keys: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # the last validation's

    def __str__(self) -> str:
        state = "finished" if self.finished else "stopped"
        lines = [f"training {state} after {self.epoch} epochs, {self.step} steps; written to "
                 f"{self.output_dir}:"]
        if self.last_checkpoint:
            lines.append(f"  last checkpoint  {self.last_checkpoint} (resume with --resume)")
        if self.best_checkpoint and self.best_metric:
            name, value = self.best_metric
            lines.append(f"  best checkpoint  {self.best_checkpoint} ({name} {value:.4f})")
        lines.append(f"  log              {self.log_file}")
        if self.plot_file:
            lines.append(f"  curves           {self.plot_file}")
        if self.skipped_keys:
            lines.append(f"  init checkpoint: {len(self.skipped_keys)} head tensors re-initialised "
                         f"({', '.join(self.skipped_keys)})")
        return "\n".join(lines)


# -- the pieces the loop is made of --------------------------------------------------------


def lr_factor(step: int, t: TrainConfig, steps_per_epoch: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) over ``t.lr``.

    Linear warm-up over the first ``t.warmup_epochs`` epochs (from 1/warm-up-steps to 1),
    times ``t.lr_factor`` per milestone of ``t.lr_steps`` reached (multistep: epoch
    ``step // steps_per_epoch`` >= milestone, as the official per-epoch schedule) or a half
    cosine from 1 at the end of the warm-up to 0 at the end of ``t.epochs`` (cosine).
    """
    warmup = t.warmup_epochs * steps_per_epoch
    factor = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if t.schedule == "multistep":
        epoch = step // steps_per_epoch
        return factor * t.lr_factor ** sum(epoch >= m for m in t.lr_steps)
    if t.schedule == "cosine":
        total = t.epochs * steps_per_epoch - warmup
        progress = min(1.0, max(0.0, step - warmup) / total) if total > 0 else 1.0
        return factor * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ConfigError(f"train.schedule: expected 'multistep' or 'cosine', got {t.schedule!r}")


def build_optimizer(model: nn.Module, t: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (momentum, Nesterov) over the trainable parameters, with weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
                               nesterov=t.nesterov)
    raise ConfigError(f"train.optimizer: expected 'adam', 'adamw' or 'sgd', got {t.optimizer!r}")


def build_loss(t: TrainConfig) -> nn.Module:
    """JointsMSELoss or its hard-keypoint variant (top 8), both with target weights; a list
    of predictions (hourglass stacks) gives the sum over the stacks."""
    from darkpose.losses import JointsMSELoss, JointsOHKMMSELoss

    if t.loss == "mse":
        return JointsMSELoss(use_target_weight=True)
    if t.loss == "ohkm":
        return JointsOHKMMSELoss(use_target_weight=True, topk=8)
    raise ConfigError(f"train.loss: expected 'mse' or 'ohkm', got {t.loss!r}")


def forward_loss(forward, criterion: nn.Module, images, target, weight, amp_dtype) -> torch.Tensor:
    """The loss of one batch: the forward under autocast (``amp_dtype`` None: off), the
    output back in float32, then the criterion with the target weights."""
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        output = forward(images)
    output = [o.float() for o in output] if isinstance(output, (list, tuple)) else output.float()
    return criterion(output, target, weight)


def apply_gradients(loss: torch.Tensor, model: nn.Module, optimizer, scaler, grad_clip: float | None) -> None:
    """Backward and optimiser step: gradients zeroed, the (scaled) loss back-propagated, the
    gradient norm clipped to ``grad_clip`` when set, then the step through the grad scaler."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()


def _rng_states(cuda: bool) -> dict[str, Any]:
    """Every RNG state the run uses, as tensors and plain data (``weights_only`` loads it)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 (the global state, saved for resume)
    version, internal, gauss_next = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
        "python": [version, list(internal), gauss_next],
    }
    if cuda:
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any], cuda: bool) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],  # noqa: NPY002
                         n["cached_gaussian"]))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if cuda and "cuda" in states:  # a CUDA run resumed on the CPU leaves CUDA alone
        torch.cuda.set_rng_state_all(states["cuda"])


@contextlib.contextmanager
def _run_rng_scope(seed: int, cuda: bool):
    """Seed the global generators for the run; give the caller's states back at the end."""
    caller = _rng_states(cuda)
    torch.manual_seed(seed)  # CUDA's too
    np.random.seed(seed % 2**32)  # noqa: NPY002 (user code may draw from it)
    random.seed(seed)
    try:
        yield
    finally:
        _set_rng_states(caller, cuda)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _config_changes(old: Any, new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two ``config_to_dict`` trees."""
    a, b = _flat(old if isinstance(old, dict) else {}), _flat(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _prepare_output_dir(out: Path, cfg: Config, resume: bool, overwrite: bool):
    """Refuse to mix two runs in one folder; return the checkpoint to resume from (or None)."""
    from darkpose.models import CheckpointError, read_checkpoint

    last = out / LAST
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"resume: {last} not found; there is no run to resume in {out}")
        ckpt = read_checkpoint(last)
        if ckpt.training is None:
            raise CheckpointError(f"resume: {last} holds weights only (no training state of "
                                  "darkpose checkpoint format version 2); it cannot resume a run")
        changed = _config_changes(ckpt.meta.get("config"), config_to_dict(cfg))
        if changed:
            logger.warning("resuming %s with a changed config: %s", last, ", ".join(changed))
        return ckpt
    existing = [out / name for name in (LAST, BEST, LOG, PLOT) if (out / name).exists()]
    if existing and not overwrite:
        what = "the files of another run"
        if last.is_file():
            try:
                changed = _config_changes(read_checkpoint(last).meta.get("config"), config_to_dict(cfg))
                what = (f"another run ({LAST} has another config: {', '.join(changed[:5])}"
                        f"{' ...' if len(changed) > 5 else ''})" if changed else
                        f"a run of this config ({LAST})")
            except (CheckpointError, OSError):
                pass
        raise FileExistsError(f"output_dir {out} holds {what}; pass --resume (resume=True) to "
                              "continue it or --overwrite (overwrite=True) to replace it")
    for path in existing:  # overwrite: the old run's files go, so none is mistaken for ours
        path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return None


def _init_from_checkpoint(model: nn.Module, path: str, num_joints: int) -> list[str]:
    """Load ``model.init_checkpoint``; tensors of a head with another number of keypoints
    (shapes differing in one dimension only, where the model has ``num_joints``) keep
    their fresh initialisation and are returned. Anything else that does not match is an
    error naming the file."""
    from darkpose.models import CheckpointMismatchError, load_checkpoint

    report = load_checkpoint(model, path, strict=False)

    def is_head(file_shape: tuple[int, ...], model_shape: tuple[int, ...]) -> bool:
        if len(file_shape) != len(model_shape):
            return False
        diff = [i for i, (a, b) in enumerate(zip(file_shape, model_shape, strict=True)) if a != b]
        return len(diff) == 1 and model_shape[diff[0]] == num_joints

    other = [m for m in report.mismatched if not is_head(m[1], m[2])]
    if report.missing or report.unexpected or other:
        report.mismatched = other
        raise CheckpointMismatchError(
            f"model.init_checkpoint {path} is not a checkpoint of {type(model).__name__} "
            f"(apart from a head of another number of keypoints):\n{report.problems()}", report)
    skipped = [m[0] for m in report.mismatched]
    if skipped:
        logger.warning("model.init_checkpoint %s: %d head tensors of another number of keypoints "
                       "re-initialised: %s", path, len(skipped), ", ".join(skipped))
    return skipped


def main_metric(metrics: dict[str, float]) -> tuple[str, float]:
    """The metric that picks ``best.pth``: COCO ``AP`` or MPII PCKh ``Mean`` (higher is better)."""
    for name in ("AP", "Mean"):
        if name in metrics:
            return name, float(metrics[name])
    raise ValueError(f"validation returned none of AP, Mean: {sorted(metrics)}")


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def plot_curves(log_path: Path, png_path: Path) -> Path:
    """Draw the loss (and validation metric) per epoch of ``log.jsonl`` into a PNG
    (matplotlib's Agg canvas, no pyplot: no process-wide backend is set)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = _read_log(log_path)
    validated = [r for r in records if "val" in r]
    fig = Figure(figsize=(10 if validated else 5, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if validated else 1, squeeze=False)[0]
    axes[0].plot([r["epoch"] for r in records], [r["loss"] for r in records], marker=".")
    axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log")
    if validated:
        name = main_metric(validated[0]["val"])[0]
        axes[1].plot([r["epoch"] for r in validated], [main_metric(r["val"])[1] for r in validated],
                     marker="o")
        axes[1].set(xlabel="epoch", ylabel=f"validation {name}")
    return write_new(png_path, lambda f: fig.savefig(f, format="png", dpi=80), force=True,
                     what="plot")


# -- the loop -------------------------------------------------------------------------------


def train(
    cfg: Config,
    *,
    device: str | torch.device = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    max_steps: int | None = None,
) -> TrainSummary:
    """Train the model of ``cfg`` on its training split; see the module docstring.

    Under an initialised process group (``torchrun``) every rank calls it with the same
    config and its own ``device``; see :mod:`darkpose.engine.distributed`.

    Parameters
    ----------
    cfg : Config
        The experiment (``cfg.train`` for the optimisation, ``cfg.output_dir`` for the files).
    device : "cpu", "cuda", "cuda:1", ...
        bf16/fp16 autocast (``train.amp``) needs CUDA.
    resume : bool
        Continue the run in ``output_dir`` from its ``last.pth``.
    overwrite : bool
        Replace the files of a run already in ``output_dir`` (otherwise an error).
    progress : bool
        Show a progress bar per epoch (loss, learning rate, samples/s, ETA of the run).
    max_steps : int, optional
        Stop once this many optimiser steps of the run are done (counted from the run's
        start, across resumes), saving ``last.pth`` where it stands, mid-epoch or not.

    Raises
    ------
    ConfigError
        A setting this loop cannot use (``train.amp`` on the CPU, an unknown optimiser ...).
    FileExistsError
        ``output_dir`` holds another run and neither ``resume`` nor ``overwrite``.
    NonFiniteLossError
        The loss became NaN or Inf; the message names the step; ``last.pth`` is the last
        good state (the failing step is not applied).
    """
    from tqdm import tqdm

    from darkpose.data import EpochSampler
    from darkpose.models import apply_state_dict, save_checkpoint

    t = cfg.train
    device = torch.device(device)
    cuda = device.type == "cuda"
    if t.amp not in _AMP_DTYPES:
        raise ConfigError(f"train.amp: expected 'none', 'bf16' or 'fp16', got {t.amp!r}")
    if t.amp != "none" and not cuda:
        raise ConfigError(f"train.amp: {t.amp} autocast needs a CUDA device (got {device}); "
                          "set train.amp=none to train in float32 on the CPU")
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    out = Path(cfg.output_dir)
    dataset = build_dataset(cfg, "train", train=True, targets="batch")
    main = distributed.is_main()
    progress = progress and main
    # rank 0 checks and prepares the folder (every rank raises its error); the others then
    # read last.pth themselves rather than receive it
    previous = None

    def prepare() -> None:
        nonlocal previous
        previous = _prepare_output_dir(out, cfg, resume, overwrite)

    distributed.on_main(prepare)
    if resume and not main:
        from darkpose.models import read_checkpoint

        previous = read_checkpoint(out / LAST)
    num_joints = dataset.metadata.num_keypoints
    order = ShardedEpochOrder(len(dataset), t.seed, distributed.rank(), distributed.world_size())
    steps_per_epoch = math.ceil(order.share / t.batch_size)
    total_steps = t.epochs * steps_per_epoch
    sampler = EpochSampler(order)
    loader = DataLoader(
        dataset, batch_size=t.batch_size, sampler=sampler, num_workers=cfg.data.workers,
        collate_fn=dataset.transform.collate, pin_memory=cuda,
        persistent_workers=cfg.data.workers > 0,
        generator=torch.Generator().manual_seed(t.seed),  # worker seeds; the global RNG is untouched
    )
    log_path, last_path, best_path = out / LOG, out / LAST, out / BEST
    skipped: list[str] = []

    with _run_rng_scope(t.seed, cuda):
        # -- model, optimiser, schedule: fresh, fine-tuned, or where the run stopped
        model = build_model_from_config(cfg, num_joints)
        if previous is None and cfg.model.init_checkpoint:
            skipped = _init_from_checkpoint(model, cfg.model.init_checkpoint, num_joints)
        model.to(device)
        if t.channels_last:
            model.to(memory_format=torch.channels_last)
        wrapped = distributed.wrap_model(model, device, t.sync_batchnorm)  # `model` is saved
        optimizer = build_optimizer(model, t)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, t, steps_per_epoch))
        scaler = torch.amp.GradScaler(device.type, enabled=t.amp == "fp16")
        criterion = build_loss(t)
        state = {"epoch": 0, "position": 0, "step": 0, "loss_sum": 0.0, "loss_batches": 0,
                 "best": None, "metrics": {}}
        if previous is not None:
            tr = previous.training
            apply_state_dict(model, previous.state_dict, path=str(last_path))
            optimizer.load_state_dict(tr["optimizer"])
            scheduler.load_state_dict(tr["scheduler"])
            scaler.load_state_dict(tr["scaler"])
            state.update({k: tr[k] for k in state})
            _set_rng_states(tr["rng"], cuda)
            if main:
                kept = [r for r in _read_log(log_path) if r["step"] <= state["step"]]
                log_path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        forward = torch.compile(wrapped) if t.compile else wrapped
        amp_dtype = _AMP_DTYPES[t.amp]

        def save(path: Path) -> None:
            """Rank 0 writes ``path``; the others wait for it."""
            if main:
                _save(path)
            distributed.barrier()

        def _save(path: Path) -> Path:
            best = state["best"]
            meta = {
                "model": cfg.model.name, "model_options": cfg.model.options,
                "num_joints": num_joints, "config": config_to_dict(cfg),
                "epoch": state["epoch"], "step": state["step"], "metrics": state["metrics"],
                "best": None if best is None else {"name": best[0], "value": best[1]},
            }
            training = {
                **{k: state[k] for k in ("epoch", "position", "step", "loss_sum", "loss_batches")},
                "best": None if best is None else list(best), "metrics": state["metrics"],
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": _rng_states(cuda),
            }
            return save_checkpoint(model, path, meta=meta, training=training, overwrite=True)

        def stop_requested() -> bool:
            return max_steps is not None and state["step"] >= max_steps

        # -- the epochs
        started, session_steps, stopped = time.perf_counter(), 0, False
        for epoch in range(state["epoch"], t.epochs):
            if stop_requested():
                stopped = True
                break
            state["epoch"] = epoch
            sampler.set_epoch(epoch)
            order.start = state["position"]
            epoch_start, epoch_samples = time.perf_counter(), 0
            bar = tqdm(total=steps_per_epoch, initial=state["position"] // t.batch_size,
                       desc=f"epoch {epoch + 1}/{t.epochs}", disable=not progress, leave=False)
            model.train()
            for batch in loader:
                b = batch.to(device, channels_last=t.channels_last)
                loss = forward_loss(forward, criterion, b.image, b.target, b.target_weight, amp_dtype)
                value = distributed.mean_over_ranks(loss)  # of the global batch: all ranks stop together
                if not math.isfinite(value):
                    bar.close()
                    kept = f"{last_path} is kept" if last_path.is_file() else "no checkpoint was written"
                    raise NonFiniteLossError(
                        f"the loss is {value} at training step {state['step'] + 1} (epoch "
                        f"{epoch + 1}, batch {state['position'] // t.batch_size + 1} of "
                        f"{steps_per_epoch}); the run stopped before applying it and {kept} "
                        "as the last good state. Lower train.lr, set train.grad_clip, or check "
                        "the data of this batch.")
                lr = scheduler.get_last_lr()[0]  # this step's
                apply_gradients(loss, model, optimizer, scaler, t.grad_clip)
                scheduler.step()

                n = len(batch)
                state["step"] += 1
                state["position"] += n
                state["loss_sum"] += value
                state["loss_batches"] += 1
                session_steps += 1
                epoch_samples += n * order.world_size  # of all ranks
                elapsed = time.perf_counter() - started
                eta = (total_steps - state["step"]) * elapsed / session_steps
                bar.set_postfix(loss=f"{value:.3g}", lr=f"{lr:.3g}",
                                samples_s=f"{epoch_samples / (time.perf_counter() - epoch_start):.1f}",
                                eta=f"{eta / 60:.1f}min", refresh=False)
                bar.update()
                if stop_requested() and state["position"] < order.share:
                    stopped = True
                    break
            bar.close()
            if stopped:
                break

            # -- end of the epoch: validate, log, plot, checkpoint
            record = {
                "epoch": epoch + 1, "step": state["step"],
                "loss": state["loss_sum"] / max(state["loss_batches"], 1),
                "lr": lr,  # of the epoch's last step
                "samples_per_s": epoch_samples / (time.perf_counter() - epoch_start),
            }
            last_epoch = epoch + 1 == t.epochs
            if t.val_every > 0 and ((epoch + 1) % t.val_every == 0 or last_epoch):
                from darkpose.engine.evaluate import evaluate

                metrics = {k: float(v) for k, v in evaluate(model, cfg, device=device,
                                                            progress=progress).items()}
                model.train()
                record["val"] = state["metrics"] = metrics
                name, value = main_metric(metrics)
                improved = state["best"] is None or value > state["best"][1]
                if improved:
                    state["best"] = (name, value)
            else:
                improved = False
            state.update(epoch=epoch + 1, position=0, loss_sum=0.0, loss_batches=0)
            if main:
                _append_log(log_path, record)
                plot_curves(log_path, out / PLOT)
            if improved:
                save(best_path)
            save(last_path)
            if main:
                logger.info("epoch %d/%d: loss %.4g%s", epoch + 1, t.epochs, record["loss"],
                            "".join(f", {k} {v:.4f}" for k, v in record.get("val", {}).items()))

        if stopped or state["epoch"] < t.epochs:
            save(last_path)

    def written(path: Path) -> Path | None:
        return path if path.is_file() else None

    return TrainSummary(
        out, state["epoch"], state["step"], state["epoch"] == t.epochs, written(last_path),
        written(best_path), None if state["best"] is None else tuple(state["best"]), log_path,
        written(out / PLOT), skipped, state["metrics"])
