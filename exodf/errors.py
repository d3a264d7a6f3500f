"""The one user-facing error type of exodf."""

from __future__ import annotations


class ExodfError(Exception):
    """A problem the user can fix: the message names the file and the fix.

    The command-line interface prints the message on one line and exits with status 1.
    """
