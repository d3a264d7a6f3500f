"""Training checkpoints, history and curves on disk (the file side of :mod:`exodf.train`).

A checkpoint is a folder ``OUT/checkpoint/`` holding ``model.weights.h5`` (network), ``optimizer.npz``
(every Adam variable, its step count included), and ``state.json`` (global step, stage, epoch, the
sampler's random state, the history, the configuration). It is written into ``checkpoint.tmp/`` and
swapped in by renames, so an interruption at any moment leaves a complete checkpoint behind.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, write_text_atomic
from .errors import ExodfError

__all__ = ["CHECKPOINT", "save_checkpoint", "load_checkpoint", "require_checkpoint", "refuse_checkpoint",
           "has_checkpoint",
           "save_weights", "write_history", "plot_history"]

CHECKPOINT = "checkpoint"


def save_weights(net: Any, path: str | os.PathLike[str]) -> Path:
    """Save network weights as a Keras ``*.weights.h5`` file, atomically: the network's only (Keras also
    stores a compiled model's optimizer, three times the size, in a file meant for detection)."""
    p = Path(path)
    if not p.name.endswith(".weights.h5"):
        raise ValueError(f"{p}: Keras weights files must end with .weights.h5")
    if getattr(net, "optimizer", None) is not None:
        import keras

        bare = keras.Model.from_config(net.get_config())  # same layers, not compiled
        bare.set_weights(net.get_weights())
        net = bare
    with atomic_path(p, suffix=".weights.h5") as tmp:
        net.save_weights(tmp)
    return p


def save_checkpoint(out: str | os.PathLike[str], net: Any, state: dict[str, Any]) -> Path:
    """Write the network, its optimizer's variables and ``state`` (JSON-able) as ``out/checkpoint``."""
    root = Path(out)
    final, tmp, old = root / CHECKPOINT, root / f"{CHECKPOINT}.tmp", root / f"{CHECKPOINT}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    net.save_weights(tmp / "model.weights.h5")
    opt = [np.asarray(v.numpy()) for v in net.optimizer.variables]
    np.savez(tmp / "optimizer.npz", *opt)
    (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    # (without a final, an old one is what an interrupted swap left: kept until the new one is in place)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _checkpoint_dir(out: Path) -> Path | None:
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):  # .old survives only an interruption inside the swap
        d = out / name
        if (d / "state.json").is_file():
            return d
    return None


def require_checkpoint(out: str | os.PathLike[str]) -> Path:
    """The checkpoint folder to resume from in ``out``, or an ExodfError saying there is none."""
    root = Path(out)
    d = _checkpoint_dir(root)
    if d is None:
        raise ExodfError(f"{root}: no checkpoint to resume from (expected {root / CHECKPOINT}/state.json); "
                         "run without --resume to start a new training")
    return d


def has_checkpoint(out: str | os.PathLike[str]) -> bool:
    """Whether ``out`` holds a checkpoint to resume from (``checkpoint.old`` of an interrupted swap too)."""
    return _checkpoint_dir(Path(out)) is not None


def refuse_checkpoint(out: str | os.PathLike[str]) -> None:
    """An ExodfError if ``out`` holds a checkpoint that a new (not resumed) training would overwrite."""
    if (Path(out) / CHECKPOINT).exists() or has_checkpoint(out):
        raise ExodfError(f"{out}: holds a training checkpoint already; add --resume to continue it, or give "
                         "another output folder")


def load_checkpoint(out: str | os.PathLike[str], net: Any) -> dict[str, Any]:
    """Restore network and optimizer from ``out/checkpoint`` and return its state.

    The network must already be compiled with its optimizer.
    """
    d = require_checkpoint(out)
    try:
        state = json.loads((d / "state.json").read_text(encoding="utf-8"))
        with warnings.catch_warnings():  # Keras skips the optimizer stored by save_weights: restored below
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            net.load_weights(d / "model.weights.h5")
        with np.load(d / "optimizer.npz") as z:
            saved = [z[f"arr_{i}"] for i in range(len(z.files))]
    except (OSError, ValueError, KeyError) as e:
        raise ExodfError(f"{d}: the checkpoint cannot be read ({e}); delete it to start again") from None
    opt = net.optimizer
    if not opt.built:
        opt.build(net.trainable_variables)
    if len(saved) != len(opt.variables) or any(tuple(s.shape) != tuple(v.shape) for s, v in zip(saved, opt.variables)):
        raise ExodfError(f"{d}: the optimizer state does not fit this network; delete the checkpoint to start again")
    for v, s in zip(opt.variables, saved):
        v.assign(s)
    return state


def write_history(out: str | os.PathLike[str], history: list[dict[str, Any]]) -> Path:
    """Write the per-epoch history as ``out/history.csv``."""
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    lines = [",".join(keys)]
    for row in history:
        lines.append(",".join("" if row.get(k) is None else (f"{row[k]:.6g}" if isinstance(row[k], float)
                                                             else str(row[k])) for k in keys))
    path = Path(out) / "history.csv"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def plot_history(out: str | os.PathLike[str], history: list[dict[str, Any]]) -> Path:
    """Plot training/validation loss and validation F1 against the step as ``out/training_curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(out) / "training_curves.png"
    step = [r["step"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(step, [r["loss"] for r in history], label="training")
    if any(r.get("val_loss") is not None for r in history):
        ax1.plot(step, [r.get("val_loss") for r in history], label="validation")
    ax1.set_xlabel("step")
    ax1.set_ylabel("Tversky loss")
    ax1.legend()
    for key, name in (("val_f1_exocytosis", "exocytosis"), ("val_f1_spot", "bright spot")):
        ax2.plot(step, [r.get(key) for r in history], label=name)
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation voxel F1")
    ax2.set_ylim(0, 1)
    ax2.legend()
    for ax in (ax1, ax2):
        for r0, r1 in zip(history, history[1:]):
            if r1["patch"] != r0["patch"]:
                ax.axvline(r0["step"], color="0.8", lw=0.8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
