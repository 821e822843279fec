"""Pose networks (HRNet, SimpleBaseline, stacked hourglass) and their checkpoints.

Every model maps images (N, 3, H, W) to K heatmaps (N, K, H/4, W/4); the stacked hourglass
returns one such tensor per stack in training mode (see :mod:`darkpose.models.hourglass`).

    >>> from darkpose.models import build_model, load_checkpoint
    >>> model = build_model("hrnet_w32", num_joints=17)
    >>> load_checkpoint(model, "pose_hrnet_w32_256x192.pth")      # doctest: +SKIP

The names are the keys of :data:`MODELS`; each maps to one factory function in the file of its
architecture. Nothing is ever downloaded: weights come from paths you give.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from darkpose.models.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    LoadReport,
    UnsafeCheckpointError,
    apply_state_dict,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from darkpose.models.hourglass import StackedHourglass, hourglass
from darkpose.models.hrnet import HRNet, HRNetConfig, HRNetStage, hrnet, hrnet_config_from_official
from darkpose.models.simple_baseline import (
    SimpleBaseline,
    simple_baseline,
    simple_baseline_options_from_official,
)

__all__ = [
    "MODELS",
    "CheckpointError",
    "CheckpointMismatchError",
    "HRNet",
    "HRNetConfig",
    "HRNetStage",
    "LoadReport",
    "ModelEntry",
    "SimpleBaseline",
    "StackedHourglass",
    "UnsafeCheckpointError",
    "apply_state_dict",
    "build_model",
    "count_parameters",
    "list_models",
    "load_checkpoint",
    "load_pretrained_backbone",
    "model_from_official_config",
    "read_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    """A model name: its factory, the options the name fixes, and one line about it."""

    factory: Callable[..., nn.Module]
    fixed: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def options(self) -> list[str]:
        """Keyword options ``build_model`` accepts for this name (besides ``num_joints``)."""
        params = inspect.signature(self.factory).parameters
        names = [p for p in params if p != "num_joints" and p not in self.fixed]
        return [*names, "pretrained"]


MODELS: dict[str, ModelEntry] = {
    **{
        f"hrnet_w{w}": ModelEntry(hrnet, {"config": HRNetConfig.official(w)}, f"HRNet-W{w}")
        for w in (32, 48)
    },
    "hrnet_tiny": ModelEntry(
        hrnet, {"config": HRNetConfig.tiny()}, "four-stage HRNet for tests and smoke runs"
    ),
    **{
        f"simple_baseline_r{d}": ModelEntry(
            simple_baseline, {"depth": d}, f"SimpleBaseline: ResNet-{d}, 3 deconvolutions of 256"
        )
        for d in (18, 34, 50, 101, 152)
    },
    "hourglass_4": ModelEntry(
        hourglass, {"num_stacks": 4}, "stacked hourglass, 4 stacks of 256, official layout"
    ),
    "hourglass_8": ModelEntry(
        hourglass, {"num_stacks": 8}, "stacked hourglass, 8 stacks of 256, official layout"
    ),
}


def list_models() -> list[str]:
    """The names :func:`build_model` accepts."""
    return list(MODELS)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (BatchNorm running statistics, being buffers, do not count)."""
    return sum(p.numel() for p in model.parameters())


