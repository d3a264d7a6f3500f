"""The ``exodf`` command line: a thin typer layer over the library.

Each sub-module holds the commands of one pipeline step and a ``register(app)`` function.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import signal
import sys
from typing import Any, Iterator

import typer

from ..errors import ExodfError

app = typer.Typer(
    name="exodf",
    help="Detect exocytosis events in TIRF movies with the ExoDeepFinder network.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

_errors_to_stdout = False


@app.callback()
def _root(errors_to_stdout: bool = typer.Option(
        False, "--errors-to-stdout", help="Print error messages on standard output too: ImageJ's exec() shows "
        "only that (the Fiji macros use it). Give it before the command: exodf --errors-to-stdout detect ...")
) -> None:
    global _errors_to_stdout
    _errors_to_stdout = errors_to_stdout


def _error(message: str) -> None:
    print(message, file=sys.stderr)
    if _errors_to_stdout:
        print(message, flush=True)


def _register_all() -> None:
    from . import detect

    detect.register(app)
    for name in ("simulate", "evaluate", "package", "fiji", "compare", "train", "bench"):
        try:
            module = __import__(f"{__name__}.{name}", fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            continue
        module.register(app)


_register_all()


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a cluster's time limit): unwind like Ctrl-C, so temporary files are removed."""
    raise KeyboardInterrupt


# what TensorFlow's C++ side prints on stderr while it is imported, whatever TF_CPP_MIN_LOG_LEVEL says:
# notices for developers that read like errors to the people running exodf
_TF_IMPORT_NOISE = ("All log messages before absl::InitializeLog() is called are written to STDERR",
                    "oneDNN custom operations are on", "This TensorFlow binary is optimized to use available CPU",
                    "rebuild TensorFlow with the appropriate compiler flags")


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports ``tensorflow`` (once, whoever asks first) with the C-level stderr captured, then writes back
    every captured line but :data:`_TF_IMPORT_NOISE`."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        real = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            with _filtered_stderr(_TF_IMPORT_NOISE):
                real(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


@contextlib.contextmanager
def _filtered_stderr(noise: tuple[str, ...]) -> Iterator[None]:
    """File descriptor 2 into a temporary file for the block, then its lines without ``noise`` back to it."""
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not any(n in ln for n in noise)]
            if kept:
                os.write(2, "".join(kept).encode())


def _is_usage_error(e: BaseException) -> bool:
    # click's ClickException, or its copy inside typer (typer >= 0.2x vendors click as typer._click)
    return any(c.__name__ == "ClickException" for c in type(e).__mro__) and hasattr(e, "show")


def main(*, program: bool = False) -> None:
    """Entry point: quiet TensorFlow, run the app, turn errors into one line and a non-zero exit status.

    ExodfError and usage errors: status 1 (2 for usage), interruption (Ctrl-C, SIGTERM): 130, a file that
    cannot be written or read (permissions, a folder in the way): status 1 with the path and the reason.
    ``program``: called as the ``exodf`` program (:func:`run`), not in-process.
    """
    global _errors_to_stdout
    _errors_to_stdout = False  # (set by --errors-to-stdout; main() may run again in the same process)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from ..io import quiet_tifffile

    quiet_tifffile()  # its messages duplicate our one-line errors
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    with contextlib.suppress(ValueError):  # (not in the main thread: leave SIGTERM alone)
        signal.signal(signal.SIGTERM, _terminated)
    try:
        rc = app(standalone_mode=False)
    except ExodfError as e:
        _error(f"exodf: error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        rc = 130
    except SystemExit:
        raise
    except OSError as e:  # writing where one cannot: permissions, a file or folder in the way, a full disk
        where = f"{e.filename}: " if e.filename else ""
        _error(f"exodf: error: {where}{e.strerror or e}; check that path and its permissions")
        sys.exit(1)
    except Exception as e:  # click usage errors and the like
        if _is_usage_error(e):
            e.show()  # type: ignore[attr-defined]
            if _errors_to_stdout:
                print(f"exodf: error: {e.format_message()}", flush=True)  # type: ignore[attr-defined]
            sys.exit(getattr(e, "exit_code", 2))
        if type(e).__name__ == "Abort":
            sys.exit(1)
        if _errors_to_stdout:  # (out of memory, a bug): the traceback follows on stderr
            print(f"exodf: error: {type(e).__name__}: {e} (the details are on standard error)", flush=True)
        raise
    if rc == 130:  # typer turns KeyboardInterrupt into exit status 130 and returns it
        if program:
            _deaf()
        _error("exodf: interrupted; no partial output was written")
    if isinstance(rc, int) and rc:
        sys.exit(rc)


def run() -> None:
    """The ``exodf`` program (console script, ``python -m exodf``): :func:`main`, and once interrupted and
    cleaned up, deaf to further SIGINT/SIGTERM while Python shuts down.

    Python restores the default action of SIGINT part-way through its shutdown, so a second Ctrl-C (or a
    second ``kill``) in that window killed the process by signal: status -2 instead of 130 (seen under
    load). ``main()`` called in-process (tests) leaves the signals alone: ignored signals are inherited by
    the children a process starts later.
    """
    try:
        main(program=True)
    except SystemExit as e:
        if e.code == 130:  # also from commands that stop on an interrupt themselves (train)
            _deaf()
        raise


def _deaf() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # (not in the main thread)
            signal.signal(sig, signal.SIG_IGN)
