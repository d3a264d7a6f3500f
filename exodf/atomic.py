"""Atomic file output: a result file is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file lives in the same folder (so the final ``os.replace`` is atomic on POSIX and
    Windows) and keeps the target's suffix, so that writers that look at the suffix still work.
    On any exception, KeyboardInterrupt included, the temporary file is removed and ``path`` is left
    untouched.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.stem}.", suffix=".part" + (suffix if suffix is not None else target.suffix),
            dir=target.parent,
        )
    except OSError as e:  # named as the file asked for, not the hidden temporary one
        raise OSError(e.errno, e.strerror, str(target)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with contextlib.suppress(OSError):  # mkstemp's 0600 would make results unreadable to the group
            os.chmod(tmp, _new_file_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _read_umask() -> int:
    umask = os.umask(0)  # (the only way to read it; done once, at import, before any thread writes files)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def _new_file_mode(target: Path) -> int:
    """The mode ``open(target, "w")`` would give: the existing file's, else 0666 less the umask."""
    with contextlib.suppress(OSError):
        return target.stat().st_mode & 0o777
    return 0o666 & ~_UMASK


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding, newline="")


def check_output(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None] = ()) -> None:
    """Fail now, before any work, if ``path`` cannot be written as an output file.

    Raises :class:`~exodf.errors.ExodfError` naming the path when it is one of ``inputs`` (writing it would
    replace that input), an existing folder, under a file, or in a folder that is not writable.
    """
    from .errors import ExodfError

    p = Path(path)
    for i in inputs:
        if i is not None and _same_file(p, Path(i)):
            raise ExodfError(f"{p}: this output is also an input ({i}); writing it would replace it: choose "
                             "another output path")
    if p.is_dir():
        raise ExodfError(f"{p} is a folder; give a file name for this output")
    folder = p.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if folder.is_symlink() and not folder.exists():
        raise ExodfError(f"{p}: {folder} is a broken link; point it at a folder or choose another output path")
    if not folder.is_dir():
        raise ExodfError(f"{p}: {folder} is a file, so no folder can be made there; choose another output path")
    try:  # a file made and removed: os.access says yes to root, and knows nothing of read-only mounts
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
        fd, probe = tempfile.mkstemp(prefix=".exodf-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ExodfError(f"{p}: the folder {folder} is not writable ({e.strerror or e}); choose another output path "
                         "or fix its permissions") from None


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()
