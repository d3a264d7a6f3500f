"""Atomic outputs: complete or absent, the usual permissions, and outputs checked before any work."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from exodf.atomic import atomic_path, check_output, write_text_atomic
from exodf.errors import ExodfError


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.csv"
    write_text_atomic(target, "first\n")
    assert target.read_text() == "first\n"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("stopped midway")
    assert target.read_text() == "first\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.csv"]  # no temporary file left


def test_new_files_get_the_umask_mode_and_existing_ones_keep_theirs(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "new.csv", "x\n")
        assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o644  # not mkstemp's 0600
        (tmp_path / "kept.csv").write_text("y\n")
        os.chmod(tmp_path / "kept.csv", 0o640)
        write_text_atomic(tmp_path / "kept.csv", "z\n")
        assert stat.S_IMODE((tmp_path / "kept.csv").stat().st_mode) == 0o640
        os.chmod(tmp_path / "kept.csv", 0o444)  # read-only: still replaced (the folder allows it), still 0444
        write_text_atomic(tmp_path / "kept.csv", "w\n")
        assert (tmp_path / "kept.csv").read_text() == "w\n"
        assert stat.S_IMODE((tmp_path / "kept.csv").stat().st_mode) == 0o444
    finally:
        os.umask(old)


def test_check_output_names_the_problem(tmp_path: Path) -> None:
    movie = tmp_path / "movie.tif"
    movie.write_bytes(b"II*\x00")
    check_output(tmp_path / "new folder" / "deeper" / "events.csv", [movie])  # folders are made later: fine
    with pytest.raises(ExodfError, match="also an input"):
        check_output(tmp_path / "." / "movie.tif", [None, movie])
    (tmp_path / "adir.csv").mkdir()
    with pytest.raises(ExodfError, match="is a folder; give a file name"):
        check_output(tmp_path / "adir.csv")
    with pytest.raises(ExodfError, match="movie.tif is a file, so no folder can be made there"):
        check_output(movie / "events.csv")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(ExodfError, match="dangling is a broken link"):
        check_output(tmp_path / "dangling" / "events.csv")
    # where even root cannot make a file (os.access said yes to root): found before any work, the output named
    if Path("/proc/self").is_dir():
        with pytest.raises(ExodfError, match=r"^/proc/events.csv: the folder /proc is not writable"):
            check_output(Path("/proc") / "events.csv")
        with pytest.raises(OSError, match="/proc/events.csv"):  # not the hidden temporary file's name
            with atomic_path(Path("/proc") / "events.csv"):
                pass
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".exodf-check")]  # the probe file is gone
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(ExodfError, match="not writable"):
                check_output(ro / "events.csv")
        finally:
            ro.chmod(0o700)
