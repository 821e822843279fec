"""The network of an experiment, built from its config."""

from __future__ import annotations

from darkpose.config import Config, ConfigError

__all__ = ["build_model_from_config"]


def build_model_from_config(cfg: Config, num_joints: int):
    """``build_model(cfg.model.name, num_joints, **cfg.model.options)``, with a config error
    naming ``model.name`` / ``model.options`` when they do not build."""
    from darkpose.models import build_model

    try:
        return build_model(cfg.model.name, num_joints, **cfg.model.options)
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"model: cannot build {cfg.model.name!r} with options {cfg.model.options}: {e}") from None
