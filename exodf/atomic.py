"""Atomic file output: a result file is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file lives in the same folder (so the final ``os.replace`` is atomic on POSIX and
    Windows) and keeps the target's suffix, so that writers that look at the suffix still work.
    On any exception, KeyboardInterrupt included, the temporary file is removed, ``path`` is left
    untouched and the folders made for it are removed again while empty. An OSError of the block that names
    no file (a full disk: numpy's and tifffile's short writes, ``write()``'s ENOSPC) or names the temporary
    file is raised again naming ``path``.
    """
    target = Path(path)
    made = _missing_folders(target.parent)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.stem}.", suffix=".part" + (suffix if suffix is not None else target.suffix),
            dir=target.parent,
        )
    except OSError as e:  # named as the file asked for, not the hidden temporary one
        _remove_empty(made)
        raise OSError(e.errno, e.strerror, str(target)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with contextlib.suppress(OSError):  # mkstemp's 0600 would make results unreadable to the group
            os.chmod(tmp, _new_file_mode(target))
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        _remove_empty(made)
        if isinstance(e, OSError) and (e.filename == str(tmp) or e.filename is None and is_disk_full(e)):
            raise OSError(e.errno, e.strerror or str(e), str(target)) from e
        raise


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` says a write failed for want of space: ENOSPC or EDQUOT, or the short write numpy and
    tifffile report without an errno ("163840 requested and 102208 written")."""
    if not isinstance(e, OSError):
        return False
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    return e.errno is None and re.search(r"\d+ requested and \d+ written", str(e)) is not None


def os_error_text(e: OSError) -> str:
    """One line for a file that could not be written or read: the file, then the reason and the fix
    (``"out/m.csv: the disk is full; free some space or write to another folder"``)."""
    where = f"{e.filename}: " if e.filename else ""
    if is_disk_full(e):  # (numpy's and tifffile's short writes carry no errno, only "N requested and M written")
        return f"{where}the disk is full; free some space or write to another folder"
    return f"{where}{e.strerror or e}; check that path and its permissions"


def reserve_space(path: str | os.PathLike[str]) -> None:
    """Allocate the whole of file ``path`` on its disk now, before it is memory-mapped for writing.

    A file made sparse (``tifffile.memmap``) takes its disk space as its pages are written back: on a full disk
    that kills the process with SIGBUS ("Bus error"), leaving its temporary file behind. Reserved up front,
    the full disk is an ``OSError(ENOSPC)`` naming ``path`` instead. Where the file system cannot reserve
    space (EOPNOTSUPP, EINVAL) or the platform has no ``posix_fallocate``, nothing is done.
    """
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is None:
        return
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        if not size:
            return
        try:
            allocate(f.fileno(), 0, size)
        except OSError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                return
            raise OSError(e.errno, e.strerror, str(path)) from None


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those above it that do not exist yet, innermost first (what ``mkdir(parents=True)``
    would make)."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders made for an output that failed, innermost first, as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # not empty (something else was written there meanwhile), or not ours to remove
            return


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
    _check_folder(p, p.parent)


def check_output_folder(folder: str | os.PathLike[str]) -> None:
    """Fail now, before any work or message, if ``folder`` cannot be written (made if need be) as an output folder.

    Raises :class:`~exodf.errors.ExodfError` naming the folder when it is a file, a broken link, under a file,
    or in a folder that is not writable: the same checks as :func:`check_output` makes on a file's folder.
    """
    p = Path(folder)
    _check_folder(p, p)


def _check_folder(p: Path, folder: Path) -> None:
    """``folder`` (the folder output ``p`` goes into, or ``p`` itself) is a folder that can be written, or can be
    made in its nearest existing folder."""
    from .errors import ExodfError

    what = "output path" if folder != p else "output folder"
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    named = f"{p}: {folder}" if folder != p else f"{p}"
    if folder.is_symlink() and not folder.exists():
        raise ExodfError(f"{named} is a broken link; point it at a folder or choose another {what}")
    if not folder.is_dir():
        raise ExodfError(f"{named} is a file, so no folder can be made there; choose another {what}")
    try:  # a file made and removed: os.access says yes to root, and knows nothing of read-only mounts
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
        fd, probe = tempfile.mkstemp(prefix=".exodf-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ExodfError(f"{p}: the folder {folder} is not writable ({e.strerror or e}); choose another {what} "
                         "or fix its permissions") from None


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()
