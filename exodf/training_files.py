"""File-level jobs behind ``exodf spots`` and ``exodf train``: read inputs, call the library, write outputs."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .errors import ExodfError, option_error
from .evaluate import crowds_top_left, units_warnings
from .events import TABLE_SUFFIXES, EventTable, read_events, write_events
from .io import pairing_key, read_movie, write_tiff
from .normalize import NormalizedMovie, static_outliers
from .sampling import TrainingMovie
from .spots import SpotConfig, spot_labels, spot_table
from .targets import nearest_voxels, make_target, training_objects
from .train import ORIGINAL_CURRICULUM, Stage, TrainConfig, TrainResult, train_network

LOG = logging.getLogger(__name__)  # the CLI shows warnings on stderr

__all__ = ["spots_file", "read_spots", "parse_stages", "TrainRequest", "train_files", "prepare_movie",
           "accelerator"]

Progress = Callable[[str, int, int], None]
SPOT_POINT_RADIUS = 2  # a spot given as a point is painted as a disk of this radius in its frame


def spots_file(movie_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
               config: SpotConfig = SpotConfig(), progress: Progress | None = None,
               channel: int | None = None, plane: int | None = None) -> int:
    """Detect the bright spots of a movie; write a label TIFF (``.tif``) or a centroid table (csv/xml).

    Returns the number of spots (2D components) found.
    """
    out = Path(out_path)
    if out.suffix.lower() not in (".tif", ".tiff", *TABLE_SUFFIXES):  # before any work
        raise ExodfError(f"{out}: write the spots as a label map (.tif) or a table (.csv, .xml)")
    movie = read_movie(movie_path, channel=channel, plane=plane)
    labels = spot_labels(movie, config, progress)
    if out.suffix.lower() in (".tif", ".tiff"):
        n = int(labels.max())
        write_tiff(out, labels.astype(np.uint16 if n < 65536 else np.float32))  # ImageJ: no int32
        return n
    table = spot_table(labels)
    write_events(table, out, fmt="xml" if out.suffix.lower() == ".xml" else "imagej")
    return len(table)


def read_spots(path: str | os.PathLike[str], shape: tuple[int, int, int]) -> np.ndarray:
    """A user's bright spots as a mask (T, Y, X): a label/mask TIFF of the movie's shape, or a point table
    (each point painted as a disk of radius 2 in its frame)."""
    p = Path(path)
    if p.suffix.lower() in TABLE_SUFFIXES:
        table = read_events(p)
        mask = np.zeros(shape, dtype=np.int8)
        r = SPOT_POINT_RADIUS
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        disk = yy * yy + xx * xx <= r * r
        points = np.floor(table.coords() + 0.5).astype(np.int64)
        lo, hi = np.array([0, -r, -r]), np.array([shape[0], shape[1] + r, shape[2] + r])  # a disk partly inside
        outside = int(np.sum(~((points >= lo) & (points < hi)).all(axis=1)))
        if outside and outside == len(table):
            raise ExodfError(f"{p}: none of its {len(table)} spots lies inside the movie (shape {tuple(shape)}, "
                             "frames x rows x columns); give the spot table of this movie (X, Y in pixels, Slice "
                             "1-based)")
        if outside:
            LOG.warning(f"{p}: {outside} of its {len(table)} spots lie outside the movie (shape {tuple(shape)}) "
                        "and are not used: is it the spot table of this movie?")
        for t, y, x in points:
            if not (0 <= t < shape[0]):
                continue
            y0, x0 = max(0, y - r), max(0, x - r)
            y1, x1 = min(shape[1], y + r + 1), min(shape[2], x + r + 1)
            if y0 < y1 and x0 < x1:
                mask[t, y0:y1, x0:x1] |= disk[y0 - y + r:y1 - y + r, x0 - x + r:x1 - x + r]
        return mask
    labels = read_movie(p)
    if labels.shape != tuple(shape):
        raise ExodfError(f"{p}: the spot map has shape {labels.shape} but its movie has {tuple(shape)}; give "
                         "the label map made from that movie (exodf spots MOVIE -o spots.tif)")
    return labels > 0


#: Frames between an event's annotated (brightest) frame and where its target is painted. The published
#: network marks events one frame later: on the reference movie its detections sit 1.24 frames after the
#: simulated truth's brightest frame, as targets painted one frame late give (the footprint's centroid is
#: 0.3 frame after where it is painted). Painting at +1 keeps that timing when fine-tuning.
TARGET_OFFSET = 1


def prepare_movie(movie: np.ndarray, events: EventTable, spots: np.ndarray | None = None, name: str = "",
                  match_distance: float = 5.0, target_offset: int = TARGET_OFFSET) -> TrainingMovie:
    """A movie ready for :func:`exodf.train.train_network`: normalised frames, the target (events painted
    ``target_offset`` frames after their table frame; ``spots``: a (T, Y, X) label map of bright spots, class
    1, e.g. from :func:`exodf.spots.spot_labels`, or None), the patch centres."""
    painted = EventTable(events.x, events.y, events.frame + target_offset, events.columns, events.units)
    target = make_target(movie.shape, painted, spots, match_distance)
    # normalised as patches are read: a float32 copy of every movie would hold 4 B/voxel through training;
    # hot or saturated pixels clipped as exodf detect clips them
    return TrainingMovie(NormalizedMovie(movie, outliers=static_outliers(movie)), target,
                         training_objects(target, painted), name)


def parse_stages(patch_sizes: str = "8,16,32,48", batch_sizes: str | None = None, shifts: str | None = None,
                 epochs: str = "100", steps: str = "100") -> tuple[Stage, ...]:
    """Stages from comma lists, one stage per patch size.

    A shorter list is extended with its last value (as the original's); a longer one is an error. Without
    ``batch_sizes`` or ``shifts``, each stage gets the original's value for its place in the curriculum
    (256, 128, 32, 10 and 4, 8, 16, 32; the last repeated).
    """
    lists: list[list[int]] = []
    for name, text in (("--patch-sizes", patch_sizes), ("--batch-sizes", batch_sizes), ("--shifts", shifts),
                       ("--epochs", epochs), ("--steps", steps)):
        if text is None:
            lists.append([])
            continue
        try:
            values = [int(v) for v in str(text).replace("[", "").replace("]", "").split(",") if v.strip()]
        except ValueError:
            raise ExodfError(f"{name} {text!r}: give integers separated by commas, e.g. 8,16,32,48") from None
        if not values:
            raise ExodfError(f"{name}: give at least one value")
        lists.append(values)
    n = len(lists[0])
    defaults = ([], [s.batch for s in ORIGINAL_CURRICULUM], [s.shift for s in ORIGINAL_CURRICULUM], [], [])
    for k, (name, values) in enumerate(zip(("--patch-sizes", "--batch-sizes", "--shifts", "--epochs", "--steps"),
                                           lists)):
        if not values:
            values = lists[k] = defaults[k][:n]
        if len(values) > n:
            raise ExodfError(f"{name} has {len(values)} values for {n} stage(s) (--patch-sizes "
                             f"{patch_sizes}): give one per stage, or fewer (the last is repeated)")
    lists = [v + [v[-1]] * (n - len(v)) for v in lists]
    try:
        return tuple(Stage(*row) for row in zip(*lists))
    except ValueError as e:  # "Stage.patch must be ..." -> "--patch-sizes must be ..."
        raise option_error(e, {"patch": "patch-sizes", "batch": "batch-sizes", "shift": "shifts"}) from None


def accelerator() -> str:
    """'GPU: <names>' when TensorFlow sees a GPU, else 'CPU'."""
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    except Exception:  # pragma: no cover - another Keras backend
        gpus = []
    return "GPU: " + ", ".join(g.name for g in gpus) if gpus else "CPU"


@dataclass(frozen=True)
class TrainRequest:
    """The inputs and options of ``exodf train`` (see its ``--help``)."""

    movies: tuple[Path, ...]
    events: tuple[Path, ...]
    out: Path
    spots: tuple[Path, ...] = ()
    detect_spots: bool = True
    init: str = "published"
    stages: tuple[Stage, ...] = ORIGINAL_CURRICULUM
    learning_rate: float = 1e-4
    val: Optional[int] = None
    val_batches: int = 10
    seed: int = 0
    resume: bool = False
    until_step: Optional[int] = None
    max_minutes: Optional[float] = None
    pixel_size: Optional[float] = None
    target_offset: int = TARGET_OFFSET
    channel: Optional[int] = None
    plane: Optional[int] = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for option, v in (("--until-step", self.until_step), ("--max-minutes", self.max_minutes)):
            if v is not None and not v > 0:
                raise ExodfError(f"{option} must be > 0, got {v}")
        if self.target_offset < 0:
            raise ExodfError(f"--target-offset must be >= 0 (frames after the table's frame), got {self.target_offset}")

    def n_val(self) -> int:
        n = len(self.movies)
        k = self.val if self.val is not None else (max(1, round(0.2 * n)) if n >= 2 else 0)
        if not 0 <= k < n:
            raise ExodfError(f"--val {k}: hold out between 0 and {n - 1} of the {n} movies for validation")
        return k


def _initial_network(init: str, seed: int = 0) -> Any:
    from .model import build_unet, load_network
    from .pretrained import published_weights

    if init == "scratch":
        import keras

        keras.utils.set_random_seed(seed)  # the same --seed, the same initial weights
        return build_unet()
    if init == "published":
        return load_network(published_weights())
    if not Path(init).exists():
        raise ExodfError(f"--init {init}: no such weights file; give published, scratch or the path of a "
                         ".h5/.keras weights file")
    return load_network(init)


def _check_out(req: TrainRequest, meta: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """The output folder fits the request: no checkpoint unless resuming; resuming, one made with the same
    training settings, inputs and target options. Returns the checkpoint's recorded config.json ({} if none)."""
    from .checkpoint import refuse_checkpoint
    from .train import check_resumable

    from .atomic import check_output_folder

    check_output_folder(req.out)
    if not req.resume:
        refuse_checkpoint(req.out)
        return {}
    check_resumable(req.out, config)
    try:
        before = json.loads((req.out / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no record of the inputs: nothing to compare
    for key in ("train_movies", "validation_movies", "events"):
        was = [str(Path(p).resolve()) for p in before.get(key, [])]
        now = [str(Path(p).resolve()) for p in meta[key]]
        if key in before and was != now:
            raise ExodfError(f"--resume: the checkpoint in {req.out} was trained with other {key.replace('_', ' ')} "
                             f"({', '.join(before[key])}); resume with the same inputs in the same order, or "
                             "start a new folder")
    for key, option in (("spots", "--spots/--no-spots"), ("pixel_size", "--pixel-size"),
                        ("target_offset", "--target-offset"), ("channel", "--channel"), ("plane", "--plane")):
        was, now = before.get(key), meta[key]
        if key == "spots" and isinstance(was, list) and isinstance(now, list):
            was, now = [str(Path(p).resolve()) for p in was], [str(Path(p).resolve()) for p in now]
        if key in before and was != now:
            raise ExodfError(f"--resume: the checkpoint in {req.out} was trained with {option} giving "
                             f"{before[key]!r}, not {meta[key]!r}; resume with the same options, or start a new "
                             "folder")
    return before


def _past_the_end(events: EventTable, shape: tuple[int, ...], offset: int) -> int:
    """Events inside the movie whose target, painted ``offset`` frames later, falls after its last frame."""
    c = nearest_voxels(events).reshape(-1, 3)
    inside = (c >= 0).all(axis=1) & (c[:, 0] < shape[0]) & (c[:, 1] < shape[1]) & (c[:, 2] < shape[2])
    return int((inside & (c[:, 0] + offset >= shape[0])).sum())


def _check_pairs(movies: Sequence[Path], files: Sequence[Path], option: str) -> None:
    """An ExodfError when a table is named after another movie of the list than its own (swapped tables
    train on the wrong labels without a word)."""
    keys = [pairing_key(Path(m)) for m in movies]
    for i, f in enumerate(files):
        k = pairing_key(Path(f))
        if k != keys[i] and keys.count(k) == 1:
            raise ExodfError(f"{option}: {f} is given for {movies[i]} but named after {movies[keys.index(k)]}; "
                             f"give {option} once per movie, in the movies' order")


def train_files(req: TrainRequest, progress: Progress | None = None,
                on_epoch: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Read the annotated movies, build targets (with built-in or given bright spots) and train."""
    if not req.movies:
        raise ExodfError("give at least one movie to train on")
    if len(req.events) != len(req.movies):
        raise ExodfError(f"--events: give one event table per movie ({len(req.movies)} movies, "
                         f"{len(req.events)} tables), in the same order")
    if req.spots and len(req.spots) != len(req.movies):
        raise ExodfError(f"--spots: give one spot map or table per movie ({len(req.movies)} movies, "
                         f"{len(req.spots)} spot files), in the same order")
    _check_pairs(req.movies, req.events, "--events")
    if req.spots:
        _check_pairs(req.movies, req.spots, "--spots")
    try:
        config = TrainConfig(stages=req.stages, learning_rate=req.learning_rate, val_batches=req.val_batches,
                             seed=req.seed)
    except ValueError as e:  # "TrainConfig.learning_rate must be ..." -> "--learning-rate must be ..."
        raise option_error(e) from None
    n_val = req.n_val()
    n_train = len(req.movies) - n_val
    meta = {"init": req.init, "device": accelerator(),
            "train_movies": [str(p) for p in req.movies[:n_train]],
            "validation_movies": [str(p) for p in req.movies[n_train:]],
            "events": [str(p) for p in req.events], "spots": [str(p) for p in req.spots] or
            ("built-in detector" if req.detect_spots else "none"), "pixel_size": req.pixel_size,
            "target_offset": req.target_offset, "channel": req.channel, "plane": req.plane, **req.extra}
    tables = [read_events(ep, pixel_size=req.pixel_size) for ep in req.events]
    if not any(len(t) for t in tables[:n_train]):
        named = ", ".join(str(ep) for ep in req.events[:n_train])
        raise ExodfError(f"{named}: no event in the training movies' tables, so the network would learn that "
                         "exocytosis never happens; give the tables with the events (an empty table is fine for "
                         "some movies: they are examples without exocytosis)")
    before = _check_out(req, meta, config)  # cheap checks first: the folder, the initial weights, each movie's size
    if "init" in before:
        meta["init"] = before["init"]  # resumed: the weights it started from, not the checkpoint's
    net = _initial_network(req.init, req.seed)
    biggest = max(s.patch for s in config.stages)
    prepared: list[TrainingMovie] = []
    for i, (mp, ep) in enumerate(zip(req.movies, req.events)):
        movie = read_movie(mp, channel=req.channel, plane=req.plane)
        if min(movie.shape) < biggest:
            raise ExodfError(f"{mp}: shape {movie.shape} is smaller than the largest patch ({biggest}) along an "
                             "axis; give smaller --patch-sizes or larger movies")
        events = tables[i]
        if req.pixel_size is None and crowds_top_left(events, tuple(movie.shape)):  # hours of training on it
            raise ExodfError(f"{ep}: all {len(events)} events lie in the top-left quarter of {mp} (shape "
                             f"{movie.shape}), as X/Y in µm read as pixels would: give the pixel size "
                             "(--pixel-size, µm per pixel), or --pixel-size 1 if the table is in pixels")
        for w in units_warnings(events, str(ep), tuple(movie.shape), calibrated=req.pixel_size is not None):
            LOG.warning(w)
        if req.spots:
            spots: np.ndarray | None = read_spots(req.spots[i], movie.shape)
        elif req.detect_spots:
            spots = spot_labels(movie)
        else:
            spots = None
        m = prepare_movie(movie, events, spots, name=Path(mp).name, target_offset=req.target_offset)
        outliers = getattr(m.frames, "outliers", None)
        if outliers is not None:
            from .jobs import outliers_text

            LOG.warning(f"{outliers_text(mp, outliers)}: clipped to each frame's 99th percentile while training, "
                        "as exodf detect clips them (a bioimage.io package made of these weights does not)")
        spots = None  # (the next movie's spot map is not made beside this one's)
        inside = len(m.objects.events)
        late = _past_the_end(events, movie.shape, req.target_offset)
        why = (f" ({late} of them in the last {req.target_offset} frame(s): their target is painted "
               f"--target-offset {req.target_offset} frame(s) later, past the end)" if late else "")
        if len(events) and not inside:  # (an empty table is a movie without exocytosis: negative examples)
            raise ExodfError(f"{ep}: none of its {len(events)} events can be used inside {mp} (shape "
                             f"{movie.shape}){why}; check that the table belongs to the movie (X, Y in pixels, "
                             "or --pixel-size; Slice 1-based)")
        outside = len(events) - inside - late
        if outside > 0:
            LOG.warning(f"{ep}: {outside} of its {len(events)} events lie outside {mp} (shape {movie.shape}) and "
                        "are not used")
        if late:
            LOG.warning(f"{ep}: {late} of its {len(events)} events are in the last {req.target_offset} frame(s) of "
                        f"{mp}, where their target (painted --target-offset {req.target_offset} frame(s) later) "
                        "would lie past the movie's end: they are not used")
        if len(m.objects.events) == 0 and len(m.objects.spots) == 0:
            raise ExodfError(f"{mp}: neither an event nor a bright spot to learn from; give its events, or "
                             "--spots, or leave it out")
        prepared.append(m)
        if progress:
            progress("prepare", i + 1, len(req.movies))
    train_set, val_set = prepared[:n_train], prepared[n_train:]
    try:
        return train_network(net, train_set, val_set, config, req.out, resume=req.resume,
                             until_step=req.until_step,
                             max_seconds=None if req.max_minutes is None else 60 * req.max_minutes,
                             progress=progress, on_epoch=on_epoch, metadata=meta)
    except ValueError as e:
        raise ExodfError(f"cannot train: {e}") from None

