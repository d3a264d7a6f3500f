"""A built-in bright-spot detector in the spirit of ATLAS (the counter-examples of training).

ExoDeepFinder learns to tell exocytosis (class 2) from other bright spots (class 1: docked vesicles,
foci). The original obtains class 1 from ATLAS (Basset et al. 2015, run as ``-rad 21 -pval 0.001
-arealim 3``). This module does the same kind of detection on each frame, in numpy/scipy:

1. a multiscale Laplacian of Gaussian with automatic scale: for each pixel the largest scale-normalised
   response ``-σ² ∇²G_σ * I`` over ``scales`` (bright blobs give positive values);
2. local statistics of that response in a Gaussian window of σ ``window`` (21 px): its local mean ``m``
   and standard deviation ``s``, computed again without the pixels of a first detection (robust to crowding);
3. a pixel is a spot pixel when ``(R − m) / s`` exceeds the standard-normal quantile of ``1 − pfa``
   (probability of false alarm 0.001: 3.09);
4. 8-connected components of at least ``min_area`` pixels (3) are kept.

The result is a label map (T, Y, X) int32, one label per 2D component (labels are unique over the
movie), and :func:`spot_table` turns it into an :class:`~exodf.events.EventTable` of component centroids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable

import numpy as np
from scipy import ndimage as ndi

from .events import EventTable

__all__ = ["SpotConfig", "spot_labels", "spot_table", "spot_response"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SpotConfig:
    """Settings of :func:`spot_labels` (defaults: ATLAS's ``-rad 21 -pval 0.001 -arealim 3``).

    Attributes
    ----------
    scales
        LoG scales σ in pixels among which each pixel picks its strongest response.
    window
        σ of the Gaussian window of the local statistics (px).
    pfa
        Probability of false alarm of the per-pixel test.
    min_area
        Smallest component kept (px).
    robust_passes
        Passes that recompute the local statistics without the pixels already above the threshold (so that
        crowded spots do not inflate the local spread).
    chunk
        Frames processed at once (memory only, not the result).
    """

    scales: tuple[float, ...] = (1.0, 1.5, 2.0)
    window: float = 21.0
    pfa: float = 0.001
    min_area: int = 3
    robust_passes: int = 1
    chunk: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        if not self.scales or not all(math.isfinite(s) and s > 0 for s in self.scales):
            raise ValueError(f"SpotConfig.scales must be positive numbers, got {self.scales!r}")
        if not (math.isfinite(self.window) and self.window > 0):
            raise ValueError(f"SpotConfig.window must be > 0, got {self.window}")
        if not 0 < self.pfa < 0.5:
            raise ValueError(f"SpotConfig.pfa must be in (0, 0.5), got {self.pfa}")
        if self.min_area < 1:
            raise ValueError(f"SpotConfig.min_area must be >= 1, got {self.min_area}")
        if self.robust_passes < 0:
            raise ValueError(f"SpotConfig.robust_passes must be >= 0, got {self.robust_passes}")
        if self.chunk < 1:
            raise ValueError(f"SpotConfig.chunk must be >= 1, got {self.chunk}")

    @property
    def threshold(self) -> float:
        """The normalised-response threshold: the standard-normal quantile of ``1 − pfa``."""
        return NormalDist().inv_cdf(1.0 - self.pfa)


def spot_response(frames: np.ndarray, config: SpotConfig = SpotConfig()) -> np.ndarray:
    """The normalised multiscale LoG response ``(R − m) / s`` of frames (T, Y, X), float32."""
    f = np.asarray(frames, dtype=np.float32)
    if f.ndim == 2:
        f = f[None]
    resp = np.full(f.shape, -np.inf, dtype=np.float32)
    for s in config.scales:
        lap = (ndi.gaussian_filter(f, (0, s, s), order=(0, 2, 0), mode="reflect")
               + ndi.gaussian_filter(f, (0, s, s), order=(0, 0, 2), mode="reflect"))
        r = -(s * s) * lap
        np.maximum(resp, r, out=resp)
    w = (0, config.window, config.window)
    weight = np.ones_like(resp)
    z = resp
    for _ in range(1 + config.robust_passes):
        norm = np.maximum(ndi.gaussian_filter(weight, w, mode="reflect"), 1e-6)
        mean = ndi.gaussian_filter(weight * resp, w, mode="reflect") / norm
        sq = ndi.gaussian_filter(weight * resp * resp, w, mode="reflect") / norm
        sd = np.sqrt(np.maximum(sq - mean * mean, 1e-12))
        z = (resp - mean) / sd
        weight = (z <= config.threshold).astype(np.float32)  # the next pass ignores the spots themselves
    return z.astype(np.float32)


def spot_labels(movie: np.ndarray, config: SpotConfig = SpotConfig(),
                progress: Progress | None = None) -> np.ndarray:
    """Bright spots of each frame of ``movie`` (T, Y, X) as a label map (T, Y, X) int32 (0: none).

    Each label is one 8-connected 2D component of at least ``config.min_area`` pixels in one frame.
    """
    if movie.ndim != 3:
        raise ValueError(f"spot_labels: expected a (T, Y, X) movie, got shape {movie.shape}")
    n = movie.shape[0]
    out = np.zeros(movie.shape, dtype=np.int32)
    thr = config.threshold
    structure = np.ones((3, 3), dtype=bool)
    next_label = 1
    for a in range(0, n, config.chunk):
        b = min(n, a + config.chunk)
        binary = spot_response(movie[a:b], config) > thr
        for k in range(b - a):
            lab, m = ndi.label(binary[k], structure=structure)
            if m == 0:
                continue
            area = np.bincount(lab.ravel(), minlength=m + 1)
            keep = area >= config.min_area
            keep[0] = False
            relabel = np.zeros(m + 1, dtype=np.int32)
            n_keep = int(keep.sum())
            relabel[keep] = np.arange(next_label, next_label + n_keep, dtype=np.int32)
            next_label += n_keep
            out[a + k] = relabel[lab]
        if progress:
            progress("spots", b, n)
    return out


def spot_table(labels: np.ndarray) -> EventTable:
    """The centroid (x, y, frame) and ``area`` (px) of each labelled component of a (T, Y, X) label map."""
    idx = np.unique(labels)
    idx = idx[idx > 0]
    if idx.size == 0:
        z = np.zeros(0)
        return EventTable(z, z, z, {"area": z}, {"area": "px"})
    lab = labels.astype(np.int64, copy=False)
    ones = np.ones(labels.shape, dtype=np.float32)
    area = np.asarray(ndi.sum(ones, lab, idx), dtype=np.float64)
    centroids = np.asarray(ndi.center_of_mass(ones, lab, idx), dtype=np.float64).reshape(-1, 3)
    table = EventTable(centroids[:, 2], centroids[:, 1], centroids[:, 0], {"area": area}, {"area": "px"})
    return table.sorted()
