"""Model weights in and out: official, training, mmpose, ImageNet and darkpose checkpoints.

Reading (:func:`load_checkpoint`) takes any of

- a plain state_dict, as the official ``final_state.pth``, ``model_best.pth`` and released
  ``pose_hrnet_w32_256x192.pth`` files;
- a training checkpoint dict holding one (``state_dict``, else ``best_state_dict``, ``model``,
  ``model_state_dict``; or the key you name), with or without the ``module.`` prefix of
  ``DataParallel`` (and ``_orig_mod.`` of ``torch.compile``);
- mmpose checkpoints, whose keys start with ``backbone.`` and ``keypoint_head.`` (or ``head.``);
- ImageNet backbone files, of which ``prefixes`` keeps the named layers (the rest is listed in
  the report as ignored);
- darkpose checkpoints written by :func:`save_checkpoint`;

as ``.safetensors`` in any letter case (read with ``safetensors.torch.load_file``) or as any
other suffix through ``torch.load(..., weights_only=True)``: a pickle that would call anything
beyond tensors, plain containers and numpy scalars is refused with :class:`UnsafeCheckpointError`.

Loading is strict by default: every tensor of the model (within ``prefixes``) must come from
the file with its shape, and every kept tensor of the file must belong to the model; otherwise
:class:`CheckpointMismatchError` lists the missing, unexpected and wrong-shape keys. BatchNorm's
``num_batches_tracked`` counters are the one exception: files written before PyTorch 0.4.1
lack them, they do not affect the output, and a missing one keeps the model's value. A tensor
whose dtype is of another kind than the model's (integer, bool or complex for a float weight;
float for an integer counter) is a :class:`CheckpointError`; NaN or Inf weights load with a
``RuntimeWarning`` naming them.

Our own format: a ``.pth`` holding ``{"format": "darkpose", "format_version": 2,
"state_dict": ..., "meta": {...}, "training": {...}}``, or a ``.safetensors`` file whose
metadata holds ``format = "darkpose"`` and ``meta`` as a JSON string. ``meta`` is JSON data
only (model name and options, the resolved config, epoch, step, metrics); ``training``
(version 2, ``.pth`` only, optional) is what resumes a run: optimiser, scheduler and grad
scaler state_dicts, RNG states, the sampler position, as plain containers and tensors. So
both read back with ``weights_only=True``, and a training checkpoint loads into a model like
any other (:func:`load_checkpoint` takes its weights). Version-1 files (no ``training``)
still load.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import Tensor, nn

from darkpose._files import write_new

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "LoadReport",
    "UnsafeCheckpointError",
    "apply_state_dict",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

FORMAT = "darkpose"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
# where a training checkpoint keeps its weights, in the order they are looked for
STATE_DICT_KEYS = ("state_dict", "best_state_dict", "model", "model_state_dict")
# prefixes that wrappers add to every key
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# mmpose: backbone.* and keypoint_head.* (0.x) or head.* (1.x) around the official names
_MMPOSE_PREFIXES = ("backbone.", "keypoint_head.", "head.")
_SHOW = 5  # names listed per kind of mismatch


def _numpy_scalar_globals() -> list[Any]:
    """What unpickling numpy scalars needs (official training checkpoints store the validation
    AP as a numpy float64): the scalar constructor under its numpy 1 and 2 names, the dtypes."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    names = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")
    dtypes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"]
    return [np.dtype, *((scalar, name) for name in names), *dtypes]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A ``.pth`` pickle that would import or call code beyond tensors and plain data."""


class CheckpointMismatchError(CheckpointError):
    """The file's tensors do not match the model's (see :attr:`report`)."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Checkpoint:
    """What a checkpoint file holds: the state_dict, where it was found, metadata, and (a
    darkpose training checkpoint, format version 2) the state that resumes its run."""

    state_dict: dict[str, Tensor]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    format_version: int | None = None  # darkpose files only


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` did.

    Attributes
    ----------
    path : str
        The file (or ``"<state_dict>"``).
    source : str
        Where the weights were found, e.g. ``"state_dict"``, ``"checkpoint['state_dict']"``,
        ``"darkpose"``, plus the key rewrites applied (``"module. removed"``, ``"mmpose keys"``).
    loaded : list of str
        Model keys that received a tensor.
    missing : list of str
        Model keys (within ``prefixes``) that the file lacks.
    unexpected : list of str
        File keys (kept by ``prefixes``) that the model lacks.
    mismatched : list of (str, tuple, tuple)
        (key, shape in the file, shape in the model).
    ignored : list of str
        File keys dropped by the ``prefixes`` filter.
    untouched : list of str
        Model keys outside ``prefixes``: they keep their values.
    meta : dict
        The file's metadata: a darkpose checkpoint's ``meta``; the plain fields of a training
        checkpoint (``epoch``, ``perf``, ...).
    """

    path: str
    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing was missing, unexpected or of the wrong shape."""
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> str:
        """The missing, unexpected and wrong-shape keys, first few of each, with counts."""
        lines = []
        for title, names in (("missing from the file", self.missing),
                             ("unexpected (not in the model)", self.unexpected)):
            if names:
                lines.append(f"  {title} ({len(names)}): {_first(names)}")
        if self.mismatched:
            shown = [f"{k} (file {list(a)}, model {list(b)})" for k, a, b in self.mismatched]
            lines.append(f"  wrong shape ({len(shown)}): {_first(shown)}")
        return "\n".join(lines)

    def summary(self) -> str:
        """One paragraph for a log."""
        text = f"loaded {len(self.loaded)} tensors from {self.path} ({self.source})"
        if self.ignored:
            text += f"; {len(self.ignored)} file tensors ignored by the prefix filter"
            text += f" ({_first(self.ignored, 3)})"
        if self.untouched:
            text += f"; {len(self.untouched)} model tensors outside the prefixes kept as they were"
        if not self.ok:
            text += "; not matched:\n" + self.problems()
        return text

    __str__ = summary


def _first(names: list[str], n: int = _SHOW) -> str:
    text = ", ".join(names[:n])
    return text + (f", ... and {len(names) - n} more" if len(names) > n else "")


def _is_tensor_mapping(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(v, Tensor) for v in obj.values())
    )


def _plain(value: Any) -> Any:
    """A JSON-like copy of a metadata value (numpy scalars to Python numbers)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return None


def _unsafe_message(path: Path, error: Exception) -> str:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # the listing is only a hint
        names = []
    calls = f" ({', '.join(names)})" if names else ""
    return (
        f"refusing to load {path}: the file is a pickle that would import or call Python "
        f"objects{calls} beyond tensors and plain data, which could run arbitrary code. "
        "darkpose reads .pth files with torch.load(weights_only=True) only. If you trust the "
        "file's origin, convert it once outside darkpose, e.g. torch.save(torch.load(path, "
        "weights_only=False)['state_dict'], 'clean.pth'), or save it as .safetensors."
    )


def read_checkpoint(path: str | os.PathLike[str], *, key: str | None = None) -> Checkpoint:
    """Read the state_dict (and metadata) from a checkpoint file, without a model.

    Parameters
    ----------
    path : path-like
        ``.safetensors``, or a ``torch.save`` file of any other suffix (``.pth``, ``.pt``,
        ``.pth.tar``, ``.ckpt``, ``.bin``).
    key : str, optional
        The entry of a checkpoint dict that holds the weights; by default the first of
        ``state_dict``, ``best_state_dict``, ``model``, ``model_state_dict`` that does, or the
        whole file when it is a state_dict itself.

    Returns
    -------
    Checkpoint
        ``state_dict`` (keys as in the file), ``source`` and ``meta``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    try:
        with allow(_numpy_scalar_globals()) if allow else contextlib.nullcontext():
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            raise UnsafeCheckpointError(_unsafe_message(path, e)) from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from None
    except Exception as e:  # torch reports corrupt files in many ways
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})"
        ) from None
    return _find_state_dict(obj, path, key)


def _read_safetensors(path: Path) -> Checkpoint:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        state_dict = load_file(path)
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    if metadata.get("format") == FORMAT:
        try:
            meta = json.loads(metadata.get("meta", "{}"))
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: metadata field 'meta' is not JSON ({e})") from None
        return Checkpoint(state_dict, "darkpose", _meta_dict(meta, path))
    return Checkpoint(state_dict, "safetensors", dict(metadata))


def _meta_dict(meta: Any, path: Path) -> dict[str, Any]:
    if not isinstance(meta, Mapping):
        raise CheckpointError(
            f"{path}: 'meta' is a {type(meta).__name__}; expected a dict of JSON data"
        )
    return dict(meta)


def _find_state_dict(obj: Any, path: Path, key: str | None) -> Checkpoint:
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: expected a state_dict (names to tensors) or a dict holding one, "
            f"got {type(obj).__name__}"
        )
    if key is not None:
        if key not in obj:
            raise CheckpointError(
                f"{path}: no entry {key!r}; the file's top-level keys are {_first(list(obj))}"
            )
        candidates: Iterable[str] = (key,)
    elif obj.get("format") == FORMAT:
        version = obj.get("format_version", 1)
        if version not in READABLE_VERSIONS:
            raise CheckpointError(
                f"{path}: darkpose checkpoint format version {version!r}; this darkpose reads "
                f"versions {', '.join(map(str, READABLE_VERSIONS))} (written by a newer darkpose?)"
            )
        meta = _meta_dict(obj.get("meta", {}), path)
        training = obj.get("training")
        if training is not None and not isinstance(training, Mapping):
            raise CheckpointError(f"{path}: 'training' is a {type(training).__name__}; expected a dict")
        state_dict = _tensors_only(obj.get("state_dict"), path, "entry 'state_dict'")
        return Checkpoint(state_dict, FORMAT, meta, None if training is None else dict(training), version)
    elif _is_tensor_mapping(obj):
        return Checkpoint(_tensors_only(obj, path, "the state_dict"), "state_dict")
    else:
        candidates = STATE_DICT_KEYS
    for name in candidates:
        if isinstance(obj.get(name), Mapping):
            meta = {k: _plain(v) for k, v in obj.items() if _plain(v) is not None}
            state_dict = _tensors_only(obj[name], path, f"entry {name!r}")
            return Checkpoint(state_dict, f"checkpoint[{name!r}]", meta)
    if key is not None:
        raise CheckpointError(f"{path}: entry {key!r} is a {type(obj[key]).__name__}, not a dict")
    raise CheckpointError(
        f"{path}: found no weights; expected a state_dict (names to tensors) or a dict with "
        f"one of {', '.join(STATE_DICT_KEYS)}; the file's top-level keys are {_first(list(obj))}"
    )


def _tensors_only(obj: Any, path: Path | str, where: str) -> dict[str, Tensor]:
    """``obj`` as a state_dict, checked: a non-empty dict of parameter names to tensors."""
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: {where} is not a non-empty dict of tensors")
    bad = [k for k in obj if not isinstance(k, str)]
    if bad:
        shown = _first([f"{k!r} ({type(k).__name__})" for k in bad])
        raise CheckpointError(
            f"{path}: {where} has keys that are not strings: {shown}; expected parameter "
            "names such as 'conv1.weight'"
        )
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{path}: {where} holds entries that are not tensors: {_first(bad)}")
    return dict(obj)


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _normalise_keys(
    state_dict: dict[str, Tensor], model_keys: set[str]
) -> tuple[dict[str, Tensor], list[str]]:
    """Remove wrapper prefixes and mmpose's module names where the model has none of them."""
    notes = []
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if state_dict and all(k.startswith(prefix) for k in state_dict) and not any(
                k.startswith(prefix) for k in model_keys
            ):
                state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
                notes.append(f"{prefix} removed")
                changed = True
    if any(k.startswith("backbone.") for k in state_dict) and not any(
        k.startswith(_MMPOSE_PREFIXES) for k in model_keys
    ):
        renamed = {}
        for k, v in state_dict.items():
            for prefix in _MMPOSE_PREFIXES:
                if k.startswith(prefix):
                    k = k[len(prefix):]
                    break
            renamed[k] = v
        state_dict = renamed
        notes.append("mmpose keys")
    return state_dict, notes


def _within(key: str, prefixes: tuple[str, ...] | None) -> bool:
    if prefixes is None:
        return True
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def apply_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, Tensor],
    *,
    strict: bool = True,
    prefixes: Iterable[str] | None = None,
    path: str = "<state_dict>",
    source: str = "state_dict",
    meta: dict[str, Any] | None = None,
) -> LoadReport:
    """Load an in-memory state_dict into ``model`` with the rules of :func:`load_checkpoint`.

    Keys are first normalised (``module.`` / ``_orig_mod.`` prefixes, mmpose names), then
    filtered by ``prefixes``, then matched by name and shape. Nothing is written into the
    model unless the match is complete (``strict``) or at least one tensor matches.
    """
    model = _unwrap(model)
    model_state = model.state_dict()
    kept_prefixes = None if prefixes is None else tuple(prefixes)
    state, notes = _normalise_keys(dict(state_dict), set(model_state))
    report = LoadReport(
        path=str(path), source=", ".join([source, *notes]), meta=dict(meta or {})
    )
    matched: dict[str, Tensor] = {}
    for key, tensor in state.items():
        if not _within(key, kept_prefixes):
            report.ignored.append(key)
        elif key not in model_state:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != tuple(model_state[key].shape):
            report.mismatched.append((key, tuple(tensor.shape), tuple(model_state[key].shape)))
        else:
            matched[key] = tensor
    shape_wrong = {k for k, _, _ in report.mismatched}
    for key in model_state:
        if not _within(key, kept_prefixes):
            report.untouched.append(key)
        elif key not in matched and key not in shape_wrong:
            if not key.endswith("num_batches_tracked"):
                report.missing.append(key)
    report.loaded = list(matched)
    name = type(model).__name__
    if strict and not report.ok:
        counts = f"{len(model_state)} tensors in the model, {len(state)} in the file"
        if kept_prefixes is not None:
            counts += f", {len(report.ignored)} of them outside the prefixes"
        raise CheckpointMismatchError(
            f"checkpoint {path} does not match {name} (strict load; {counts}):\n"
            f"{report.problems()}\n"
            "Use strict=False to load the matching tensors only, or prefixes=(...) to take "
            "some layers.",
            report,
        )
    if not matched:
        example = _first(list(state), 3)
        raise CheckpointMismatchError(
            f"checkpoint {path}: not one tensor matches {name} by name and shape (the file's "
            f"keys look like {example}; the model's like {_first(list(model_state), 3)})",
            report,
        )
    _check_dtypes(matched, model_state, path, name)
    _warn_non_finite(matched, path)
    model.load_state_dict(matched, strict=False)
    return report


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    return "floating-point" if dtype.is_floating_point else "integer"


def _check_dtypes(
    matched: dict[str, Tensor], model_state: dict[str, Tensor], path: str, name: str
) -> None:
    """Refuse a tensor whose kind of dtype differs from the model's (an int64 or bool tensor
    for a float weight, a float for an integer counter): ``copy_`` would cast it silently.
    A float of another precision (float16 into float32) is converted, as torch does."""
    wrong = [
        f"{key} (file {tensor.dtype}, model {model_state[key].dtype})"
        for key, tensor in matched.items()
        if _kind(tensor.dtype) != _kind(model_state[key].dtype)
    ]
    if wrong:
        raise CheckpointError(
            f"checkpoint {path}: {len(wrong)} tensors have a dtype that {name} cannot take: "
            f"{_first(wrong)}; expected floating-point tensors for floating-point parameters "
            "and buffers, integer ones for integer buffers (another float precision is fine)"
        )


def _warn_non_finite(matched: dict[str, Tensor], path: str) -> None:
    """Warn, naming the tensors, when loaded weights hold NaN or Inf (they load as they are)."""
    bad = []
    for key, tensor in matched.items():
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        # a finite sum rules NaN and Inf out, a few times faster than isfinite on every value
        if not tensor.sum().isfinite() and not tensor.isfinite().all():
            bad.append(f"{key} ({int((~tensor.isfinite()).sum())} of {tensor.numel()} values)")
    if bad:
        warnings.warn(
            f"checkpoint {path}: {len(bad)} tensors hold NaN or Inf values (loaded as they "
            f"are; the model's output will not be finite): {_first(bad)}",
            RuntimeWarning,
            stacklevel=3,
        )


def load_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    prefixes: Iterable[str] | None = None,
    key: str | None = None,
) -> LoadReport:
    """Load weights from a checkpoint file into ``model`` (in place).

    Parameters
    ----------
    model : nn.Module
        The model (wrappers such as DataParallel or torch.compile are looked through).
    path : path-like
        ``.pth`` / ``.pt`` / ... (``torch.load(weights_only=True)``) or ``.safetensors``.
    strict : bool
        Require every model tensor within ``prefixes`` and every kept file tensor to match by
        name and shape; otherwise load the matches, skip the rest and report it.
    prefixes : iterable of str, optional
        Top-level names to take from the file (a key is kept when it equals a prefix or starts
        with ``prefix + "."``), e.g. ``model.pretrained_layers`` for an ImageNet backbone.
        Other file keys are ignored (listed in the report); model keys outside keep their values.
    key : str, optional
        The entry of a checkpoint dict that holds the weights (default: found automatically).

    Returns
    -------
    LoadReport
        Loaded, missing, unexpected, wrong-shape, ignored and untouched keys; the file's meta.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    UnsafeCheckpointError
        A pickle that would run code.
    CheckpointMismatchError
        ``strict`` and the tensors do not match, or nothing matches at all.
    CheckpointError
        A file that is not a checkpoint, or has no weights where expected; keys that are not
        strings; a tensor whose dtype is of another kind than the model's (int64, bool or
        complex for a float weight, float for an integer buffer).

    Warns
    -----
    RuntimeWarning
        Loaded tensors hold NaN or Inf (named in the message).

    Examples
    --------
    >>> model = build_model("hrnet_w32")                                 # doctest: +SKIP
    >>> load_checkpoint(model, "pose_hrnet_w32_256x192.pth")             # doctest: +SKIP
    >>> load_checkpoint(model, "hrnet_w32-36af842e.pth", strict=False,
    ...                 prefixes=model.pretrained_layers)                # doctest: +SKIP
    """
    checkpoint = read_checkpoint(path, key=key)
    return apply_state_dict(
        model,
        checkpoint.state_dict,
        strict=strict,
        prefixes=prefixes,
        path=str(path),
        source=checkpoint.source,
        meta=checkpoint.meta,
    )


def save_checkpoint(
    model: nn.Module | Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Write a darkpose checkpoint (``.pth``/``.pt`` or ``.safetensors``, any letter case).

    Parameters
    ----------
    model : nn.Module or mapping of str to Tensor
        The model (wrappers looked through) or a state_dict.
    path : path-like
        Output file; its suffix picks the format. Its directory must exist.
    meta : mapping, optional
        JSON data to keep with the weights (model name, options, epoch, metrics ...).
    overwrite : bool
        Replace an existing file; by default an existing file is an error.
    training : mapping, optional
        ``.pth`` only: the state that resumes a training run (optimiser, scheduler and scaler
        state_dicts, RNG states, positions) as plain containers, numbers, strings and
        tensors, stored under ``"training"`` and read back by :func:`read_checkpoint`.

    Returns
    -------
    Path
        ``path``. The file is written next to it first and then linked into place (renamed
        with ``overwrite``), so an interrupted save never leaves a truncated checkpoint under
        the final name, and a file that appears there meanwhile is never replaced unasked.
        Tensors that share memory (tied weights) are written as separate copies in
        ``.safetensors``, which cannot store shared tensors; ``.pth`` keeps the sharing.

    Raises
    ------
    FileExistsError
        ``path`` exists and not ``overwrite`` (also when it appeared during the save).
    FileNotFoundError
        The directory of ``path`` does not exist.
    CheckpointError
        ``path`` is a directory; ``meta`` is not a dict of JSON data; a state_dict whose keys
        are not strings or whose values are not tensors.
    ValueError
        Another suffix.
    """
    from darkpose import __version__

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"cannot save the checkpoint: {path} is a directory; expected a file name ending "
            "in .pth, .pt or .safetensors"
        )
    suffix = path.suffix.lower()
    if suffix not in (".pth", ".pt", ".safetensors"):
        raise ValueError(f"{path}: checkpoint suffix must be .pth, .pt or .safetensors")
    if meta is not None and not isinstance(meta, Mapping):
        raise CheckpointError(f"{path}: meta is a {type(meta).__name__}; expected a dict of JSON data")
    if training is not None and (suffix == ".safetensors" or not isinstance(training, Mapping)):
        raise CheckpointError(f"{path}: training state is stored in .pth files only, as a dict")
    full_meta = {"darkpose_version": __version__, **dict(meta or {})}
    if isinstance(model, nn.Module):
        model = _unwrap(model)
        full_meta.setdefault("architecture", type(model).__name__)
        state_dict = model.state_dict()
    else:
        state_dict = _tensors_only(model, path, "the state_dict to save")
    try:
        meta_json = json.dumps(full_meta)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"{path}: meta must be JSON data (str, numbers, lists, dicts): {e}"
        ) from None

    def write(file: BinaryIO) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        if suffix == ".safetensors":
            from safetensors.torch import save

            metadata = {"format": FORMAT, "meta": meta_json}
            file.write(save(_unshared(tensors), metadata=metadata))
        else:
            content = {"format": FORMAT, "format_version": FORMAT_VERSION, "state_dict": tensors,
                       "meta": json.loads(meta_json)}
            if training is not None:
                content["training"] = dict(training)
            torch.save(content, file)

    return write_new(path, write, force=overwrite, what="checkpoint", force_hint="overwrite=True")


def _unshared(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """A copy of every tensor whose memory an earlier one uses (tied weights)."""
    seen: set[int] = set()
    out = {}
    for key, tensor in tensors.items():
        pointer = tensor.untyped_storage().data_ptr()
        out[key] = tensor.clone() if pointer in seen and tensor.numel() else tensor
        seen.add(pointer)
    return out
