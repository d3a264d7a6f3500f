"""The ``exodf`` command line: a thin typer layer over the library.

Each sub-module holds the commands of one pipeline step and a ``register(app)`` function.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from ..errors import ExodfError

app = typer.Typer(
    name="exodf",
    help="Detect exocytosis events in TIRF movies with the ExoDeepFinder network.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


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


def main() -> None:
    """Entry point: quiet TensorFlow, run the app, turn ExodfError into one line and exit status 1."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tifffile").setLevel(logging.ERROR)  # its warnings duplicate our one-line errors
    try:
        app(standalone_mode=False)
    except ExodfError as e:
        print(f"exodf: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("exodf: interrupted; no partial output was written", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise
