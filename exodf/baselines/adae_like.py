"""ADAE-like exocytosis detection: background-subtracted, multi-scale DoG enhancement and tracking.

Steps:

1. Each frame is smoothed with a Gaussian (σ = ``smooth_sigma``) and the median of the ``history``
   previous smoothed frames is subtracted (fewer at the movie start; frame 0 gives 0): what newly brightens.
2. That difference movie is enhanced per frame by differences of Gaussians at several scales
   (``G_s − G_{ratio·s}`` for s in ``dog_sigmas``); the enhanced image is their median across scales.
3. Threshold: the median over frames of each frame's maximum enhanced value (times ``threshold_factor``).
   Most frames hold no event, so their maximum is the noise's; frames with an event rise above it.
4. Spots are the local maxima above the threshold; spots repeated over consecutive frames (one event
   stays bright a few frames) are linked by nearest-neighbour tracking and merged into one event, at the
   frame and position of its largest enhanced value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from scipy import ndimage

from ..events import EventTable
from .tracking import link_spots, track_slices

__all__ = ["AdaeLikeConfig", "detect_adae_like", "enhance"]


@dataclass(frozen=True)
class AdaeLikeConfig:
    """Settings of :func:`detect_adae_like` (see the module docstring)."""

    smooth_sigma: float = 1.0
    history: int = 5
    dog_sigmas: tuple[float, ...] = (1.0, 1.5, 2.0)
    dog_ratio: float = 1.6
    threshold_factor: float = 1.0
    spot_radius: int = 3
    merge_distance: float = 3.0
    merge_gap: int = 2

    def __post_init__(self) -> None:
        if not self.smooth_sigma >= 0:
            raise ValueError(f"AdaeLikeConfig.smooth_sigma must be >= 0, got {self.smooth_sigma}")
        if self.history < 1:
            raise ValueError(f"AdaeLikeConfig.history must be >= 1, got {self.history}")
        if not self.dog_sigmas or any(not s > 0 for s in self.dog_sigmas):
            raise ValueError(f"AdaeLikeConfig.dog_sigmas must be positive, got {self.dog_sigmas}")
        if not self.dog_ratio > 1:
            raise ValueError(f"AdaeLikeConfig.dog_ratio must be > 1, got {self.dog_ratio}")
        if not self.threshold_factor > 0:
            raise ValueError(f"AdaeLikeConfig.threshold_factor must be > 0, got {self.threshold_factor}")
        if self.spot_radius < 1:
            raise ValueError(f"AdaeLikeConfig.spot_radius must be >= 1, got {self.spot_radius}")
        if not self.merge_distance >= 0 or self.merge_gap < 0:
            raise ValueError("AdaeLikeConfig.merge_distance and merge_gap must be >= 0")


def _background_difference(smooth: np.ndarray, history: int, chunk: int = 32) -> np.ndarray:
    """``smooth[t] − median(smooth[t−history:t])`` (fewer frames at the start, 0 on frame 0)."""
    n = smooth.shape[0]
    out = np.zeros_like(smooth)
    for t in range(1, min(history, n)):
        out[t] = smooth[t] - np.median(smooth[:t], axis=0)
    for start in range(history, n, chunk):
        stop = min(n, start + chunk)
        # windows[w] = smooth[start + w - history : start + w]
        win = np.lib.stride_tricks.sliding_window_view(smooth[start - history:stop - 1], history, axis=0)
        out[start:stop] = smooth[start:stop] - np.median(win, axis=-1)
    return out


def enhance(movie: np.ndarray, config: AdaeLikeConfig = AdaeLikeConfig()) -> np.ndarray:
    """Steps 1–2: the enhanced (T, Y, X) movie whose bright spots are new, spot-sized brightenings."""
    m = np.asarray(movie, dtype=np.float32)
    s = config.smooth_sigma
    smooth = ndimage.gaussian_filter(m, sigma=(0, s, s)) if s > 0 else m.copy()
    diff = _background_difference(smooth, config.history)
    dogs = []
    for sig in config.dog_sigmas:
        g1 = ndimage.gaussian_filter(diff, sigma=(0, sig, sig))
        g2 = ndimage.gaussian_filter(diff, sigma=(0, sig * config.dog_ratio, sig * config.dog_ratio))
        dogs.append(g1 - g2)
    return np.median(np.stack(dogs), axis=0) if len(dogs) > 1 else dogs[0]


def detect_adae_like(movie: np.ndarray, config: AdaeLikeConfig = AdaeLikeConfig(),
                     progress: Optional[Callable[[str, int, int], None]] = None) -> EventTable:
    """Detect exocytosis events in a (T, Y, X) movie with the ADAE-like pipeline.

    Returns
    -------
    EventTable
        One event per merged track; columns ``response`` (largest enhanced value), ``threshold`` and
        ``duration`` (frames the event stayed above the threshold).
    """
    movie = np.asarray(movie)
    if movie.ndim != 3:
        raise ValueError(f"detect_adae_like: movie must be (T, Y, X), got shape {movie.shape}")
    c = config
    if progress is not None:
        progress("adae-like", 0, 2)
    e = enhance(movie, c)
    threshold = float(np.median(e.reshape(e.shape[0], -1).max(axis=1))) * c.threshold_factor
    size = (1, 2 * c.spot_radius + 1, 2 * c.spot_radius + 1)
    peaks = (e > threshold) & (e == ndimage.maximum_filter(e, size=size, mode="constant"))
    t, y, x = np.nonzero(peaks)
    if progress is not None:
        progress("adae-like", 1, 2)
    track = link_spots(t, y, x, c.merge_distance, c.merge_gap)
    rows = []
    for idx in track_slices(track, t):
        best = idx[int(np.argmax(e[t[idx], y[idx], x[idx]]))]
        rows.append((float(x[best]), float(y[best]), float(t[best]), float(e[t[best], y[best], x[best]]),
                     float(t[idx].max() - t[idx].min() + 1)))
    if progress is not None:
        progress("adae-like", 2, 2)
    a = np.array(rows, dtype=np.float64).reshape(-1, 5)
    order = np.lexsort((a[:, 0], a[:, 1], a[:, 2]))
    a = a[order]
    return EventTable(a[:, 0], a[:, 1], a[:, 2], {"response": a[:, 3], "threshold": np.full(len(a), threshold),
                                                  "duration": a[:, 4]})