def build_model(
    name: str,
    num_joints: int = 17,
    *,
    pretrained: str | os.PathLike[str] | None = None,
    **options: Any,
) -> nn.Module:
    """Build a pose network by name.

    Parameters
    ----------
    name : str
        One of :func:`list_models`: ``hrnet_w32``, ``hrnet_w48``, ``hrnet_tiny``,
        ``simple_baseline_r18`` ... ``simple_baseline_r152``, ``hourglass_4``, ``hourglass_8``.
    num_joints : int
        K, the number of heatmaps (COCO 17, MPII 16).
    pretrained : path-like, optional
        A local ImageNet backbone file (HRNet or ResNet) loaded with
        :func:`load_pretrained_backbone`. Nothing is downloaded.
    **options
        Architecture options not fixed by the name, e.g. ``final_conv_kernel=3`` (HRNet,
        SimpleBaseline), ``deconv_channels=(...)`` (SimpleBaseline), ``channels=128`` or
        ``num_blocks=2`` (hourglass). Other HRNet layouts: ``HRNet(num_joints, HRNetConfig(...))``.

    Returns
    -------
    nn.Module
        In training mode, mapping (N, 3, H, W) to (N, K, H/4, W/4) heatmaps.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    entry = MODELS[name]
    fixed = sorted(set(options) & set(entry.fixed))
    if fixed:
        raise ValueError(
            f"model {name!r} fixes {', '.join(fixed)} (build the class directly for other "
            f"values); options left to choose: {', '.join(entry.options())}"
        )
    unknown = sorted(set(options) - set(entry.options()))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option {', '.join(unknown)}; "
            f"its options are: {', '.join(entry.options())}"
        )
    if isinstance(num_joints, bool) or not isinstance(num_joints, int) or num_joints < 1:
        raise ValueError(f"num_joints must be a positive integer, got {num_joints!r}")
    model = entry.factory(num_joints, **entry.fixed, **options)
    if pretrained is not None:
        load_pretrained_backbone(model, pretrained)
    return model


def load_pretrained_backbone(model: nn.Module, path: str | os.PathLike[str]) -> LoadReport:
    """Load ImageNet weights into the backbone layers named by ``model.pretrained_layers``.

    File tensors outside those layers (a classifier, ``fc``) are ignored; tensors inside them
    that the pose model lacks (ImageNet HRNet's multi-scale fuse in its last module) are
    skipped; both are listed in the report and logged. A backbone tensor the file lacks, or
    has with another shape, is an error: the file is not this backbone's.
    """
    layers = getattr(model, "pretrained_layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no pretrained backbone to load")
    report = load_checkpoint(model, path, strict=False, prefixes=layers)
    if report.missing or report.mismatched:
        raise CheckpointMismatchError(
            f"{path} is not a backbone for {type(model).__name__} "
            f"(layers {', '.join(layers)}):\n{report.problems()}",
            report,
        )
    logger.info("pretrained backbone: %s", report.summary())
    return report


def model_from_official_config(
    cfg: Mapping[str, Any], *, source: str | os.PathLike[str] | None = None
) -> nn.Module:
    """Build the model an official DarkPose / HRNet experiment YAML describes.

    Parameters
    ----------
    cfg : mapping
        The parsed YAML (``yaml.safe_load``), or just its ``MODEL`` section. Read:
        ``NAME`` (``pose_hrnet`` or ``pose_resnet``), ``NUM_JOINTS`` (default 17) and
        ``EXTRA`` (HRNet ``STAGE2..4`` and ``FINAL_CONV_KERNEL``; ResNet ``NUM_LAYERS``,
        deconvolution settings and ``FINAL_CONV_KERNEL``). ``PRETRAINED`` is not loaded (its
        paths belong to the original repository); use :func:`load_pretrained_backbone`.
    source : path-like, optional
        The file name, to name in error messages.
    """
    where = f"{source}: " if source is not None else ""
    model_cfg = cfg.get("MODEL", cfg) if isinstance(cfg, Mapping) else None
    if not isinstance(model_cfg, Mapping):
        raise ValueError(f"{where}expected a mapping with a MODEL section")
    name = model_cfg.get("NAME")
    if name is None:
        raise ValueError(f"{where}MODEL.NAME is missing (expected pose_hrnet or pose_resnet)")
    num_joints = model_cfg.get("NUM_JOINTS", 17)
    if isinstance(num_joints, bool) or not isinstance(num_joints, int) or num_joints < 1:
        raise ValueError(f"{where}MODEL.NUM_JOINTS must be a positive integer, got {num_joints!r}")
    extra = model_cfg.get("EXTRA") or {}
    if not isinstance(extra, Mapping):
        raise ValueError(f"{where}MODEL.EXTRA must be a mapping, got {type(extra).__name__}")
    try:
        if name == "pose_hrnet":
            return HRNet(num_joints, hrnet_config_from_official(extra))
        if name == "pose_resnet":
            return SimpleBaseline(num_joints, **simple_baseline_options_from_official(extra))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}{e}") from None
    raise ValueError(f"{where}MODEL.NAME {name!r} is not supported; expected pose_hrnet or "
                     "pose_resnet")
