"""Intensity normalisation, exactly as the original ExoDeepFinder (and the rdf's ``scale_range``)."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_frames", "normalize_frame", "frame_range", "apply_range", "EPSILON"]

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
