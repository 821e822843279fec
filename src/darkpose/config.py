"""One config tree for every command: dataclass sections, one home for each setting.

An experiment is one YAML file whose top-level keys are the sections below (``model``,
``data``, ``input``, ``target``, ``augment``, ``test``, ``train``) plus ``output_dir``; any
key left out keeps its default. ``load_config(path, overrides)`` reads it (``yaml.safe_load``)
into a :class:`Config`, applies ``--set key=value`` overrides (dotted keys, typed by the
dataclass field: ``train.lr=5e-4``) and validates the result (:func:`validate_config`). An
unknown key is an error naming it, its file and the closest valid keys; a bad value names
the file and the field.

An official HRNet/DarkPose yacs experiment (upper-case ``MODEL``, ``DATASET``, ...) is read
unchanged by :func:`config_from_official`, which also returns the official keys that have no
effect here (``load_config(..., ignored=list)``). docs/config.md has the tree and the mapping.

Derived settings are not stored twice: the heatmap size, sigma and blur kernel default from
the input size (``None`` = the official recipe's value), and the transform's settings are
built from ``input``, ``target`` and ``augment`` by :func:`transform_config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from darkpose.data.transforms import Augmentation

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
    "CHOICES",
    "MODEL_STRIDE",
    "OFFICIAL_DEFAULTS",
    "apply_overrides",
    "blur_kernel",
    "config_from_dict",
    "config_from_official",
    "config_to_dict",
    "default_blur_kernel",
    "ignored_keys_message",
    "is_official",
    "load_config",
    "transform_config",
    "validate_config",
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
    ``annot/<set>.json``, ``annot/gt_<set>.mat`` and ``images/`` (the official HRNet layout).
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


AugmentConfig = Augmentation
"""Training augmentation (DESIGN.md section 4): the data layer's
:class:`darkpose.data.transforms.Augmentation`, used here as the ``augment`` section, so its
defaults and checks have one home."""


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
    val_every: int = 10  # validate every N epochs (and after the last); 0: never
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


# scalar field type -> (what it accepts, how the error names it); bool is no int or float here
_SCALARS: dict[type, tuple[Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    str: (lambda v: isinstance(v, str), "a string"),
}


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
    if hint in _SCALARS:
        if hint is float and isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        accepts, what = _SCALARS[hint]
        if not accepts(value):
            raise ConfigError(f"{where}: expected {what}, got {value!r}")
        return float(value) if hint is float else value
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
    try:
        return cls(**values)
    except ValueError as e:  # a section that checks its own values (augment): names the field
        raise ConfigError(f"{where}: {prefix}{e}") from None


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


def _set_dotted(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set ``raw[a][b]... = value`` for ``key`` "a.b...", the keys checked against the
    dataclass tree; below a mapping field (``model.options``) any key is accepted."""
    node, cls = raw, Config
    parts = key.split(".")
    for i, part in enumerate(parts):
        dotted = ".".join(parts[: i + 1])
        if cls is not None:
            names = [f.name for f in dataclasses.fields(cls)]
            if part not in names:
                raise ConfigError(f"{where}: unknown key '{dotted}'{_closest(part, names)}")
            hint = typing.get_type_hints(cls)[part]
            cls = hint if dataclasses.is_dataclass(hint) else None
            free = hint is dict or typing.get_origin(hint) is dict
            if i < len(parts) - 1 and cls is None and not free:
                raise ConfigError(f"{where}: '{dotted}' is a value, not a section")
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: '{dotted}' is {node!r}, not a mapping")


def apply_overrides(cfg: Config, overrides: list[str] | tuple[str, ...], where: str = "--set") -> Config:
    """A new config with ``key=value`` overrides applied (dotted keys; values in YAML syntax)."""
    raw = config_to_dict(cfg)
    for item in overrides:  # each one read at once, so that a type error names it
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{where} {item!r}: expected key=value, e.g. train.lr=5e-4")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{where} {item!r}: the value is not valid YAML ({e})") from None
        _set_dotted(raw, key, value, f"{where} {item!r}")
        cfg = config_from_dict(raw, f"{where} {item!r}")
    return cfg


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config file ({e})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None


