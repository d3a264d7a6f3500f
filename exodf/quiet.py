"""Keep TensorFlow's import notices off the console (the CLI's process and the batch workers)."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
from typing import Any, Iterator

__all__ = ["quiet_tensorflow_import"]

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


def quiet_tensorflow_import() -> None:
    """Have the next ``import tensorflow`` of this process keep :data:`_TF_IMPORT_NOISE` off stderr (no-op once
    TensorFlow is imported)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
