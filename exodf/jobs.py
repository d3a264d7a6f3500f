"""File-level jobs: what one CLI command does, as a library function (read, compute, write atomically)."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .atomic import atomic_path
from .cluster import ClusterConfig
from .detect import DetectConfig, Detection, detect_events
from .errors import ExodfError, option_error
from .events import EVENT_FORMATS, write_events
from .io import MappedPages, create_probability_map, read_mask, read_movie
from .normalize import clipped_parts, dark_frames, uniform_frames
from .predict import DEFAULT_TILE, TILINGS, InferenceConfig
from .stream import DTYPES

LOG = logging.getLogger(__name__)  # the CLI shows warnings on stderr

__all__ = ["DetectRequest", "detect_file", "load_detector", "METHODS", "method_detector"]


@dataclass(frozen=True)
class DetectRequest:
    """The options of ``exodf detect`` (see its ``--help``)."""

    fmt: str = "imagej"
    weights: Optional[Path] = None
    model: Optional[Path] = None
    tiling: str = "context"
    patch_size: Optional[int] = None  # None: the original's 160
    tile: Optional[tuple[int, ...]] = None  # None: DEFAULT_TILE
    min_size: int = 1
    min_score: float = 0.0
    mask: Optional[Path] = None
    exclude_edges: int = 0
    pixel_size: Optional[float] = None
    row_numbers: bool = True
    channel: Optional[int] = None
    plane: Optional[int] = None
    dtype: str = "float32"
    keep_outliers: bool = False

    def config(self) -> DetectConfig:
        if self.tiling not in TILINGS:
            raise ExodfError(f"--tiling {self.tiling!r}: choose {', '.join(repr(t) for t in TILINGS)}")
        if self.model is not None and self.weights is not None:
            raise ExodfError("--model runs a bioimage.io package with its own weights; give --model or --weights, "
                             "not both")
        if self.tiling == "candidates" and self.model is not None:
            raise ExodfError("--tiling candidates runs the Keras network (--weights), not a bioimage.io --model: "
                             "drop --model, or use --tiling context")
        if self.patch_size is not None and self.tiling != "original":
            raise ExodfError(f"--patch-size sets the original's patches, for --tiling original only (this is --tiling "
                             f"{self.tiling}): drop --patch-size, or add --tiling original")
        if self.tile is not None and (self.tiling == "original" or self.model is not None):
            raise ExodfError("--tile sets the tiles of --tiling context and candidates with the Keras network; " + (
                "--tiling original takes --patch-size" if self.tiling == "original" else
                "a bioimage.io --model runs on receptive-field tiles of its own") + ": drop --tile")
        if self.dtype not in DTYPES:
            raise ExodfError(f"--dtype {self.dtype!r}: choose {', '.join(DTYPES)}")
        if self.fmt not in EVENT_FORMATS:
            raise ExodfError(f"--format {self.fmt!r}: choose {', '.join(EVENT_FORMATS)}")
        if self.pixel_size is not None and not self.pixel_size > 0:
            raise ExodfError(f"--pixel-size must be > 0 (µm per pixel), got {self.pixel_size}")
        if self.pixel_size is not None and self.fmt != "imagej":
            raise ExodfError(f"--pixel-size calibrates ImageJ tables; the original's {self.fmt} is in pixels: drop "
                             "--pixel-size, or use --format imagej")
        if self.dtype != "float32" and self.tiling == "original":
            raise ExodfError(f"--dtype {self.dtype}: --tiling original reproduces the original, in float32; use "
                             "--tiling context or candidates, or drop --dtype")
        if self.dtype != "float32" and self.model is not None:
            raise ExodfError(f"--dtype {self.dtype} applies to the Keras network (--weights), not to a bioimage.io "
                             "--model (it runs as its package says): drop --model or --dtype")
        try:
            return DetectConfig(
                inference=InferenceConfig(tiling=self.tiling, dtype=self.dtype,  # type: ignore[arg-type]
                                          clip_outliers=not self.keep_outliers,
                                          tile=tuple(self.tile or DEFAULT_TILE),  # type: ignore[arg-type]
                                          patch=InferenceConfig.patch if self.patch_size is None else self.patch_size),
                cluster=ClusterConfig(min_size=self.min_size, min_score=self.min_score),
                exclude_edges=self.exclude_edges)
        except ValueError as e:  # "ClusterConfig.min_score must be ..." -> "--min-score must be ..."
            raise option_error(e, {"patch": "patch-size"}) from None


_NETS: dict[str, Any] = {}


def load_detector(weights: Optional[Path]) -> Any:
    """The network for ``weights`` (published by default), loaded once per process and file version (weights
    written again in the same place, e.g. by a new training in a notebook, are loaded again)."""
    from .model import load_network
    from .pretrained import resolve_weights

    path = resolve_weights(weights)
    st = Path(path).stat()
    where = f"{Path(path).resolve()}:"
    key = f"{where}{st.st_mtime_ns}:{st.st_size}"
    if key not in _NETS:
        for old in [k for k in _NETS if k.startswith(where)]:  # an earlier version of that file: not kept
            del _NETS[old]
        _NETS[key] = load_network(path)
    return _NETS[key]


#: the detectors exodf runs itself (`exodf compare`, `exodf benchmark`)
METHODS = ("exodf", "exoj-like", "adae-like")


def method_detector(name: str, weights: Optional[Path] = None) -> Callable[..., Any]:
    """``detector(movie, progress=None) -> EventTable`` for one of :data:`METHODS` (``weights``: exodf's
    network; loaded now, so that bad weights fail before any movie is read)."""
    if name == "exodf":
        net = load_detector(weights)
        return lambda movie, progress=None: detect_events(movie, net, progress=progress).events
    if name == "exoj-like":
        from .baselines import detect_exoj_like

        return detect_exoj_like
    if name == "adae-like":
        from .baselines import detect_adae_like

        return detect_adae_like
    raise ExodfError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")


def _progress_callback(prog: Any, label: str) -> Any:
    if prog is None:
        return None
    tasks: dict[str, Any] = {}

    def cb(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = prog.add_task(f"{label} {stage}", total=total)
        prog.update(tasks[stage], completed=done, total=total)

    return cb


def _slices(frames: np.ndarray, most: int = 8) -> str:
    """0-based frames as 1-based Slice runs: ``[0, 1, 2, 9]`` -> ``"1-3, 10"`` (the first ``most`` runs)."""
    runs: list[list[int]] = []
    for t in (int(v) + 1 for v in frames):
        if runs and t == runs[-1][1] + 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    text = ", ".join(f"{a}" if a == b else f"{a}, {b}" if b == a + 1 else f"{a}-{b}" for a, b in runs[:most])
    return text + (", ..." if len(runs) > most else "")


def outliers_text(label: str | os.PathLike[str], outliers: np.ndarray) -> str:
    """``"cell1.tif: 6 pixel(s) stay far brighter ... (x 5, y 5; ...)"``: where a movie's static outliers are."""
    ys, xs = np.nonzero(outliers)
    where = "; ".join(f"x {x}, y {y}" for y, x in list(zip(ys, xs))[:3])
    if ys.size > 3:
        where = f"e.g. {where}; all within x {xs.min()}-{xs.max()}, y {ys.min()}-{ys.max()}"
    return (f"{label}: {ys.size} pixel(s) stay far brighter than the cell all through the movie (hot or "
            f"saturated camera pixels, a bead, debris or a very bright static spot: {where})")