def is_official(raw: Any) -> bool:
    """Whether a parsed YAML file is an official HRNet/DarkPose (yacs) experiment: its
    top-level keys are upper case (``MODEL``, ``DATASET``, ``TRAIN``, ...). A file that mixes
    upper-case and darkpose keys is an error."""
    if not isinstance(raw, dict) or not raw:
        return False
    upper = [str(k) for k in raw if str(k).isupper()]
    if upper and len(upper) < len(raw):
        lower = [str(k) for k in raw if not str(k).isupper()]
        raise ConfigError(f"mixes official upper-case keys ({', '.join(upper)}) with darkpose "
                          f"keys ({', '.join(lower)}); use one format")
    return bool(upper)


def load_config(
    path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    ignored: list[str] | None = None,
) -> Config:
    """Read an experiment YAML file, apply ``--set`` overrides and validate the result.

    The file is ours (lower-case sections, :class:`Config`) or an official HRNet/DarkPose
    yacs experiment (upper-case ``MODEL``, ``DATASET``, ... read by
    :func:`config_from_official`). Nothing is printed: pass a list as ``ignored`` to receive
    the dotted names of the official keys that have no effect here (empty for our files);
    commands print them with :func:`ignored_keys_message`.

    Raises :class:`ConfigError` naming the file and the key for an unknown key, a value of
    the wrong type or a value out of range (:func:`validate_config`).
    """
    path = Path(path)
    raw = _read_yaml(path)
    try:
        official = is_official(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    if official:
        cfg, skipped = config_from_official(raw, str(path))
        if ignored is not None:
            ignored.extend(skipped)
    else:
        cfg = config_from_dict(raw, str(path))
    if overrides:
        cfg = apply_overrides(cfg, overrides, f"{path}: --set")
    validate_config(cfg, f"{path} (with --set {' '.join(overrides)})" if overrides else str(path))
    return cfg


def ignored_keys_message(path: str | Path, ignored: list[str]) -> str | None:
    """The one warning line a command prints for the ignored official keys (None if none)."""
    if not ignored:
        return None
    return f"warning: {path}: official keys with no effect here, ignored: {', '.join(ignored)}"


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
        augment=cfg.augment,
    )


# -- validation ----------------------------------------------------------------------------

CHOICES: dict[str, tuple[str, ...]] = {
    "data.dataset": ("coco", "mpii"),
    "data.color": ("rgb", "bgr"),
    "test.nms": ("oks", "soft", "none"),
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.schedule": ("multistep", "cosine"),
    "train.loss": ("mse", "ohkm"),
    "train.amp": ("none", "bf16", "fp16"),
}
"""The allowed values of the config's string choices (``target.method`` and ``test.decode``
take the codec's ``ENCODE_METHODS`` and ``DECODE_METHODS``, ``input.convention`` the
geometry's ``CONVENTIONS``)."""

# (field, low, high, open at low, open at high); None values are allowed where the field is optional
_RANGES: tuple[tuple[str, float, float, bool, bool], ...] = (
    ("data.workers", 0, math.inf, False, True),
    ("test.det_score_threshold", 0, 1, False, False),
    ("test.in_vis_thre", 0, 1, False, False),
    ("test.oks_thre", 0, 1, True, False),
    ("test.batch_size", 1, math.inf, False, True),
    ("train.epochs", 1, math.inf, False, True),
    ("train.batch_size", 1, math.inf, False, True),
    ("train.lr", 0, math.inf, True, True),
    ("train.weight_decay", 0, math.inf, False, True),
    ("train.momentum", 0, 1, False, True),
    ("train.lr_factor", 0, 1, True, False),
    ("train.warmup_epochs", 0, math.inf, False, True),
    ("train.grad_clip", 0, math.inf, True, True),
    ("train.val_every", 0, math.inf, False, True),  # 0: no validation
)

