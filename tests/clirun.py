"""Running ``exodf ARGS`` for the tests (imported as ``from clirun import exodf_in_process, exodf_process``).

:func:`exodf_process` starts the program as a user does (``python -m exodf``): for what only a process shows
(exit status set by the interpreter, TensorFlow's import notices, signals). Each start imports TensorFlow and
loads the network again (about 15 s on a 2-core CPU), so tests that check what a command computes or says run
it with :func:`exodf_in_process`: the same entry point (``exodf.cli.main``: arguments, one-line errors, exit
status, warnings on stderr) called in this process.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["exodf_in_process", "exodf_process"]


def exodf_process(*args: str | os.PathLike[str], cwd: Path, timeout: float = 900
                  ) -> subprocess.CompletedProcess[str]:
    """``python -m exodf ARGS`` in ``cwd``: its exit status, stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "exodf", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def exodf_in_process(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``exodf ARGS`` through :func:`exodf.cli.main` in this process, in ``cwd``, with what it writes on
    stdout and stderr (its log warnings included, as the program shows them) and its exit status."""
    from exodf import cli

    argv = ["exodf", *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sigterm = signal.getsignal(signal.SIGTERM)
    old_argv, old_cwd = sys.argv, os.getcwd()
    root.handlers.clear()  # (pytest's capture handlers) so that main() installs the program's own, on `err`
    try:
        os.chdir(cwd)
        sys.argv = argv
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
        signal.signal(signal.SIGTERM, sigterm)
        for h in root.handlers:
            if h not in handlers:
                h.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
