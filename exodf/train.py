"""Training and fine-tuning the ExoDeepFinder network from annotated movies.

The procedure is the original's: patches centred on objects with classes balanced per batch
(:func:`exodf.sampling.sample_batch`), the Tversky loss with α = β = 0.5 (summed over classes), Adam with
a learning rate of 1e-4, and a curriculum of growing patches with shrinking batches, each stage starting
from the weights of the previous one (8 → 16 → 32 → 48 px with batches of 256, 128, 32, 10 and random
shifts of 4, 8, 16, 32 voxels; 100 epochs of 100 steps each).

After each epoch the network is scored on fixed validation patches drawn from held-out movies (loss and
voxel precision/recall/F1 per class), a checkpoint is written (``OUT/checkpoint``), and ``history.csv`` and
``training_curves.png`` are updated; ``resume=True`` restarts from the checkpoint at the exact step, with
the optimizer's and the sampler's state. Weights are written as Keras ``*.weights.h5`` files, which
:func:`exodf.model.load_network` (``exodf detect --weights``, ``exodf package``) accepts: ``model.weights.h5``
after the last epoch (as the original), and ``best.weights.h5`` after the epoch of the last stage with the
lowest validation loss (the earlier stages' losses are measured on smaller patches: not comparable).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .atomic import write_text_atomic
from .checkpoint import (load_checkpoint, plot_history, refuse_checkpoint, require_checkpoint,
                         save_checkpoint, save_weights, write_history)
from .errors import ExodfError
from .sampling import TrainingMovie, sample_batch

LOG = logging.getLogger(__name__)  # the CLI shows warnings on stderr
BEST = "best.weights.h5"

__all__ = ["Stage", "TrainConfig", "ORIGINAL_CURRICULUM", "TrainResult", "tversky_loss", "train_network",
           "voxel_scores", "check_resumable"]

Progress = Callable[[str, int, int], None]
EpochCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Stage:
    """One stage of the curriculum.

    Attributes
    ----------
    patch
        Patch side in frames and pixels (a multiple of 4).
    batch
        Patches per step.
    shift
        Largest random shift of a patch centre from its object, per axis (voxels).
    epochs, steps
        Epochs of the stage, and steps per epoch.
    """

    patch: int
    batch: int
    shift: int
    epochs: int = 100
    steps: int = 100

    def __post_init__(self) -> None:
        if self.patch < 4 or self.patch % 4:
            raise ValueError(f"Stage.patch must be a positive multiple of 4, got {self.patch}")
        for name in ("batch", "epochs", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"Stage.{name} must be >= 1, got {getattr(self, name)}")
        if self.shift < 0:
            raise ValueError(f"Stage.shift must be >= 0, got {self.shift}")


ORIGINAL_CURRICULUM = (Stage(8, 256, 4), Stage(16, 128, 8), Stage(32, 32, 16), Stage(48, 10, 32))


@dataclass(frozen=True)
class TrainConfig:
    """How to train (defaults: the original's).

    Attributes
    ----------
    stages
        The curriculum.
    learning_rate
        Adam's learning rate.
    alpha, beta
        Tversky weights of false positives and false negatives (0.5, 0.5: the Dice loss).
    val_batches
        Validation batches per epoch (fixed patches per stage, drawn once).
    seed
        Seed of the patch sampler.
    """

    stages: tuple[Stage, ...] = ORIGINAL_CURRICULUM
    learning_rate: float = 1e-4
    alpha: float = 0.5
    beta: float = 0.5
    val_batches: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(s if isinstance(s, Stage) else Stage(**s) for s in self.stages))
        if not self.stages:
            raise ValueError("TrainConfig.stages must hold at least one stage")
        if not self.learning_rate > 0:
            raise ValueError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate}")
        for name in ("alpha", "beta"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"TrainConfig.seed must be >= 0, got {self.seed}")
        if self.val_batches < 0:
            raise ValueError(f"TrainConfig.val_batches must be >= 0, got {self.val_batches}")

    @property
    def total_steps(self) -> int:
        return sum(s.epochs * s.steps for s in self.stages)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_resumable(out: str | os.PathLike[str], config: TrainConfig) -> None:
    """An ExodfError unless ``out`` holds a checkpoint made with ``config``'s settings (checked before the
    movies are read: preparing them takes minutes)."""
    d = require_checkpoint(out)
    try:
        state = json.loads((d / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # a damaged checkpoint: load_checkpoint says what is wrong
    _same_settings(state.get("config"), config, Path(out))


def _same_settings(was: Any, config: TrainConfig, out: Path) -> None:
    now = json.loads(json.dumps(config.as_dict()))
    if was != now:
        raise ExodfError(f"{out}: the checkpoint was made with other training settings "
                         f"({_differences(was or {}, now)}); resume with the checkpoint's settings, or train on "
                         "from its weights in a new folder "
                         f"(--init {require_checkpoint(out) / 'model.weights.h5'} -o NEW_FOLDER)")


def _differences(before: dict[str, Any], now: dict[str, Any]) -> str:
    """What differs between two TrainConfig.as_dict(), as 'steps 10 (now 20)' (stage values comma-separated)."""
    out = []
    sb, sn = before.get("stages", []), now.get("stages", [])
    if len(sb) != len(sn):
        out.append(f"{len(sb)} stage(s) (now {len(sn)}), one per patch size")
    else:
        for name in ("patch", "batch", "shift", "epochs", "steps"):
            a, b = (",".join(str(s.get(name)) for s in stages) for stages in (sb, sn))
            if a != b:
                out.append(f"{name} {a} (now {b})")
    out += [f"{k.replace('_', ' ')} {before.get(k)} (now {now.get(k)})" for k in sorted(set(before) | set(now))
            if k != "stages" and before.get(k) != now.get(k)]
    return "; ".join(out)


@dataclass
class TrainResult:
    """Where the trained weights are, and what happened."""

    weights: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    finished: bool = True
    best: Path | None = None  # the weights of the last stage's epoch with the lowest validation loss
    best_step: int | None = None


def tversky_loss(alpha: float = 0.5, beta: float = 0.5) -> Callable[[Any, Any], Any]:
    """The Tversky loss ``C − Σ_c TP_c / (TP_c + α FP_c + β FN_c)`` with soft counts over the whole batch."""
    import keras

    ops = keras.ops

    def loss(y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        axes = tuple(range(len(y_pred.shape) - 1))
        tp = ops.sum(y_pred * y_true, axis=axes)
        fp = ops.sum(y_pred * (1.0 - y_true), axis=axes)
        fn = ops.sum((1.0 - y_pred) * y_true, axis=axes)
        ratio = tp / (tp + alpha * fp + beta * fn + 1e-7)
        return ops.cast(ops.shape(y_pred)[-1], y_pred.dtype) - ops.sum(ratio)

    loss.__name__ = "tversky_loss"
    return loss


def voxel_scores(truth: np.ndarray, pred: np.ndarray, label: int) -> tuple[float | None, float | None, float | None]:
    """Voxel precision, recall and F1 of class ``label`` (None where undefined: recall and F1 when the truth
    has no voxel of that class, e.g. the spot class of --no-spots)."""
    t, p = truth == label, pred == label
    tp = int((t & p).sum())
    fp, fn = int((~t & p).sum()), int((t & ~p).sum())
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fn else None
    return prec, rec, f1


def _validation_set(movies: list[TrainingMovie], stage: Stage, index: int, config: TrainConfig
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng([config.seed, 1000 + index])  # the same patches every epoch and on resume
    return [sample_batch(movies, stage.patch, stage.batch, stage.shift, rng) for _ in range(config.val_batches)]


def _validate(net: Any, batches: list[tuple[np.ndarray, np.ndarray]], loss_fn: Callable[[Any, Any], Any]
              ) -> dict[str, float | None]:
    if not batches:
        return {}
    import keras

    to_numpy = keras.ops.convert_to_numpy
    losses, truth, pred = [], [], []
    for x, y in batches:
        p = to_numpy(net(x, training=False))
        losses.append(float(to_numpy(loss_fn(y, p))))
        truth.append(np.argmax(y, axis=-1).astype(np.int8))
        pred.append(np.argmax(p, axis=-1).astype(np.int8))
    t, q = np.concatenate(truth), np.concatenate(pred)
    out: dict[str, float | None] = {"val_loss": float(np.mean(losses))}
    for label, name in ((2, "exocytosis"), (1, "spot")):
        prec, rec, f1 = voxel_scores(t, q, label)
        out.update({f"val_precision_{name}": prec, f"val_recall_{name}": rec, f"val_f1_{name}": f1})
    return out


def _diverged(out: Path, step: int, loss: float, saved: int, config: TrainConfig) -> str:
    kept = (f"{out / 'checkpoint'} still holds the weights of step {saved}, the last finished epoch"
            if saved else "nothing was saved")
    return (f"training diverged at step {step} (loss {loss}): the weights are no longer numbers and were not "
            f"saved; {kept}. Train again in a new folder with a lower --learning-rate (now "
            f"{config.learning_rate:g})")


def _check_sizes(movies: Sequence[TrainingMovie], config: TrainConfig) -> None:
    biggest = max(s.patch for s in config.stages)
    for m in movies:
        if min(m.frames.shape) < biggest:
            raise ValueError(f"movie {m.name!r} of shape {m.frames.shape} is smaller than the largest patch "
                             f"({biggest}) along an axis; give smaller patch sizes or larger movies")


def train_network(net: Any, train_movies: Sequence[TrainingMovie], val_movies: Sequence[TrainingMovie],
                  config: TrainConfig, out: str | Path, resume: bool = False, until_step: int | None = None,
                  max_seconds: float | None = None,
                  progress: Progress | None = None, on_epoch: EpochCallback | None = None,
                  metadata: dict[str, Any] | None = None) -> TrainResult:
    """Train ``net`` (from its current weights) through the curriculum, writing checkpoints into ``out``.

    Parameters
    ----------
    net
        The network (e.g. :func:`exodf.model.build_unet` or :func:`exodf.model.load_network`).
    train_movies, val_movies
        Prepared movies; validation falls back on the training movies when ``val_movies`` is empty.
    config
        Curriculum and optimisation settings.
    out
        Output folder: ``checkpoint/``, ``config.json``, ``history.csv``, ``training_curves.png``,
        ``stage<i>_patch<p>.weights.h5`` after each stage and ``model.weights.h5`` at the end.
    resume
        Continue from ``out/checkpoint`` (same configuration) instead of starting afresh.
    until_step
        Stop at the end of the first epoch that reaches this global step (then resume later).
    max_seconds
        Stop at the end of the first epoch that ends this many seconds after the start (a time budget).
    progress
        Called as ``progress("train", step, total_steps)`` after every step.
    on_epoch
        Called with each epoch's history row.
    metadata
        Written into ``out/config.json`` beside the settings (inputs, initial weights...).
    """
    import keras

    started = time.perf_counter()
    out = Path(out)
    train_movies, val_movies = list(train_movies), list(val_movies)
    if not train_movies:
        raise ValueError("train_network: no training movies")
    if not val_movies:
        LOG.warning("no movie held out for validation: the validation scores are measured on the training "
                    "movies (hold some out: val_movies, or --val in exodf train; or give more movies)")
        val_movies = list(train_movies)
    _check_sizes(train_movies + val_movies, config)
    loss_fn = tversky_loss(config.alpha, config.beta)
    net.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate), loss=loss_fn)
    cfg = config.as_dict()
    state: dict[str, Any] = {"step": 0, "stage": 0, "epoch": 0, "history": [], "config": cfg}
    rng = np.random.default_rng(config.seed)
    if resume:
        state = load_checkpoint(out, net)
        _same_settings(state.get("config"), config, out)
        rng.bit_generator.state = state["rng"]
    else:
        refuse_checkpoint(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.json", json.dumps({"train": cfg, **(metadata or {})}, indent=1) + "\n")
    history: list[dict[str, Any]] = list(state["history"])
    best: tuple[int, float] | None = tuple(state["best"]) if state.get("best") else None  # type: ignore[assignment]
    step, total = int(state["step"]), config.total_steps
    s0, e0 = int(state["stage"]), int(state["epoch"])
    for si in range(s0, len(config.stages)):
        stage = config.stages[si]
        val = _validation_set(val_movies, stage, si, config)
        for epoch in range(e0 if si == s0 else 0, stage.epochs):
            t0, losses = time.perf_counter(), []
            for _ in range(stage.steps):
                x, y = sample_batch(train_movies, stage.patch, stage.batch, stage.shift, rng)
                res = net.train_on_batch(x, y)
                losses.append(float(np.asarray(res[0] if isinstance(res, (list, tuple)) else res)))
                step += 1
                if not np.isfinite(losses[-1]):
                    raise ExodfError(_diverged(out, step, losses[-1], int(state["step"]), config))
                if progress:
                    progress("train", step, total)
            row: dict[str, Any] = {"step": step, "stage": si + 1, "patch": stage.patch, "epoch": epoch + 1,
                                   "loss": float(np.mean(losses))}
            row.update(_validate(net, val, loss_fn))
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            done_stage = epoch + 1 == stage.epochs
            nxt = (si + 1, 0) if done_stage else (si, epoch + 1)
            if done_stage:
                save_weights(net, out / f"stage{si + 1}_patch{stage.patch}.weights.h5")
            if si == len(config.stages) - 1 and row.get("val_loss") is not None and (
                    best is None or row["val_loss"] < best[1]):
                save_weights(net, out / BEST)  # before the checkpoint that records it
                best = (step, float(row["val_loss"]))
            state = {"step": step, "stage": nxt[0], "epoch": nxt[1], "history": history, "config": cfg,
                     "rng": rng.bit_generator.state, "best": best}
            save_checkpoint(out, net, state)
            write_history(out, history)
            plot_history(out, history)
            if on_epoch:
                on_epoch(row)
            over_time = max_seconds is not None and time.perf_counter() - started >= max_seconds
            if ((until_step is not None and step >= until_step) or over_time) and step < total:
                return TrainResult(out / "checkpoint" / "model.weights.h5", history, step, finished=False)
    final = save_weights(net, out / "model.weights.h5")
    return TrainResult(final, history, step, finished=True, best=out / BEST if best else None,
                       best_step=best[0] if best else None)
