"""Small file helpers shared by the datasets: JSON and its fields, with errors that name the
file, the record and the field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import UnionType
from typing import Any, get_args

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Load a JSON file; a missing file or malformed JSON raises an error naming the file.

    Raises
    ------
    FileNotFoundError
        ``"<what> not found: <path>"``.
    ValueError
        ``"<path>: not valid JSON: <reason> (line L, column C)"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: not UTF-8 text ({e.reason})") from None


def _types(kind: Any) -> tuple[type, ...]:
    """``int``, ``int | float`` or ``(int, float)`` as a tuple of types."""
    if isinstance(kind, UnionType):
        return get_args(kind)
    return kind if isinstance(kind, tuple) else (kind,)


def _is_kind(value: Any, kind: Any) -> bool:
    """isinstance, except that a bool is no int or float (a JSON ``true`` is no number)."""
    types = _types(kind)
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def _get(obj: Any, field: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if field not in obj:
        raise ValueError(f"{where}: missing field {field!r}")
    return obj[field]


def require_field(obj: Any, field: str, kind: Any, where: str) -> Any:
    """``obj[field]``, checked to be a dict entry of the expected type.

    ``kind`` is a type, a tuple of types or a union (``int | float``); a JSON ``true`` /
    ``false`` is not accepted as a number. ``where`` names the file (and the record) for
    the error message.
    """
    value = _get(obj, field, where)
    if not _is_kind(value, kind):
        raise ValueError(
            f"{where}: field {field!r} must be {' or '.join(t.__name__ for t in _types(kind))}, "
            f"got {type(value).__name__}"
        )
    return value


def finite_number(value: Any) -> bool:
    """Whether a parsed JSON value is a finite number: not a bool, NaN, +-Infinity or an
    integer beyond the float range."""
    try:
        return _is_kind(value, int | float) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def require_id(obj: Any, field: str, where: str) -> int:
    """An integer id field that fits in int64 (the datasets' id arrays)."""
    value = require_field(obj, field, int, where)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{where}: field {field!r} = {value} does not fit in int64")
    return value


def require_number(obj: Any, field: str, where: str) -> float:
    """A finite number field (JSON ``NaN``/``Infinity`` or a bool is an error)."""
    value = require_field(obj, field, int | float, where)
    if not finite_number(value):
        raise ValueError(f"{where}: field {field!r} must be a finite number, got {value!r}")
    return float(value)


def check_numbers(value: Any, field: str, where: str, length: int, layout: str = "") -> list:
    """A list of ``length`` finite numbers; ``layout`` (e.g. "[x, y, w, h]") is added to
    the messages."""
    layout = f" {layout}" if layout else ""
    if not isinstance(value, list):
        raise ValueError(
            f"{where}: field {field!r} must be a list of {length} numbers{layout}, "
            f"got {type(value).__name__}"
        )
    if len(value) != length:
        raise ValueError(
            f"{where}: field {field!r} has {len(value)} values, expected {length}{layout}"
        )
    for j, v in enumerate(value):
        if not finite_number(v):
            raise ValueError(
                f"{where}: field {field!r} must hold finite numbers, got {v!r} at index {j}"
            )
    return value


def require_numbers(obj: Any, field: str, where: str, length: int, layout: str = "") -> list:
    """``obj[field]`` checked by :func:`check_numbers`."""
    return check_numbers(_get(obj, field, where), field, where, length, layout)