def _warn_outliers(movie_path: str | os.PathLike[str], movie: np.ndarray, inference: InferenceConfig,
                   package: bool, mask: Optional[np.ndarray] = None, mask_path: Optional[Path] = None) -> None:
    """Say where pixels stay far brighter than the cell (:func:`exodf.normalize.static_outliers`) or, with a
    mask, brighter than the cell outside it (:func:`exodf.normalize.bright_outside`), and whether they are
    clipped or, fed as they are, may blind the network or squeeze the cell's contrast."""
    outliers, outside = clipped_parts(movie, mask)
    if outliers is None and outside is None:
        return
    kept = inference.tiling == "original" or package or not inference.clip_outliers
    how = ("--tiling original" if inference.tiling == "original" else "a bioimage.io --model" if package
           else "--keep-outliers")
    if outliers is not None:
        what = outliers_text(movie_path, outliers)
        if kept:
            LOG.warning(f"{what}; with {how} they enter the network as they are and can blind it within 34 px of "
                        "them (events there missed): run without it to have them clipped")
        else:
            LOG.warning(f"{what}: clipped to each frame's 99th percentile so that they do not blind the network "
                        "around them (events on those pixels cannot be found; --keep-outliers feeds them as "
                        "they are)")
    if outside is not None:
        what = (f"{movie_path}: {int(outside.sum())} pixel(s) outside the cell of --mask {mask_path} stay "
                "brighter than the cell (a brighter neighbouring cell?)")
        if kept:
            LOG.warning(f"{what}; with {how} they set each frame's 99th percentile and squeeze the cell's "
                        "contrast (its events can be missed): run without it to have them clipped")
        else:
            LOG.warning(f"{what}: clipped to each frame's 99th percentile of the rest, so that the cell keeps "
                        "its contrast (--keep-outliers feeds them as they are)")


