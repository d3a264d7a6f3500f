"""The one user-facing error type of exodf."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path


class ExodfError(Exception):
    """A problem the user can fix: the message names the file and the fix.

    The command-line interface prints the message on one line and exits with status 1.
    """


def option_error(e: Exception, renamed: Mapping[str, str] | None = None) -> ExodfError:
    """A settings object's ``ValueError`` in the command line's terms: ``"ClusterConfig.min_score must be
    >= 0"`` becomes ``"invalid option: --min-score must be >= 0"``; ``renamed`` maps the fields whose option
    has another name (``{"patch": "patch-sizes"}``)."""
    names = renamed or {}
    msg = re.sub(r"\b[A-Z][A-Za-z]*\.([a-z_][a-z0-9_]*)\b",
                 lambda m: "--" + names.get(m.group(1), m.group(1)).replace("_", "-"), str(e))
    return ExodfError(f"invalid option: {msg}")


def pip_install(extra: str) -> str:
    """The command that installs one of exodf's optional parts (``"batch"``, ``"zoo"``, ...): from the source
    folder this exodf runs from (exodf is installed from its folder, ``pip install -e .``), else by name."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return f"pip install -e '{root}[{extra}]'"
    return f"pip install 'exodf[{extra}]'"