# TransformConfig field -> the config field it comes from (to name the latter in errors)
_TRANSFORM_FIELDS = {
    "image_size": "input.image_size",
    "heatmap_size": "input.heatmap_size",
    "convention": "input.convention",
    "sigma": "target.sigma",
    "encode_method": "target.method",
    "use_joint_weights": "target.use_joint_weights",
}

MODEL_STRIDE = 4
"""Every model here gives heatmaps at 1/4 of the input size."""


def default_blur_kernel(image_size: tuple[int, int]) -> int:
    """DARK decode blur kernel of the official configs (``TEST.BLUR_KERNEL``): 3 at 128x96
    (input height up to 128), 11 at 256x192, 256x256 and 384x288. ``image_size`` is (W, H)."""
    return 3 if image_size[1] <= 128 else 11


def blur_kernel(cfg: Config) -> int:
    """``cfg.test.blur_kernel``, or :func:`default_blur_kernel` of the input size when None."""
    if cfg.test.blur_kernel is not None:
        return cfg.test.blur_kernel
    return default_blur_kernel(tuple(cfg.input.image_size))


def _value(cfg: Config, dotted: str) -> Any:
    section, name = dotted.split(".")
    return getattr(getattr(cfg, section), name)


def _choice(value: Any, valid: list[str] | tuple[str, ...], where: str, dotted: str) -> None:
    if value not in valid:
        near = difflib.get_close_matches(str(value), [str(v) for v in valid], n=1, cutoff=0.5)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"{where}: {dotted}: expected one of {', '.join(map(str, valid))}, "
                          f"got {value!r}{hint}")


