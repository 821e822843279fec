"""Video files: frames read one at a time, an MP4 writer that never replaces a file unasked.

Frames are BGR ``uint8`` (H, W, 3) as OpenCV decodes them; sizes are (W, H).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from darkpose._files import check_target, write_new
from darkpose.data._io import finite_number

__all__ = ["DEFAULT_FPS", "FOURCCS", "VIDEO_EXTENSIONS", "VideoWriter", "is_video", "read_frames"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

FOURCCS: dict[str, tuple[str, ...]] = {
    ".mp4": ("mp4v", "avc1"),
    ".m4v": ("mp4v", "avc1"),
    ".mov": ("mp4v", "avc1"),
    ".mkv": ("mp4v", "XVID"),
    ".avi": ("MJPG", "XVID"),
    ".webm": ("VP80", "VP90"),
}
"""Codecs tried in order for each extension (the first that OpenCV opens is used)."""

DEFAULT_FPS = 30.0
"""Frame rate assumed for a video whose file does not state one (with a warning)."""


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a video extension (:data:`VIDEO_EXTENSIONS`, any case)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _frames(capture: cv2.VideoCapture, first: np.ndarray) -> Iterator[np.ndarray]:
    try:
        frame = first
        while frame is not None:
            yield frame
            ok, frame = capture.read()
            frame = frame if ok else None
    finally:
        capture.release()


def read_frames(path: str | os.PathLike[str]) -> tuple[float, int, Iterator[np.ndarray]]:
    """Open a video and stream its frames (one decoded frame in memory at a time).

    Returns
    -------
    fps : float
        The frame rate the file states; :data:`DEFAULT_FPS` (with a warning) when it states none.
    frame_count : int
        The number of frames the container states: an estimate (some formats do not store
        it, or store it wrongly), 0 when unknown. The iterator yields the frames there are.
    frames : iterator of (H, W, 3) uint8 BGR
        Releases the file when exhausted or closed.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        OpenCV cannot open the file as a video, or cannot decode a first frame from it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: could not be opened as a video")
    ok, first = capture.read()
    if not ok or first is None:
        capture.release()
        raise ValueError(f"{path}: no frame could be decoded (empty or not a video)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and fps > 0):
        warnings.warn(f"{path}: the video states no frame rate; assuming {DEFAULT_FPS} fps", stacklevel=2)
        fps = DEFAULT_FPS
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    count = int(count) if math.isfinite(count) and count > 0 else 0
    return float(fps), count, _frames(capture, first)


class VideoWriter:
    """Write frames to a video file (MP4 with fourcc ``mp4v`` for ``.mp4``; see :data:`FOURCCS`).

    ``with VideoWriter("out.mp4", fps, (W, H)) as out: out.write(frame)``. The frames go to a
    temporary file beside ``path``, which becomes ``path`` only when the ``with`` block ends
    without an exception (:func:`darkpose._files.write_new`): an interrupted run leaves no
    truncated video, and an existing file is never replaced unless ``overwrite``.

    Parameters
    ----------
    path : path-like
        Ends in one of :data:`VIDEO_EXTENSIONS`; its directory must exist.
    fps : float
        Frames per second, finite and > 0.
    size : (W, H)
        Frame size in pixels; every frame written must be (H, W, 3) uint8.
    overwrite : bool
        Replace an existing file.

    Raises
    ------
    FileExistsError, IsADirectoryError, FileNotFoundError
        From the target check, at construction (before any frame is made).
    ValueError
        A bad extension, fps or size; at :meth:`write`, a frame of another size or type;
        at :meth:`close`, no frame written.
    RuntimeError
        OpenCV here cannot encode the format (every codec of :data:`FOURCCS` refused).
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float, size: tuple[int, int], *, overwrite: bool = False
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCCS:
            raise ValueError(f"video {self.path}: the extension must be one of {VIDEO_EXTENSIONS}")
        if not (finite_number(fps) and fps > 0):
            raise ValueError(f"video {self.path}: fps must be a finite number > 0, got {fps!r}")
        if not (
            isinstance(size, tuple | list)
            and len(size) == 2
            and all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise ValueError(f"video {self.path}: size must be (W, H), two positive integers, got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps)
        self.overwrite = overwrite
        check_target(self.path, overwrite, "video", "overwrite=True")
        self._tmp = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:12]}.part{suffix}")
        self.frames_written = 0
        for code in FOURCCS[suffix]:
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*code), self.fps, self.size)
            if self._writer.isOpened():
                self.fourcc = code
                return
            self._writer.release()
            self._discard()
        raise RuntimeError(
            f"video {self.path}: this OpenCV cannot encode {suffix} (tried fourcc {', '.join(FOURCCS[suffix])}); "
            "write an .avi (MJPG) instead"
        )

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame of the writer's size."""
        if self._writer is None:
            raise ValueError(f"video {self.path}: the writer is closed")
        w, h = self.size
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (h, w, 3):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"video {self.path}: frame {self.frames_written} must be uint8 ({h}, {w}, 3), got {got}")
        self._writer.write(np.ascontiguousarray(frame))
        self.frames_written += 1

    def _discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def close(self) -> Path:
        """Finish the file and move it to ``path``; returns ``path``."""
        if self._writer is None:
            return self.path
        self._writer.release()
        self._writer = None
        try:
            if self.frames_written == 0:
                raise ValueError(f"video {self.path}: no frame was written; no file made")
            with open(self._tmp, "rb") as src:
                write_new(self.path, lambda f: shutil.copyfileobj(src, f), force=self.overwrite,
                          what="video", force_hint="overwrite=True")
        finally:
            self._discard()
        return self.path

    def abort(self) -> None:
        """Stop without making ``path`` (the temporary file is removed)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
