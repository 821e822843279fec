"""One config tree for every command: dataclass sections, one home for each setting.

An experiment is one YAML file whose top-level keys are the sections below (``model``,
``data``, ``input``, ``target``, ``augment``, ``test``, ``train``) plus ``output_dir``; any
key left out keeps its default. ``load_config(path, overrides)`` reads it (``yaml.safe_load``)
into a :class:`Config`; ``--set key=value`` overrides use dotted keys (``train.lr=5e-4``),
typed by the dataclass field. An unknown key is an error naming it, its file and the closest
valid keys.

Derived settings are not stored twice: the heatmap size, sigma and blur kernel default from
the input size (``None`` = the official recipe's value), and the transform's settings are
built from ``input``, ``target`` and ``augment`` by :func:`transform_config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "AugmentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "InputConfig",
    "ModelConfig",
    "TargetConfig",
    "TestConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "transform_config",
]


class ConfigError(ValueError):
    """A config file or override that cannot be read: names the file, key and expectation."""


@dataclass
class ModelConfig:
    """The network: a registered name (``darkpose models``) and its build options."""

    name: str = "hrnet_w32"
    options: dict[str, Any] = field(default_factory=dict)  # build_model(**options): widths, depths
    init_checkpoint: str | None = None  # weights to start from (official, ImageNet or ours)


@dataclass
class DataConfig:
    """Where the data is. ``dataset``: "coco" (COCO or any COCO-format file) or "mpii".

    Paths left ``None`` follow the official layout under ``root``: COCO
    ``annotations/person_keypoints_<set>.json`` and ``images/<set>/``; MPII
    ``annotations/<set>.json``, ``annotations/gt_<set>.mat`` and ``images/``.
    """

    dataset: str = "coco"
    root: str = "data/coco"
    metadata: str = "coco"  # builtin name ("coco", "mpii") or a metadata JSON file
    train_set: str = "train2017"
    val_set: str = "val2017"
    train_ann: str | None = None
    train_images: str | None = None
    val_ann: str | None = None
    val_images: str | None = None
    color: str = "rgb"
    workers: int = 4


@dataclass
class InputConfig:
    """The crop fed to the network; ``image_size`` and ``heatmap_size`` are (W, H)."""

    image_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] | None = None  # default image_size // 4
    convention: str = "darkpose"  # "darkpose" or "hrnet" (darkpose.geometry)


@dataclass
class TargetConfig:
    """Training targets (darkpose.codec.encode)."""

    method: str = "unbiased"  # or "quantized" (HRNet's)
    sigma: float | None = None  # default H / 128: 1, 2, 3 at 128x96, 256x192, 384x288
    use_joint_weights: bool = False


@dataclass
class AugmentConfig:
    """Training augmentation (DESIGN.md section 4)."""

    flip_prob: float = 0.5
    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 8
    half_body_upper_prob: float = 0.5
    color_jitter: float = 0.0


@dataclass
class TestConfig:
    """Evaluation: boxes, flip test, decode, rescoring and NMS (DESIGN.md section 4)."""

    decode: str = "dark"  # darkpose.codec.DECODE_METHODS
    blur_kernel: int | None = None  # default 3 at input height <= 128, else 11
    flip_test: bool = True
    use_gt_boxes: bool = True
    detections: str | None = None  # COCO results JSON of person boxes when use_gt_boxes is off
    det_score_threshold: float = 0.0  # official IMAGE_THRE
    in_vis_thre: float = 0.2
    nms: str = "oks"  # "oks", "soft" or "none"
    oks_thre: float = 0.9
    batch_size: int = 32


@dataclass
class TrainConfig:
    """Optimisation (DESIGN.md section 4: Adam, lr 1e-3, x0.1 at 170 and 200 of 210)."""

    epochs: int = 210
    batch_size: int = 32  # per process
    optimizer: str = "adam"  # "adam", "adamw" or "sgd"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD
    nesterov: bool = False
    schedule: str = "multistep"  # "multistep" or "cosine"
    lr_steps: tuple[int, ...] = (170, 200)
    lr_factor: float = 0.1
    warmup_epochs: float = 0.0
    grad_clip: float | None = None
    loss: str = "mse"  # "mse" (JointsMSELoss) or "ohkm"
    amp: str = "none"  # "none", "bf16", "fp16" (CUDA only)
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    val_every: int = 10
    sync_batchnorm: bool = False


@dataclass
class Config:
    """The whole experiment."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    input: InputConfig = field(default_factory=InputConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    test: TestConfig = field(default_factory=TestConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = "runs/experiment"


# -- reading -------------------------------------------------------------------------------


def _closest(key: str, valid: list[str]) -> str:
    near = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(near)}?" if near else f"; valid keys: {', '.join(valid)}"


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the annotated type ``hint`` (the few types the config uses)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: unexpected {value!r}")
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {hint!r}")  # pragma: no cover


def _fill(cls: type, raw: Any, where: str, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {prefix or 'the file'} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{where}: unknown key '{dotted}'{_closest(str(key), names)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = _fill(hint, value, where, f"{dotted}.")
        else:
            values[key] = _coerce(value, hint, f"{where}: {dotted}")
    return cls(**values)


def config_from_dict(raw: Any, where: str = "config") -> Config:
    """A :class:`Config` from a parsed YAML mapping (sections may be partial or absent)."""
    return _fill(Config, {} if raw is None else raw, where, "")


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain data (lists for tuples) that :func:`config_from_dict` reads back unchanged."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def apply_overrides(cfg: Config, overrides: list[str] | tuple[str, ...], where: str = "--set") -> Config:
    """A new config with ``key=value`` overrides applied (dotted keys; values in YAML syntax)."""
    raw = config_to_dict(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{where} {item!r}: expected key=value, e.g. train.lr=5e-4")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{where} {item!r}: the value is not valid YAML ({e})") from None
        node = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict) or part not in node:
                valid = [k for k, v in node.items() if isinstance(v, dict)]
                raise ConfigError(f"{where} {item!r}: unknown section '{'.'.join(parts[: i + 1])}'"
                                  f"{_closest(part, valid)}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"{where} {item!r}: unknown key '{key}'{_closest(parts[-1], list(node))}")
        node[parts[-1]] = value
    return config_from_dict(raw, where)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read an experiment YAML file (``yaml.safe_load``) and apply ``--set`` overrides."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config file ({e})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    cfg = config_from_dict(raw, str(path))
    return apply_overrides(cfg, overrides) if overrides else cfg


def transform_config(cfg: Config, targets: str = "batch"):
    """The :class:`darkpose.data.TransformConfig` of this experiment (its only source)."""
    from darkpose.data.transforms import TransformConfig

    return TransformConfig(
        image_size=tuple(cfg.input.image_size),
        heatmap_size=None if cfg.input.heatmap_size is None else tuple(cfg.input.heatmap_size),
        sigma=cfg.target.sigma,
        convention=cfg.input.convention,
        encode_method=cfg.target.method,
        targets=targets,
        use_joint_weights=cfg.target.use_joint_weights,
        **dataclasses.asdict(cfg.augment),
    )
