"""Video files: write and read back (count, fps, size, order), the no-overwrite rule, an
interrupted write, bad frames, files that cannot be opened."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from darkpose.video import VideoWriter, is_video, read_frames

W, H, FPS = 64, 48, 12.5


def frames(n=10):
    return [np.full((H, W, 3), 20 * i, np.uint8) for i in range(n)]


def write(path, n=10, **kwargs):
    with VideoWriter(path, FPS, (W, H), **kwargs) as out:
        for frame in frames(n):
            out.write(frame)
    return path


def test_write_then_read_back(tmp_path):
    path = write(tmp_path / "clip.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary file left
    fps, count, stream = read_frames(path)
    assert fps == FPS and count == 10
    got = list(stream)
    assert len(got) == 10
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in got)
    # lossy codec: each frame's mean within 4 of its grey level (measured: at most 3.67 off)
    np.testing.assert_allclose([f.mean() for f in got], [20 * i for i in range(10)], atol=4)


def test_avi_too(tmp_path):
    fps, count, stream = read_frames(write(tmp_path / "clip.avi"))
    assert (fps, count, len(list(stream))) == (FPS, 10, 10)


def test_existing_file_is_not_replaced_unless_asked(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"video .*clip\.mp4 already exists; pass overwrite=True"):
        VideoWriter(path, FPS, (W, H))
    assert path.read_bytes() == b"mine"
    write(path, n=3, overwrite=True)
    assert read_frames(path)[1] == 3


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(KeyboardInterrupt), VideoWriter(path, FPS, (W, H)) as out:
        out.write(frames(1)[0])
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_frame_size_checked_on_each_write(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(ValueError, match=r"clip\.mp4: frame 1 must be uint8 \(48, 64, 3\), got uint8 \(64, 48, 3\)"):
        with VideoWriter(path, FPS, (W, H)) as out:
            out.write(frames(1)[0])
            out.write(np.zeros((W, H, 3), np.uint8))
    assert not path.exists()
    with pytest.raises(ValueError, match=r"frame 0 must be uint8 \(48, 64, 3\), got float64"):
        with VideoWriter(path, FPS, (W, H)) as out:
            out.write(np.zeros((H, W, 3)))


def test_no_frame_written(tmp_path):
    with pytest.raises(ValueError, match=r"clip\.mp4: no frame was written; no file made"):
        with VideoWriter(tmp_path / "clip.mp4", FPS, (W, H)):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "fps", "size", "message"),
    [
        ("clip.gif", FPS, (W, H), r"clip\.gif: the extension must be one of"),
        ("clip.mp4", 0.0, (W, H), "fps must be a finite number > 0, got 0.0"),
        ("clip.mp4", float("nan"), (W, H), "fps must be a finite number > 0"),
        ("clip.mp4", FPS, (W, 0), r"size must be \(W, H\), two positive integers, got \(64, 0\)"),
        ("clip.mp4", FPS, (64.0, 48), r"size must be \(W, H\)"),
    ],
)
def test_bad_writer_arguments(tmp_path, name, fps, size, message):
    with pytest.raises(ValueError, match=message):
        VideoWriter(tmp_path / name, fps, size)


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="the directory .*nowhere does not exist"):
        VideoWriter(tmp_path / "nowhere" / "clip.mp4", FPS, (W, H))


def test_files_that_cannot_be_read(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"video file not found: .*absent\.mp4"):
        read_frames(tmp_path / "absent.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match=r"junk\.mp4: could not be opened as a video"):
        read_frames(junk)
    with pytest.raises(FileNotFoundError, match="video file not found"):
        read_frames(tmp_path)  # a directory
    empty = tmp_path / "empty.mp4"  # an MP4 container without frames, as OpenCV writes one
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H)).release()
    assert empty.stat().st_size > 0
    with pytest.raises(ValueError, match=r"empty\.mp4: could not be opened as a video"):
        read_frames(empty)


def test_is_video():
    assert all(is_video(f"a/clip{ext}") for ext in (".mp4", ".AVI", ".mov", ".mkv", ".webm", ".m4v"))
    assert not any(is_video(p) for p in ("photo.jpg", "clip.mp4.json", "mp4"))
