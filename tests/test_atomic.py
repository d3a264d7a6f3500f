"""Atomic outputs: complete or absent, the usual permissions, and outputs checked before any work."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from exodf.atomic import (atomic_path, check_output, check_output_folder, is_disk_full, reserve_space,
                          write_text_atomic)
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


def test_a_full_disk_names_the_file_being_written(tmp_path: Path) -> None:
    """numpy's and tifffile's short writes (no errno), write()'s ENOSPC (no file name): raised again naming the
    output asked for, not the hidden temporary file; nothing is left behind, folders made for it included."""
    (tmp_path / "kept").mkdir()
    for error in (OSError("163840 requested and 102208 written"), OSError(errno.ENOSPC, "No space left on device")):
        target = tmp_path / "kept" / "new" / "deeper" / "movie.tif"
        with pytest.raises(OSError) as e:
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"half")
                raise error
        assert e.value.filename == str(target) and is_disk_full(e.value)
        assert str(error) in str(e.value) or error.strerror in str(e.value)
        assert list((tmp_path / "kept").iterdir()) == []  # the folders made for it: removed again, while empty
    with pytest.raises(OSError) as e:  # an error naming the temporary file names the output
        with atomic_path(tmp_path / "out.csv") as tmp:
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    assert e.value.filename == str(tmp_path / "out.csv") and isinstance(e.value, PermissionError)
    for other in (OSError("connection reset"), FileNotFoundError(errno.ENOENT, "No such file", "input.tif")):
        with pytest.raises(OSError) as e:  # not about the output: as it was
            with atomic_path(tmp_path / "out.csv"):
                raise other
        assert e.value is other
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"]


def test_only_empty_folders_this_write_made_are_removed(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a" / "b" / "c" / "out.csv"):
            (tmp_path / "a" / "b" / "other.csv").write_text("written meanwhile\n")
            raise RuntimeError("stopped")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["a", "a/b", "a/b/other.csv"]
    write_text_atomic(tmp_path / "x" / "y.csv", "ok\n")  # and on success the folders stay, of course
    assert (tmp_path / "x" / "y.csv").read_text() == "ok\n"


def test_is_disk_full() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded", "f.csv"))
    assert is_disk_full(OSError("163840 requested and 102208 written"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied", "f.csv"))
    assert not is_disk_full(OSError("connection reset"))
    assert not is_disk_full(ValueError("163840 requested and 102208 written"))


def test_reserve_space_allocates_the_whole_file_or_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A memory-mapped output's space is taken before it is mapped: a full disk is then an OSError naming the file
    (writing into a sparse file's hole on a full disk is SIGBUS, which kills the process)."""
    f = tmp_path / "p.tif"
    with open(f, "wb") as fh:
        fh.truncate(1 << 20)  # sparse, as tifffile.memmap makes it
    calls: list[tuple[int, int]] = []
    real = getattr(os, "posix_fallocate", None)

    def fallocate(fd: int, offset: int, length: int) -> None:
        calls.append((offset, length))
        if real is not None:
            real(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", fallocate, raising=False)
    reserve_space(f)
    assert calls == [(0, 1 << 20)] and f.stat().st_size == 1 << 20

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    with pytest.raises(OSError) as e:
        reserve_space(f)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(f)
    for unsupported in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system that cannot reserve: as before

        def cannot(fd: int, offset: int, length: int, code: int = unsupported) -> None:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "posix_fallocate", cannot, raising=False)
        reserve_space(f)
    monkeypatch.delattr(os, "posix_fallocate", raising=False)  # (macOS, Windows)
    reserve_space(f)


def test_check_output_folder_names_the_problem(tmp_path: Path) -> None:
    movie = tmp_path / "movie.tif"
    movie.write_bytes(b"II*\x00")
    check_output_folder(tmp_path / "new" / "deeper")  # made later: fine
    check_output_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.tif"]  # nothing made, probe files gone
    with pytest.raises(ExodfError, match=r"^\S*movie.tif is a file, so no folder can be made there; choose another "
                       "output folder$"):
        check_output_folder(movie)
    with pytest.raises(ExodfError, match=r"movie.tif/sub: \S*movie.tif is a file, so no folder can be made there"):
        check_output_folder(movie / "sub")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(ExodfError, match="dangling is a broken link"):
        check_output_folder(tmp_path / "dangling")
    if Path("/proc/self").is_dir():
        with pytest.raises(ExodfError, match=r"^/proc/out: the folder /proc is not writable"):
            check_output_folder(Path("/proc") / "out")
