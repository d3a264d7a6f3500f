"""The ``exodf`` command line: a thin typer layer over the library.

Each sub-module holds the commands of one pipeline step and a ``register(app)`` function.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
from typing import NoReturn

import typer

from ..errors import ExodfError
from ..quiet import quiet_tensorflow_import

app = typer.Typer(
    name="exodf",
    help="Detect exocytosis events in TIRF movies with the ExoDeepFinder network.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

_errors_to_stdout = False


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"exodf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(errors_to_stdout: bool = typer.Option(
        False, "--errors-to-stdout", help="Print error messages on standard output too: ImageJ's exec() shows "
        "only that (the Fiji macros use it). Give it before the command: exodf --errors-to-stdout detect ..."),
        version: bool = typer.Option(False, "--version", help="Print exodf's version and exit.", callback=_version,
                                     is_eager=True),
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


def _is_usage_error(e: BaseException) -> bool:
    # click's ClickException, or its copy inside typer (typer >= 0.2x vendors click as typer._click)
    return any(c.__name__ == "ClickException" for c in type(e).__mro__) and hasattr(e, "show")


def main(*, program: bool = False) -> None:
    """Entry point: quiet TensorFlow, run the app, turn errors into one line and a non-zero exit status.

    ExodfError and usage errors: status 1 (2 for usage), interruption (Ctrl-C, SIGTERM): 130, a file that
    cannot be written or read (permissions, a folder in the way, a full disk): status 1 with the path and the
    reason.
    ``program``: called as the ``exodf`` program (:func:`run`), not in-process.
    """
    global _errors_to_stdout
    _errors_to_stdout = False  # (set by --errors-to-stdout; main() may run again in the same process)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from ..io import quiet_tifffile

    quiet_tifffile()  # its messages duplicate our one-line errors
    quiet_tensorflow_import()
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
        from ..atomic import os_error_text

        _error(f"exodf: error: {os_error_text(e)}")
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
        _error("exodf: interrupted; no partly written file was left")
    if isinstance(rc, int) and rc:
        sys.exit(rc)


def run() -> None:
    """The ``exodf`` program (console script, ``python -m exodf``): :func:`main`; once interrupted and cleaned
    up, it ends with status 130 at once.

    Two ways CPython had of ending an interrupted run by SIGINT (status -2 instead of 130, seen once in a while
    under load): Python restores the default action of SIGINT part-way through its shutdown, so a second Ctrl-C
    (or ``kill``) in that window killed the process; and under ``python -m``, a KeyboardInterrupt that arrived
    while code from a string was running (``exec``/``eval``: namedtuple, dataclasses, TensorFlow's tracing) marks
    the run as "ended by an unhandled KeyboardInterrupt" even though it was caught, and the interpreter kills
    itself with SIGINT after its shutdown (bpo-1054041's rule, which runs after everything else). So after the
    interruption the program runs the exit functions (logging's flush, libraries' clean-up), flushes its output
    and leaves by ``os._exit(130)``: temporary files are already gone, every output file was closed when the
    work unwound. ``main()`` called in-process (tests) returns or raises as usual and leaves the signals alone.
    """
    try:
        try:
            main(program=True)
        except SystemExit as e:
            if e.code == 130:  # also from commands that stop on an interrupt themselves (train)
                _exit_interrupted()
            raise
    except KeyboardInterrupt:  # a late one, raised while main() or the lines above were exiting
        _exit_interrupted()


def _exit_interrupted() -> NoReturn:
    _deaf()
    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)  # what Python's shutdown would run first
    if run_exit_functions is not None:
        with contextlib.suppress(Exception):
            run_exit_functions()  # (logging's flush among them)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # (closed, or a broken pipe: nothing more can be said)
            stream.flush()
    os._exit(130)


def _deaf() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # (not in the main thread)
            signal.signal(sig, signal.SIG_IGN)
