"""The network of an experiment, built from its config.

``model.name`` is a registered name (``darkpose models``: ``hrnet_w32``, ``simple_baseline_r50``,
``hourglass_8``, ...) whose ``model.options`` are the keyword options of
:func:`darkpose.models.build_model`, or ``"hrnet"``: an HRNet of any layout, its options the
fields of :class:`darkpose.models.HRNetConfig` in plain YAML::

    model:
      name: hrnet
      options:
        width: 16                # the official stage layout at another width, or:
        stages:                  # every stage spelled out (HRNetStage fields)
          - {num_modules: 1, num_blocks: [4, 4], num_channels: [32, 64]}
          - ...
        stage1: {num_modules: 1, num_blocks: [4], num_channels: [64], block: BOTTLENECK}
        stem_channels: 64
        final_conv_kernel: 1

An official YAML's ``MODEL`` section maps to the registered name when its ``EXTRA`` is that
layout exactly (HRNet-W32/W48, SimpleBaseline-R18..152), else to ``"hrnet"`` with the layout
written out (:func:`model_section_from_official`): either way the official architecture.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from darkpose.config import Config, ConfigError

__all__ = [
    "HRNET_OPTIONS",
    "build_model_from_config",
    "hrnet_config_from_options",
    "input_multiple",
    "model_names",
    "model_option_names",
    "model_section_from_official",
]

HRNET_OPTIONS = ("width", "stages", "stage1", "stem_channels", "final_conv_kernel")
"""Options of the ``"hrnet"`` model name (``width`` or ``stages``, not both)."""


def model_names() -> list[str]:
    """The names ``model.name`` accepts: the registered ones and ``"hrnet"``."""
    from darkpose.models import list_models

    return [*list_models(), "hrnet"]


def model_option_names(name: str) -> list[str]:
    """The keys ``model.options`` accepts for ``name`` (one of :func:`model_names`)."""
    from darkpose.models import MODELS

    return list(HRNET_OPTIONS) if name == "hrnet" else MODELS[name].options()


def input_multiple(name: str) -> int:
    """What the input width and height must be multiples of for heatmaps of exactly 1/4 of
    them: 32 for SimpleBaseline (its ResNet reaches stride 32 before three deconvolutions
    double it back), 4 for HRNet and the hourglass (their layers follow any size)."""
    from darkpose.models import MODELS, simple_baseline

    return 32 if name != "hrnet" and MODELS[name].factory is simple_baseline else 4


def hrnet_config_from_options(options: Mapping[str, Any]):
    """:class:`HRNetConfig` from the options of the ``"hrnet"`` model name (the default
    official layout of width 32 where neither ``width`` nor ``stages`` is given)."""
    from darkpose.models import HRNetConfig, HRNetStage

    opts = dict(options)
    width = opts.pop("width", None)
    if width is not None and "stages" in opts:
        raise ValueError("give either width (the official layout at that width) or stages")
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
        raise ValueError(f"width: expected a positive integer, got {width!r}")
    fields = {}
    try:
        if width is not None:
            fields["stages"] = HRNetConfig.official(width).stages
        if "stages" in opts:
            fields["stages"] = tuple(HRNetStage(**s) for s in opts.pop("stages"))
        if "stage1" in opts:
            fields["stage1"] = HRNetStage(**opts.pop("stage1"))
        return HRNetConfig(**fields, **opts)
    except TypeError as e:  # a stage that is not a mapping of HRNetStage fields
        raise ValueError(f"stages/stage1: expected mappings of num_modules, num_blocks, "
                         f"num_channels, block, fuse_method ({e})") from None


def _hrnet_options(config) -> dict[str, Any]:
    """The options of the ``"hrnet"`` name that build ``config`` (plain data, lists)."""
    def stage(s) -> dict[str, Any]:
        return {"num_modules": s.num_modules, "num_blocks": list(s.num_blocks),
                "num_channels": list(s.num_channels), "block": s.block}

    return {
        "stages": [stage(s) for s in config.stages],
        "stage1": stage(config.stage1),
        "stem_channels": config.stem_channels,
        "final_conv_kernel": config.final_conv_kernel,
    }


def model_section_from_official(model: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(model.name, model.options)`` that build exactly the network of an official
    ``MODEL`` section (``NAME`` pose_hrnet or pose_resnet, its ``EXTRA``).

    The registered name when the layout is one (options only where they differ from the
    name's defaults), else ``"hrnet"`` with every stage written out. Raises ValueError
    naming the official key that does not describe a network.
    """
    from darkpose.models import (
        HRNetConfig,
        hrnet_config_from_official,
        simple_baseline,
        simple_baseline_options_from_official,
    )

    name, extra = model.get("NAME"), model.get("EXTRA") or {}
    if name == "pose_hrnet":
        config = hrnet_config_from_official(extra)
        for width in (32, 48):
            if config == HRNetConfig.official(width, config.final_conv_kernel):
                kernel = config.final_conv_kernel
                return f"hrnet_w{width}", {} if kernel == 1 else {"final_conv_kernel": kernel}
        return "hrnet", _hrnet_options(config)
    if name == "pose_resnet":
        options = simple_baseline_options_from_official(extra)
        defaults = {p.name: p.default for p in inspect.signature(simple_baseline).parameters.values()}
        depth = options.pop("depth")
        if f"simple_baseline_r{depth}" not in model_names():
            raise ValueError(f"MODEL.EXTRA.NUM_LAYERS: expected 18, 34, 50, 101 or 152, got {depth}")
        changed = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()
                   if v != defaults[k]}
        return f"simple_baseline_r{depth}", changed
    raise ValueError(f"MODEL.NAME: expected pose_hrnet or pose_resnet, got {name!r}")


def build_model_from_config(cfg: Config, num_joints: int):
    """The network of ``cfg.model`` with ``num_joints`` heatmaps: ``build_model(name,
    num_joints, **options)``, or an :class:`HRNet` of the layout the ``"hrnet"`` options give.
    A config error names ``model.name`` / ``model.options`` when they do not build."""
    from darkpose.models import HRNet, build_model

    name, options = cfg.model.name, dict(cfg.model.options)
    try:
        if name == "hrnet":
            return HRNet(num_joints, hrnet_config_from_options(options))
        return build_model(name, num_joints, **options)
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"model: cannot build {name!r} with options {cfg.model.options}: {e}") from None

