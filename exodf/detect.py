"""The detection pipeline: movie -> normalisation -> network -> segmentation -> events.

Pure compute on arrays; files are read and written by :mod:`exodf.io` and :mod:`exodf.events`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Union

import numpy as np

from .cluster import EXOCYTOSIS, ClusterConfig, points_to_events
from .evaluate import exclude_events, scored_frames
from .events import EventTable
from .io import check_movie
from .model import N_CLASSES
from .predict import SLC, InferenceConfig, iter_probability_blocks, labels_from_probabilities, predict_probabilities

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["DetectConfig", "Segmentation", "Detection", "segment_movie", "collect_segmentation",
           "events_from_segmentation", "detect_events"]

Progress = Callable[[str, int, int], None]  # (stage, done, total)
WHOLE: SLC = (slice(None), slice(None), slice(None))
# (region, probabilities (t, y, x, 3)) or (region, probabilities, keep mask (t, y, x))
Block = Union[tuple[SLC, np.ndarray], tuple[SLC, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DetectConfig:
    """Everything that decides the events found in a movie.

    Attributes
    ----------
    inference
        How the network runs over the movie (tiling scheme, tile size).
    cluster
        Coordinate extraction (mean-shift bandwidth, size and score filters).
    exclude_edges
        Drop events within this many frames of the movie's start and end (the paper's evaluation uses 25).
    """

    inference: InferenceConfig = field(default_factory=InferenceConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    exclude_edges: int = 0

    def __post_init__(self) -> None:
        if self.exclude_edges < 0:
            raise ValueError(f"DetectConfig.exclude_edges must be >= 0, got {self.exclude_edges}")


@dataclass
class Segmentation:
    """What the network says about a movie, kept compact enough for a 1000-frame movie.

    Attributes
    ----------
    labels
        Argmax labels (T, Y, X) int8: 0 background, 1 bright spot, 2 exocytosis; None where not kept (a
        movie larger than memory needs only the rest).
    points
        (N, 3) int32 (t, y, x) of the exocytosis voxels (``labels == 2``), in C order.
    scores
        (N,) float32 exocytosis probability of each of those voxels.
    exocytosis_max
        (Y, X) float32 exocytosis probability's maximum over time (for pictures).
    shape
        The movie's (T, Y, X).
    """

    labels: np.ndarray | None
    points: np.ndarray
    scores: np.ndarray
    exocytosis_max: np.ndarray
    shape: tuple[int, int, int]


def collect_segmentation(shape: tuple[int, int, int], blocks: Iterable[Block],
                         probabilities_out: np.ndarray | None = None, keep_labels: bool = True) -> Segmentation:
    """Assemble a :class:`Segmentation` of a (T, Y, X) movie from (region, probabilities (t, y, x, 3)) blocks
    that cover it once, without ever holding the probabilities of the whole movie.

    A block may carry a third item, a (t, y, x) bool mask of the voxels it contributes (candidate tiling:
    its regions overlap, its masks do not); voxels no block contributes are background.
    ``probabilities_out``, if given, receives all class probabilities as (T, C, Y, X). Without
    ``keep_labels`` memory follows the exocytosis voxels only, not the movie's size.
    """
    labels = np.zeros(shape, dtype=np.int8) if keep_labels else None
    exo_max = np.zeros(shape[1:], dtype=np.float32)
    points, scores = [], []
    for region, probs, *rest in blocks:
        keep = rest[0] if rest else None
        lab = labels_from_probabilities(probs)
        exo = probs[..., 2]
        if keep is not None:
            lab = np.where(keep, lab, np.int8(0))
            exo = np.where(keep, exo, np.float32(0))
        if labels is not None:
            if keep is None:
                labels[region] = lab
            else:
                labels[region][keep] = lab[keep]
        idx = np.nonzero(lab == EXOCYTOSIS)
        if idx[0].size:
            origin = np.array([r.start or 0 for r in region], dtype=np.int32)
            points.append(np.stack(idx, axis=1).astype(np.int32) + origin)
            scores.append(exo[idx].astype(np.float32))
        np.maximum(exo_max[region[1:]], exo.max(axis=0), out=exo_max[region[1:]])
        if probabilities_out is not None:
            t, y, x = region
            if keep is None:
                probabilities_out[t, :, y, x] = np.moveaxis(probs, -1, 1)
            else:
                np.copyto(probabilities_out[t, :, y, x], np.moveaxis(probs, -1, 1), where=keep[:, None])
    pts = np.concatenate(points) if points else np.empty((0, 3), dtype=np.int32)
    sc = np.concatenate(scores) if scores else np.empty(0, dtype=np.float32)
    order = np.lexsort(pts.T[::-1])
    return Segmentation(labels, pts[order], sc[order], exo_max, tuple(shape))  # type: ignore[arg-type]


@dataclass
class Detection:
    """What :func:`detect_events` found: the events, the network's segmentation, the movie's length, the time
    it took, and how many frames at each end were excluded (``DetectConfig.exclude_edges``)."""

    events: EventTable
    segmentation: Segmentation
    n_frames: int
    seconds: float
    exclude_edges: int = 0

    @property
    def events_per_frame(self) -> float:
        """Events per frame counted: those left after ``exclude_edges`` (as ``exodf detect`` and evaluate)."""
        return len(self.events) / scored_frames(self.n_frames, self.exclude_edges)


def segment_movie(movie: np.ndarray, net: "keras.Model", config: InferenceConfig = InferenceConfig(),
                  progress: Progress | None = None, probabilities_out: np.ndarray | None = None,
                  keep_labels: bool = True, mask: np.ndarray | None = None) -> Segmentation:
    """Normalise ``movie`` (T, Y, X), run the network, and return its :class:`Segmentation`.

    ``probabilities_out``, if given, receives all class probabilities as (T, C, Y, X) (e.g. a memory-mapped
    ImageJ hyperstack). ``mask``: the cell's (Y, X) mask, if known: pixels outside it brighter than the
    cell are clipped before the network (:func:`exodf.normalize.clipped_pixels`; not by original tiling).
    """
    if movie.ndim != 3:
        raise ValueError(f"segment_movie: expected a (T, Y, X) movie, got shape {movie.shape}")
    want = (movie.shape[0], N_CLASSES) + movie.shape[1:]
    if probabilities_out is not None and tuple(probabilities_out.shape) != want:
        raise ValueError(f"probabilities_out: shape {tuple(probabilities_out.shape)}, expected (T, C, Y, X) = {want} "
                         "(the layout of an ImageJ hyperstack; predict_probabilities returns (T, Y, X, C))")
    tile_progress = (lambda d, n: progress("network", d, n)) if progress else None
    if config.tiling == "candidates" and probabilities_out is not None:  # outside the boxes: background
        probabilities_out[:, 0] = 1
        probabilities_out[:, 1:] = 0
    if config.tiling == "original":
        blocks = [(WHOLE, predict_probabilities(movie, net, config, tile_progress))]
        return collect_segmentation(movie.shape, blocks, probabilities_out, keep_labels)
    return collect_segmentation(movie.shape, iter_probability_blocks(movie, net, config, tile_progress, mask),
                                probabilities_out, keep_labels)


def events_from_segmentation(seg: Segmentation, config: DetectConfig = DetectConfig(),
                             mask: np.ndarray | None = None, progress: Progress | None = None) -> EventTable:
    """Mean-shift the exocytosis voxels into events, then apply the edge and mask filters."""
    cl_progress = (lambda d, n: progress("clustering", d, n)) if progress else None
    events = points_to_events(seg.points, seg.scores, config.cluster, progress=cl_progress)
    return exclude_events(events, seg.shape[0], config.exclude_edges, mask)


def detect_events(movie: np.ndarray, net: "keras.Model", config: DetectConfig = DetectConfig(),
                  mask: np.ndarray | None = None, progress: Progress | None = None,
                  probabilities_out: np.ndarray | None = None, keep_labels: bool = True) -> Detection:
    """Every exocytosis event of ``movie`` (T, Y, X): the whole pipeline on arrays.

    ``keep_labels=False`` drops the dense label volume from the result (see :class:`Segmentation`);
    ``probabilities_out``, if given, receives the class probabilities as (T, C, Y, X) (see
    :func:`segment_movie`). ``mask``: the cell's (Y, X) bool mask: events outside it are dropped, and pixels
    outside it brighter than the cell are clipped before the network (see :func:`segment_movie`). Raises
    :class:`~exodf.errors.ExodfError` for a movie no event can be detected in (:func:`exodf.io.check_movie`).
    """
    check_movie(movie, "detect_events: the movie")
    if not hasattr(net, "layers"):  # a weights path given where the network goes
        raise TypeError(f"detect_events: net must be a Keras network, got {type(net).__name__}; load one with "
                        "exodf.load_network(path)")
    if mask is not None and mask.shape != movie.shape[1:]:
        raise ValueError(f"detect_events: mask shape {mask.shape} differs from the frame shape {movie.shape[1:]}")
    t0 = time.perf_counter()
    seg = segment_movie(movie, net, config.inference, progress, probabilities_out, keep_labels, mask)
    events = events_from_segmentation(seg, config, mask, progress)
    return Detection(events, seg, movie.shape[0], time.perf_counter() - t0, config.exclude_edges)