def detect_file(movie_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                request: DetectRequest = DetectRequest(), probabilities: Optional[Path] = None,
                progress: Any = None) -> tuple[int, int]:
    """Detect the events of one movie file and write its event table (and probabilities) atomically.

    Returns (number of events, number of frames).
    """
    config = request.config()
    movie = read_movie(movie_path, channel=request.channel, plane=request.plane)
    if 2 * request.exclude_edges >= movie.shape[0]:
        raise ExodfError(f"{movie_path}: --exclude-edges {request.exclude_edges} leaves none of its "
                         f"{movie.shape[0]} frames; give a smaller --exclude-edges")
    dark = dark_frames(movie)
    flat = np.setdiff1d(uniform_frames(movie), dark)  # (a black frame is said to be dark only)
    MappedPages(movie).release_before(movie.shape[0] - 1)  # the scans' pages: not kept resident (long movies)
    for odd, what in ((dark, "far darker than the others"), (flat, "uniform (no contrast: saturated or constant)")):
        if odd.size:
            after = np.setdiff1d(np.unique((odd[:, None] + np.arange(1, 4)).ravel()), odd)
            after = after[after < movie.shape[0]]  # exodf marks an event a frame or two after its onset
            LOG.warning(f"{movie_path}: {odd.size} frame(s) {what} (Slice {_slices(odd)}): events on them are "
                        "lost, and the frames just after can show false events (every spot seems to appear"
                        + (f"; Slice {_slices(after)}" if after.size else "") + "); cut these frames off the "
                        "movie, or exclude them from analyses")
    mask = read_mask(request.mask, movie.shape[1:]) if request.mask is not None else None
    _warn_outliers(movie_path, movie, config.inference, request.model is not None, mask, request.mask)
    label = Path(movie_path).name
    cb = _progress_callback(progress, label)
    with contextlib.ExitStack() as stack:
        prob_map = None
        if probabilities is not None:
            tmp = stack.enter_context(atomic_path(probabilities))
            prob_map = create_probability_map(tmp, *movie.shape)
        if request.model is not None:
            from .zoo.run import detect_with_package  # bioimage.io packages through bioimageio.core

            det: Detection = detect_with_package(request.model, movie, config, mask, cb, prob_map)
        else:
            net = load_detector(request.weights)
            det = detect_events(movie, net, config, mask, cb, prob_map, keep_labels=False)
        if prob_map is not None:
            prob_map.flush()
            del prob_map
        write_events(det.events, out_path, fmt=request.fmt, row_numbers=request.row_numbers,
                     pixel_size=request.pixel_size)
    return len(det.events), int(np.asarray(movie.shape)[0])
