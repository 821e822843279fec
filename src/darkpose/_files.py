"""Writing output files without ever replacing one that a user made unasked.

:func:`write_new` writes beside the target and then links the finished file into place:
``os.link`` fails when the name exists, so a file that appears between the check and the write
(another run, another program) is left as it was, and an interrupted write never leaves a
truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["check_target", "write_new"]


def _exists_error(path: Path, what: str, force_hint: str) -> FileExistsError:
    return FileExistsError(f"{what} {path} already exists; pass {force_hint} to overwrite it")


def check_target(path: str | os.PathLike[str], force: bool, what: str, force_hint: str) -> None:
    """Raise unless a file can be written at ``path``: not a directory, inside an existing
    directory, and (without ``force``) no file, link or anything else of that name yet.

    Raises
    ------
    IsADirectoryError, FileNotFoundError, FileExistsError
        With ``what`` (e.g. ``"checkpoint"``) and the path in the message; the last one says
        to pass ``force_hint`` (e.g. ``"--force"``).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a directory; expected the name of a file")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{what} {path}: the directory {path.parent} does not exist")
    if not force and os.path.lexists(path):
        raise _exists_error(path, what, force_hint)


def write_new(
    path: str | os.PathLike[str],
    write: Callable[[BinaryIO], None],
    *,
    force: bool = False,
    what: str = "file",
    force_hint: str = "force=True",
) -> Path:
    """Create ``path`` with the bytes that ``write(file)`` writes, never replacing a file that
    exists unless ``force``.

    The bytes go to a temporary file in the same directory, which is then linked to ``path``
    (``os.link``: fails if the name appeared meanwhile) or, with ``force``, renamed onto it
    (``os.replace``). The temporary file is removed in every case, also when ``write`` raises.
    Needs a file system with hard links (any local POSIX one; NTFS).

    Parameters
    ----------
    path : path-like
        The file to create; its directory must exist.
    write : callable
        Writes the content into the binary file object it is given.
    force : bool
        Replace an existing file.
    what, force_hint : str
        For the messages, e.g. ``"checkpoint"`` and ``"overwrite=True"``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileExistsError
        ``path`` exists (before or after ``write``) and not ``force``: the file is unchanged.
    IsADirectoryError, FileNotFoundError
        ``path`` is a directory, or its directory does not exist.
    """
    path = Path(path)
    check_target(path, force, what, force_hint)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    # O_EXCL: never write through a file or link of that name; 0o666 lets the umask decide
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise _exists_error(path, what, force_hint) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path