def validate_config(cfg: Config, where: str = "config") -> None:
    """Check the values of ``cfg``; raise :class:`ConfigError` naming ``where`` (the file)
    and the field. Types are checked on reading (:func:`config_from_dict`); this checks
    choices, ranges, and what the model and the transform need (the input size a multiple of
    what the model needs, heatmaps at 1/4 of it, sigma at least the codec's ``MIN_SIGMA``, the
    blur kernel odd within ``MAX_BLUR_KERNEL``). Paths are checked by the commands that read
    them (:func:`darkpose.engine.data.build_dataset`), not here.
    """
    from darkpose.codec import DECODE_METHODS, ENCODE_METHODS, MAX_BLUR_KERNEL
    from darkpose.engine.model import input_multiple, model_names, model_option_names
    from darkpose.geometry import CONVENTIONS

    for dotted, valid in {**CHOICES, "target.method": ENCODE_METHODS, "test.decode": DECODE_METHODS,
                          "input.convention": CONVENTIONS}.items():
        _choice(_value(cfg, dotted), valid, where, dotted)
    for dotted, low, high, low_open, high_open in _RANGES:
        v = _value(cfg, dotted)
        ok = v is None or math.isfinite(v) and (low < v if low_open else low <= v) and (
            v < high if high_open else v <= high)
        if not ok:
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise ConfigError(f"{where}: {dotted}: expected a number in {interval}, got {v!r}")
    steps = cfg.train.lr_steps
    if any(s < 1 for s in steps) or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ConfigError(f"{where}: train.lr_steps: expected increasing epochs from 1, got "
                          f"{list(steps)}")
    k = cfg.test.blur_kernel
    if k is not None and not (1 <= k <= MAX_BLUR_KERNEL and k % 2 == 1):
        raise ConfigError(f"{where}: test.blur_kernel: expected an odd integer from 1 to "
                          f"{MAX_BLUR_KERNEL} (or null for the default), got {k!r}")
    if not cfg.output_dir:
        raise ConfigError(f"{where}: output_dir: expected a folder name, got {cfg.output_dir!r}")
    _choice(cfg.model.name, model_names(), where, "model.name")
    valid_options = model_option_names(cfg.model.name)
    for key in cfg.model.options:
        if key not in valid_options:
            raise ConfigError(f"{where}: unknown key 'model.options.{key}' for model "
                              f"{cfg.model.name!r}{_closest(str(key), valid_options)}")
    try:
        tc = transform_config(cfg)
    except ValueError as e:
        message = str(e)
        name = message.replace(":", " ").split(" ")[0]
        if name in _TRANSFORM_FIELDS:
            message = _TRANSFORM_FIELDS[name] + message[len(name):]
        raise ConfigError(f"{where}: {message}") from None
    w, h = tc.image_size
    expected = (w // MODEL_STRIDE, h // MODEL_STRIDE)
    if tc.heatmap_size != expected or w % MODEL_STRIDE or h % MODEL_STRIDE:
        raise ConfigError(f"{where}: input.heatmap_size: the models give heatmaps of 1/"
                          f"{MODEL_STRIDE} of the input: expected {list(expected)} for "
                          f"input.image_size {[w, h]} (multiples of {MODEL_STRIDE}), got "
                          f"{list(tc.heatmap_size)}")
    multiple = input_multiple(cfg.model.name)
    if w % multiple or h % multiple:
        raise ConfigError(f"{where}: input.image_size: {cfg.model.name} needs a width and height "
                          f"that are multiples of {multiple}, got {[w, h]}")


# -- official HRNet / DarkPose (yacs) experiment files -------------------------------------

OFFICIAL_DEFAULTS: dict[str, Any] = {
    "OUTPUT_DIR": "", "LOG_DIR": "", "DATA_DIR": "", "GPUS": None, "WORKERS": 4,  # GPUS: (0,)
    "PRINT_FREQ": 20, "AUTO_RESUME": False, "PIN_MEMORY": True, "RANK": 0,
    "CUDNN.BENCHMARK": True, "CUDNN.DETERMINISTIC": False, "CUDNN.ENABLED": True,
    "MODEL.NAME": "pose_hrnet", "MODEL.INIT_WEIGHTS": True, "MODEL.PRETRAINED": "",
    "MODEL.NUM_JOINTS": 17, "MODEL.TAG_PER_JOINT": True, "MODEL.TARGET_TYPE": "gaussian",
    "MODEL.IMAGE_SIZE": [256, 256], "MODEL.HEATMAP_SIZE": [64, 64], "MODEL.SIGMA": 2,
    "MODEL.EXTRA": {},
    "LOSS.USE_OHKM": False, "LOSS.TOPK": 8, "LOSS.USE_TARGET_WEIGHT": True,
    "LOSS.USE_DIFFERENT_JOINTS_WEIGHT": False,
    "DATASET.ROOT": "", "DATASET.DATASET": "mpii", "DATASET.TRAIN_SET": "train",
    "DATASET.TEST_SET": "valid", "DATASET.DATA_FORMAT": "jpg", "DATASET.HYBRID_JOINTS_TYPE": "",
    "DATASET.SELECT_DATA": False, "DATASET.FLIP": True, "DATASET.SCALE_FACTOR": 0.25,
    "DATASET.ROT_FACTOR": 30, "DATASET.PROB_HALF_BODY": 0.0, "DATASET.NUM_JOINTS_HALF_BODY": 8,
    "DATASET.COLOR_RGB": False,
    "TRAIN.LR_FACTOR": 0.1, "TRAIN.LR_STEP": [90, 110], "TRAIN.LR": 0.001,
    "TRAIN.OPTIMIZER": "adam", "TRAIN.MOMENTUM": 0.9, "TRAIN.WD": 0.0001,
    "TRAIN.NESTEROV": False, "TRAIN.GAMMA1": 0.99, "TRAIN.GAMMA2": 0.0, "TRAIN.BEGIN_EPOCH": 0,
    "TRAIN.END_EPOCH": 140, "TRAIN.RESUME": False, "TRAIN.CHECKPOINT": "",
    "TRAIN.BATCH_SIZE_PER_GPU": 32, "TRAIN.SHUFFLE": True,
    "TEST.BATCH_SIZE_PER_GPU": 32, "TEST.FLIP_TEST": False, "TEST.POST_PROCESS": False,
    "TEST.SHIFT_HEATMAP": False, "TEST.USE_GT_BBOX": False, "TEST.IMAGE_THRE": 0.1,
    "TEST.NMS_THRE": 0.6, "TEST.SOFT_NMS": False, "TEST.OKS_THRE": 0.5, "TEST.IN_VIS_THRE": 0.0,
    "TEST.COCO_BBOX_FILE": "", "TEST.BBOX_THRE": 1.0, "TEST.MODEL_FILE": "",
    "TEST.BLUR_KERNEL": 11,
    "DEBUG.DEBUG": False, "DEBUG.SAVE_BATCH_IMAGES_GT": False,
    "DEBUG.SAVE_BATCH_IMAGES_PRED": False, "DEBUG.SAVE_HEATMAPS_GT": False,
    "DEBUG.SAVE_HEATMAPS_PRED": False,
}
"""Every key of the official yacs config (HRNet ``lib/config/default.py`` plus DarkPose's
``TEST.BLUR_KERNEL``) with its default, which a key left out of a file takes (yacs merges
the file into these). ``MODEL.EXTRA`` is free-form (the network's layout); ``GPUS``, which
files write as a string ``(0,1,2,3)``, takes any value (it is ignored)."""


def _official_type(default: Any) -> tuple[type, ...] | None:
    """The types a value of an official key with this default may have (None: any)."""
    if default is None:
        return None
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, (int, float)):
        return (int, float)
    return (list, tuple) if isinstance(default, (list, tuple)) else (type(default),)

