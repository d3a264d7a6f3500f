"""Intensity normalisation, exactly as the original ExoDeepFinder (and the rdf's ``scale_range``)."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_frames", "normalize_frame", "frame_range", "apply_range", "EPSILON", "dark_frames"]

# a frame with p99 - p1 <= EPSILON becomes 0 (flat); for a movie whose values stay below 1 (floats scaled
# down), EPSILON times its scale instead, so that such a movie is not taken as flat everywhere
EPSILON = 1e-3


def frame_range(frame: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> tuple[np.float32, np.float32]:
    """The (p1, p99) of one frame, as :func:`normalize_frame` uses them."""
    f = np.asarray(frame, dtype=np.float32)
    return np.percentile(f, lower), np.percentile(f, upper)


def apply_range(data: np.ndarray, p_lo: np.float32, p_hi: np.float32) -> np.ndarray:
    """(data - p_lo) / (p_hi - p_lo) in float32 (any part of a frame); 0 where the frame is flat."""
    f = np.asarray(data, dtype=np.float32)
    scale = min(1.0, max(abs(float(p_lo)), abs(float(p_hi))))
    if p_hi - p_lo > EPSILON * scale:
        return (f - p_lo) / (p_hi - p_lo)
    return np.zeros(f.shape, dtype=np.float32)


def normalize_frame(frame: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """(frame - p1) / (p99 - p1) in float32, without clipping; a flat frame becomes 0."""
    return apply_range(frame, *frame_range(frame, lower, upper))


def normalize_frames(movie: np.ndarray, lower: float = 1.0, upper: float = 99.0,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Normalise each frame of a (T, Y, X) movie independently; returns float32.

    ``movie`` may be a memory map: frames are read one at a time.
    """
    if movie.ndim != 3:
        raise ValueError(f"normalize_frames: expected a (T, Y, X) movie, got shape {movie.shape}")
    res = np.empty(movie.shape, dtype=np.float32) if out is None else out
    for t in range(movie.shape[0]):
        res[t] = normalize_frame(movie[t], lower, upper)
    return res


def dark_frames(movie: np.ndarray, fraction: float = 0.25) -> np.ndarray:
    """Indices of frames far darker than the movie's typical frame (a closed shutter, a blank first frame):
    a mean above the camera's floor (the lowest 1st percentile of any frame) by less than ``fraction`` of
    the median frame's. Photobleaching, which dims the cell but not below that, is not dark.

    Each frame is normalised on its own, so such a frame becomes noise or zeros, and the cell's spots all
    seem to appear on the next bright frame: the network marks some of them as events there.
    """
    if movie.ndim != 3 or movie.shape[0] < 3:
        return np.zeros(0, dtype=np.int64)
    means = np.empty(movie.shape[0])
    lows = np.empty(movie.shape[0])
    for t in range(movie.shape[0]):
        f = np.asarray(movie[t])
        means[t] = float(np.mean(f, dtype=np.float64))
        lows[t] = float(np.percentile(f[::4, ::4], 1))  # a sample is enough for the floor
    floor, typical = float(lows.min()), float(np.median(means))
    if not typical > floor:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(means - floor < fraction * (typical - floor))
