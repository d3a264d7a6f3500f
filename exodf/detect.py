"""The detection pipeline: movie -> normalisation -> network -> segmentation -> events.

Pure compute on arrays; files are read and written by :mod:`exodf.io` and :mod:`exodf.events`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from .cluster import ClusterConfig, labels_to_events
from .evaluate import exclude_events
from .events import EventTable
from .predict import InferenceConfig, iter_probability_blocks, labels_from_probabilities, predict_probabilities

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["DetectConfig", "Segmentation", "Detection", "segment_movie", "events_from_segmentation",
           "detect_events"]

Progress = Callable[[str, int, int], None]  # (stage, done, total)


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
    """Argmax labels (T, Y, X) int8 and the exocytosis probability (T, Y, X) float32."""

    labels: np.ndarray
    exocytosis: np.ndarray


@dataclass
class Detection:
    events: EventTable
    segmentation: Segmentation
    n_frames: int
    seconds: float

    @property
    def events_per_frame(self) -> float:
        return len(self.events) / max(1, self.n_frames)


def segment_movie(movie: np.ndarray, net: "keras.Model", config: InferenceConfig = InferenceConfig(),
                  progress: Progress | None = None, probabilities_out: np.ndarray | None = None) -> Segmentation:
    """Normalise ``movie`` (T, Y, X), run the network, and return labels and exocytosis probability.

    ``probabilities_out``, if given, receives all class probabilities as (T, C, Y, X) (e.g. a memory-mapped
    ImageJ hyperstack).
    """
    if movie.ndim != 3:
        raise ValueError(f"segment_movie: expected a (T, Y, X) movie, got shape {movie.shape}")
    tile_progress = (lambda d, n: progress("network", d, n)) if progress else None
    if config.tiling == "original":
        probs = predict_probabilities(movie, net, config, tile_progress)
        if probabilities_out is not None:
            probabilities_out[...] = np.moveaxis(probs, -1, 1)
        return Segmentation(labels_from_probabilities(probs), probs[..., 2].astype(np.float32))
    labels = np.empty(movie.shape, dtype=np.int8)
    exo = np.empty(movie.shape, dtype=np.float32)
    for region, probs in iter_probability_blocks(movie, net, config, tile_progress):
        labels[region] = labels_from_probabilities(probs)
        exo[region] = probs[..., 2]
        if probabilities_out is not None:
            t, y, x = region
            probabilities_out[t, :, y, x] = np.moveaxis(probs, -1, 1)
    return Segmentation(labels, exo)


def events_from_segmentation(seg: Segmentation, config: DetectConfig = DetectConfig(),
                             mask: np.ndarray | None = None, progress: Progress | None = None) -> EventTable:
    """Mean-shift the exocytosis voxels into events, then apply the edge and mask filters."""
    cl_progress = (lambda d, n: progress("clustering", d, n)) if progress else None
    events = labels_to_events(seg.labels, seg.exocytosis, config.cluster, progress=cl_progress)
    return exclude_events(events, seg.labels.shape[0], config.exclude_edges, mask)


def detect_events(movie: np.ndarray, net: "keras.Model", config: DetectConfig = DetectConfig(),
                  mask: np.ndarray | None = None, progress: Progress | None = None,
                  probabilities_out: np.ndarray | None = None) -> Detection:
    """Every exocytosis event of ``movie`` (T, Y, X): the whole pipeline on arrays."""
    if mask is not None and mask.shape != movie.shape[1:]:
        raise ValueError(f"detect_events: mask shape {mask.shape} differs from the frame shape {movie.shape[1:]}")
    t0 = time.perf_counter()
    seg = segment_movie(movie, net, config.inference, progress, probabilities_out)
    events = events_from_segmentation(seg, config, mask, progress)
    return Detection(events, seg, movie.shape[0], time.perf_counter() - t0)
