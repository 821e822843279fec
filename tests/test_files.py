"""Output files are created exclusively: never replacing a user's file, even one that appears
while the output is being written; bench --json targets are checked before the run."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from darkpose._files import write_new
from darkpose.bench._common import write_json
from darkpose.cli import main


def writer(data: bytes, calls: list[int] | None = None):
    def write(file):
        if calls is not None:
            calls.append(1)
        file.write(data)

    return write


def test_write_new_creates_the_file_with_the_default_permissions(tmp_path):
    path = tmp_path / "out.bin"
    assert write_new(path, writer(b"abc")) == path
    assert path.read_bytes() == b"abc"
    assert os.listdir(tmp_path) == ["out.bin"]  # no temporary left
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # as open() would, not 0o600


def test_an_existing_file_is_refused_before_writing(tmp_path):
    path = tmp_path / "out.json"
    path.write_bytes(b"mine")
    calls: list[int] = []
    with pytest.raises(FileExistsError, match=re.escape(
            f"JSON {path} already exists; pass --force to overwrite it")):
        write_new(path, writer(b"new", calls), what="JSON", force_hint="--force")
    assert calls == [] and path.read_bytes() == b"mine"
    write_new(path, writer(b"new", calls), force=True)
    assert calls == [1] and path.read_bytes() == b"new"
    dangling = tmp_path / "link.json"
    dangling.symlink_to(tmp_path / "nowhere")  # a name that exists, pointing nowhere
    with pytest.raises(FileExistsError):
        write_new(dangling, writer(b"new"))
    assert not (tmp_path / "nowhere").exists()


def test_a_file_appearing_while_writing_is_left_as_it_was(tmp_path):
    path = tmp_path / "out.json"

    def another_program_creates_it(file):
        path.write_bytes(b"theirs")  # after the pre-check, before the link
        file.write(b"ours")

    with pytest.raises(FileExistsError, match=re.escape(
            f"file {path} already exists; pass force=True to overwrite it")):
        write_new(path, another_program_creates_it)
    assert path.read_bytes() == b"theirs"
    assert os.listdir(tmp_path) == ["out.json"]
    path.unlink()
    write_new(path, another_program_creates_it, force=True)  # asked: replaced
    assert path.read_bytes() == b"ours"


def test_a_failing_write_leaves_nothing(tmp_path):
    def fails(file):
        file.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_new(tmp_path / "out.bin", fails)
    assert os.listdir(tmp_path) == []


def test_directories_and_missing_folders_are_clear_errors(tmp_path):
    for force in (False, True):
        with pytest.raises(IsADirectoryError, match=re.escape(
                f"checkpoint {tmp_path} is a directory; expected the name of a file")):
            write_new(tmp_path, writer(b"x"), force=force, what="checkpoint")
    missing = tmp_path / "no" / "out.bin"
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"file {missing}: the directory {missing.parent} does not exist")):
        write_new(missing, writer(b"x"))
    assert os.listdir(tmp_path) == []


def test_write_json_never_replaces_unasked(tmp_path, capsys):
    path = tmp_path / "bench.json"
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert capsys.readouterr().err == f"wrote {path}\n"
    with pytest.raises(FileExistsError, match="pass --force to overwrite it"):
        write_json(path, {"a": 2})
    write_json(path, {"a": 2}, force=True)
    assert json.loads(path.read_text()) == {"a": 2}


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_bench_json_onto_a_directory_or_a_missing_folder_is_refused_before_the_run(
        tmp_path, capsys, force):
    argv = ["bench", "codec", "--n", "4", "--k", "3", "--repeats", "1", "--loop-repeats", "1"]
    assert main([*argv, "--json", str(tmp_path), *force]) == 2
    out = capsys.readouterr()
    assert out.err == (f"darkpose bench codec: --json {tmp_path} is a directory; expected the "
                       "name of a file\n")
    assert out.out == ""  # refused before the run
    missing = tmp_path / "no" / "codec.json"
    assert main([*argv, "--json", str(missing), *force]) == 2
    assert capsys.readouterr().err == (
        f"darkpose bench codec: --json {missing}: the directory {missing.parent} does not exist\n")