_EXTRA_READ = {
    # MODEL.EXTRA keys the model builders read, per MODEL.NAME (STAGEn.* for HRNet)
    "pose_hrnet": {"FINAL_CONV_KERNEL"},
    "pose_resnet": {"FINAL_CONV_KERNEL", "NUM_LAYERS", "NUM_DECONV_LAYERS", "NUM_DECONV_FILTERS",
                    "NUM_DECONV_KERNELS", "DECONV_WITH_BIAS"},
}
_STAGE_READ = {"NUM_MODULES", "NUM_BRANCHES", "NUM_BLOCKS", "NUM_CHANNELS", "BLOCK", "FUSE_METHOD"}


def _flatten_official(raw: dict, where: str) -> dict[str, Any]:
    """Dotted key -> value of an official file, checked against :data:`OFFICIAL_DEFAULTS`
    as yacs does (an unknown key is an error, with the closest official keys)."""
    sections = {k.split(".")[0] for k in OFFICIAL_DEFAULTS if "." in k}
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key}: expected a mapping, got {value!r}")
            items = {f"{key}.{k}": v for k, v in value.items()}
        else:
            items = {str(key): value}
        for dotted, v in items.items():
            if dotted not in OFFICIAL_DEFAULTS:
                level = [k for k in OFFICIAL_DEFAULTS if k.count(".") == dotted.count(".")
                         and k.rsplit(".", 1)[0] == dotted.rsplit(".", 1)[0]] or list(OFFICIAL_DEFAULTS)
                raise ConfigError(f"{where}: unknown official key '{dotted}'{_closest(dotted, level)}")
            types_ = _official_type(OFFICIAL_DEFAULTS[dotted])
            if types_ is not None and (not isinstance(v, types_) or isinstance(v, bool) and bool not in types_):
                default = OFFICIAL_DEFAULTS[dotted]
                raise ConfigError(f"{where}: {dotted}: expected a value like the official default "
                                  f"{default!r}, got {v!r}")
            flat[dotted] = v
    return flat


