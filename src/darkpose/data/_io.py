"""Small file helpers shared by the datasets: JSON with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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


def require_field(obj: Any, field: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``obj[field]``, checked to be a dict entry of the expected type.

    ``where`` names the file (and the record) for the error message.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if field not in obj:
        raise ValueError(f"{where}: missing field {field!r}")
    value = obj[field]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ValueError(
            f"{where}: field {field!r} must be {names}, got {type(value).__name__}"
        )
    return value