def config_from_official(raw: Any, where: str = "config") -> tuple[Config, list[str]]:
    """Our :class:`Config` from a parsed official HRNet/DarkPose experiment file, and the
    dotted names of the keys in the file that have no effect here (never dropped silently).

    Keys left out take the official defaults. The mapping (docs/config.md has the table):
    ``DATASET`` -> ``data`` and ``augment`` (``ROOT`` joined to ``DATA_DIR`` as the official
    code does, the official folder layout under it), ``MODEL`` -> ``model``, ``input`` and
    ``target`` (the network built exactly: :func:`darkpose.engine.model.model_section_from_official`),
    ``LOSS`` and ``TRAIN`` -> ``train``, ``TEST`` -> ``test``, ``OUTPUT_DIR`` -> ``output_dir``
    (``OUTPUT_DIR/<dataset>/<model>/<file name>`` as the official code lays it out),
    ``WORKERS`` -> ``data.workers`` (at most this machine's CPU count). The geometry stays the
    darkpose convention (the DARK checkpoints'); HRNet-trained checkpoints need
    ``--set input.convention=hrnet``. A value the official code would refuse, or that we
    cannot honour (another target type or network), is a :class:`ConfigError`.
    """
    from darkpose.data.keypoint_metadata import load_metadata
    from darkpose.engine.model import model_section_from_official

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the file must be a mapping, got {type(raw).__name__}")
    flat = _flatten_official(raw, where)
    used: set[str] = set()

    def take(key: str) -> Any:
        used.add(key)
        return flat.get(key, OFFICIAL_DEFAULTS[key])

    def accept(key: str, value: Any) -> None:  # a key whose value is what we do anyway
        if flat.get(key, value) == value:
            used.add(key)

    dataset = take("DATASET.DATASET")
    if dataset not in ("coco", "mpii"):
        raise ConfigError(f"{where}: DATASET.DATASET: expected 'coco' or 'mpii', got {dataset!r}")
    data_dir = take("DATA_DIR")
    hybrid = take("DATASET.HYBRID_JOINTS_TYPE")
    model_name = take("MODEL.NAME")
    d: dict[str, Any] = {
        "data": {
            "dataset": dataset,
            "metadata": dataset,
            "root": str(Path(data_dir, take("DATASET.ROOT"))),
            "train_set": take("DATASET.TRAIN_SET"),
            "val_set": take("DATASET.TEST_SET"),
            "color": "rgb" if take("DATASET.COLOR_RGB") else "bgr",
            "workers": min(take("WORKERS"), os.cpu_count() or 1),
        },
        "augment": {
            "flip_prob": 0.5 if take("DATASET.FLIP") else 0.0,
            "scale_factor": take("DATASET.SCALE_FACTOR"),
            "rotation_factor": take("DATASET.ROT_FACTOR"),
            "half_body_prob": max(0.0, take("DATASET.PROB_HALF_BODY")),  # official: < 0 = off
            "half_body_min_keypoints": take("DATASET.NUM_JOINTS_HALF_BODY"),
        },
        "input": {"image_size": take("MODEL.IMAGE_SIZE"), "heatmap_size": take("MODEL.HEATMAP_SIZE")},
        "target": {"sigma": take("MODEL.SIGMA"),
                   "use_joint_weights": take("LOSS.USE_DIFFERENT_JOINTS_WEIGHT")},
        "train": {
            "epochs": take("TRAIN.END_EPOCH"),
            "batch_size": take("TRAIN.BATCH_SIZE_PER_GPU"),
            "optimizer": take("TRAIN.OPTIMIZER"),
            "lr": take("TRAIN.LR"),
            "lr_steps": take("TRAIN.LR_STEP"),
            "lr_factor": take("TRAIN.LR_FACTOR"),
            "loss": "ohkm" if take("LOSS.USE_OHKM") else "mse",
        },
        "test": {
            "batch_size": take("TEST.BATCH_SIZE_PER_GPU"),
            "flip_test": take("TEST.FLIP_TEST"),
            "blur_kernel": take("TEST.BLUR_KERNEL"),
            "decode": "dark",  # DarkPose's get_final_preds always decodes with DARK
        },
        "output_dir": str(Path(take("OUTPUT_DIR"), f"{dataset}_{hybrid}" if hybrid else dataset,
                               str(model_name), Path(where).name.split(".")[0])),
    }
    if d["train"]["optimizer"] == "sgd":  # the official Adam ignores WD, MOMENTUM and NESTEROV
        d["train"].update(weight_decay=take("TRAIN.WD"), momentum=take("TRAIN.MOMENTUM"),
                          nesterov=take("TRAIN.NESTEROV"))
    if dataset == "coco":  # the official MPII evaluation always uses the ground-truth boxes
        bbox_file = take("TEST.COCO_BBOX_FILE")
        d["test"].update(
            use_gt_boxes=take("TEST.USE_GT_BBOX"),
            detections=bbox_file or None,
            det_score_threshold=take("TEST.IMAGE_THRE"),
            in_vis_thre=take("TEST.IN_VIS_THRE"),
            oks_thre=take("TEST.OKS_THRE"),
            nms="soft" if take("TEST.SOFT_NMS") else "oks",
        )
    target_type = take("MODEL.TARGET_TYPE")
    if target_type != "gaussian":
        raise ConfigError(f"{where}: MODEL.TARGET_TYPE: only 'gaussian' heatmaps are supported, "
                          f"got {target_type!r}")
    d["target"]["method"] = "unbiased"  # DarkPose's generate_target (sub-pixel centres)
    pretrained = take("MODEL.PRETRAINED")
    if take("MODEL.INIT_WEIGHTS") and pretrained:
        d["model"] = {"init_checkpoint": str(Path(data_dir, pretrained))}
    num_joints = take("MODEL.NUM_JOINTS")
    expected = load_metadata(dataset).num_keypoints
    if num_joints != expected:
        raise ConfigError(f"{where}: MODEL.NUM_JOINTS: {dataset} has {expected} keypoints, got "
                          f"{num_joints!r}; for another keypoint set convert the file and set "
                          "data.metadata to its metadata JSON")
    model = {"NAME": model_name, "EXTRA": take("MODEL.EXTRA")}
    if not isinstance(model["EXTRA"], dict):
        raise ConfigError(f"{where}: MODEL.EXTRA: expected a mapping, got {model['EXTRA']!r}")
    try:
        name, options = model_section_from_official(model)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    d.setdefault("model", {}).update(name=name, options=options)
    for key, value in (("AUTO_RESUME", False), ("DATASET.DATA_FORMAT", "jpg"),
                       ("DATASET.SELECT_DATA", False), ("LOSS.USE_TARGET_WEIGHT", True),
                       ("LOSS.TOPK", 8), ("TRAIN.SHUFFLE", True), ("TRAIN.BEGIN_EPOCH", 0),
                       ("TRAIN.RESUME", False), ("TRAIN.CHECKPOINT", ""),
                       ("TEST.SHIFT_HEATMAP", False), ("TEST.MODEL_FILE", "")):
        accept(key, value)
    cfg = config_from_dict(d, where)
    ignored = [k for k in flat if k not in used and k != "MODEL.EXTRA"]
    read = _EXTRA_READ.get(model_name, set())
    for key, value in model["EXTRA"].items():
        stage = model_name == "pose_hrnet" and key.startswith("STAGE") and isinstance(value, dict)
        if stage:
            ignored += [f"MODEL.EXTRA.{key}.{k}" for k in value if k not in _STAGE_READ]
        elif key not in read:
            ignored.append(f"MODEL.EXTRA.{key}")
    return cfg, ignored
