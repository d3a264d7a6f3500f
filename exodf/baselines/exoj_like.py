"""ExoJ-like exocytosis detection: the conventional pipeline of ExoJ (Liu et al. 2024), in numpy.

Steps, as ExoJ's code does them (parameter names are ExoJ's in brackets):

1. Spots: per frame, the à trous B3-spline wavelet transform (kernel 1/16, 1/4, 3/8, 1/4, 1/16 dilated
   by 2^(j-1), mirror borders). On each selected scale j the coefficients below ``k · λ_j · MAD_j`` are
   zeroed, with ``MAD_j = median|w − median w| / 0.6745`` and ``λ_j = sqrt(2 ln(N / 4^j))`` (the universal
   threshold at that scale, N pixels) [detection threshold "wavelet scale" k]. The kept coefficients are
   summed; spots are its positive local maxima.
2. Tracks: greedy nearest-neighbour linking [spatial search radius 2 px, temporal search depth 1 frame],
   tracks of at least 2 spots [minimal event size].
3. Each track is extended by 4 frames before and after at its first/last position [expand frames]; its
   intensity curve is the maximum of the raw movie within the spot radius on each frame.
4. Tests: the peak (largest intensity within the track's own frames, moved forward while the curve does
   not fall) must come after the first point and be brighter than every extended frame before the track
   (peak test on ΔF); ``dF/σ = max|d − median d| / (MAD(d)/0.6745)`` of the first differences d must
   reach ``min_df_sigma``; ``y = a + b·exp(−x/τ)`` fitted from the peak on (≥ 5 points) must have
   R² ≥ ``min_decay_r2``; a 2D Gaussian fitted at the peak must have R² ≥ ``min_gaussian_r2``.

The event is the spot at the peak: its position and (0-based) frame. Defaults are the ExoDeepFinder
paper's best ExoJ setting: detection threshold (scale) 5, decay R² 0.8, radius (Gaussian) R² 0.7,
dF/σ 3.8; the rest are ExoJ's defaults for a vesicle radius of 2–3 px (wavelet scale 2, i.e. 3 px).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from scipy import ndimage

from ..events import EventTable
from .tracking import link_spots, track_slices

__all__ = ["ExojLikeConfig", "detect_exoj_like", "atrous_spot_map"]

_B3 = np.array([1 / 16, 1 / 4, 3 / 8, 1 / 4, 1 / 16])


@dataclass(frozen=True)
class ExojLikeConfig:
    """Settings of :func:`detect_exoj_like` (see the module docstring)."""

    scale_threshold: float = 5.0
    scales: tuple[int, ...] = (2,)
    spot_radius: int = 2
    search_radius: float = 2.0
    max_gap: int = 1
    min_track_length: int = 2
    expand_frames: int = 4
    min_fit_points: int = 5
    min_decay_r2: float = 0.8
    min_gaussian_r2: float = 0.7
    min_df_sigma: float = 3.8

    def __post_init__(self) -> None:
        if not self.scale_threshold > 0:
            raise ValueError(f"ExojLikeConfig.scale_threshold must be > 0, got {self.scale_threshold}")
        if not self.scales or any(not 1 <= s <= 6 for s in self.scales):
            raise ValueError(f"ExojLikeConfig.scales must be wavelet scales within 1..6, got {self.scales}")
        for name in ("spot_radius", "min_track_length", "min_fit_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"ExojLikeConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_gap", "expand_frames"):
            if getattr(self, name) < 0:
                raise ValueError(f"ExojLikeConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.search_radius >= 0:
            raise ValueError(f"ExojLikeConfig.search_radius must be >= 0, got {self.search_radius}")


def _smooth(a: np.ndarray, step: int, axes: tuple[int, ...]) -> np.ndarray:
    kernel = np.zeros(4 * step + 1)
    kernel[::step] = _B3
    for ax in axes:
        a = ndimage.convolve1d(a, kernel, axis=ax, mode="mirror")
    return a


def atrous_spot_map(movie: np.ndarray, scales: tuple[int, ...] = (2,), k: float = 3.0) -> np.ndarray:
    """Sum of the thresholded à trous wavelet coefficients of each frame (see the module docstring)."""
    a = np.asarray(movie, dtype=np.float32)
    frames = a[None] if a.ndim == 2 else a
    n_pix = frames.shape[1] * frames.shape[2]
    out = np.zeros(frames.shape, dtype=np.float32)
    prev = frames
    for j in range(1, max(scales) + 1):
        cur = _smooth(prev, 2 ** (j - 1), axes=(1, 2))
        if j in scales:
            w = prev - cur
            med = np.median(w, axis=(1, 2), keepdims=True)
            mad = np.median(np.abs(w - med), axis=(1, 2), keepdims=True) / 0.6745
            lam = math.sqrt(2.0 * math.log(max(n_pix / 4 ** j, 1.0 + 1e-9)))
            out += np.where(w >= k * lam * mad, w, 0.0)
        prev = cur
    return out[0] if a.ndim == 2 else out


def _local_maxima(spot_map: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = (1, 2 * radius + 1, 2 * radius + 1)
    peak = (spot_map > 0) & (spot_map == ndimage.maximum_filter(spot_map, size=size, mode="constant"))
    # plateaus: keep one maximum per connected plateau
    lab, n = ndimage.label(peak, structure=np.array([[[0] * 3] * 3, [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                                                     [[0] * 3] * 3]))
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    flat = np.arange(spot_map.size, dtype=np.float64).reshape(spot_map.shape)
    idx = np.asarray(ndimage.minimum(flat, lab, np.arange(1, n + 1)), dtype=np.int64)
    t, y, x = np.unravel_index(idx, spot_map.shape)
    return t.astype(np.int64), y.astype(np.int64), x.astype(np.int64)


def _disc_max(movie: np.ndarray, radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    fp = (yy ** 2 + xx ** 2 <= radius ** 2)[None]
    return ndimage.maximum_filter(movie, footprint=fp, mode="nearest")


def df_sigma(curve: np.ndarray) -> float:
    """ExoJ's dF/σ (MAD): largest deviation of the first differences from their median, in robust SDs."""
    d = np.diff(np.asarray(curve, dtype=np.float64), prepend=curve[0])
    med = np.median(d)
    res = np.abs(d - med)
    mad = np.median(res) / 0.6745
    if mad <= 0:
        return math.inf if res.max() > 0 else 0.0
    return float(res.max() / mad)


_TAUS = np.geomspace(0.25, 200.0, 80)


def fit_decay(y: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares ``y = a + b·exp(−x/τ)`` on x = 0, 1, ...; returns (a, b, τ, R²).

    τ is searched on a log grid (0.25–200 frames); a and b are solved exactly for each τ.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.arange(y.size, dtype=np.float64)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    if y.size < 3 or ss_tot <= 0:
        return float(y.mean()), 0.0, math.nan, 0.0
    e = np.exp(-x[None, :] / _TAUS[:, None])                      # (n_tau, n)
    em, ym = e.mean(axis=1, keepdims=True), y.mean()
    cov = ((e - em) * (y - ym)).sum(axis=1)
    var = ((e - em) ** 2).sum(axis=1)
    b = np.where(var > 0, cov / np.where(var > 0, var, 1.0), 0.0)
    a = ym - b * em[:, 0]
    ss_res = ((y[None, :] - a[:, None] - b[:, None] * e) ** 2).sum(axis=1)
    i = int(np.argmin(ss_res))
    return float(a[i]), float(b[i]), float(_TAUS[i]), float(1.0 - ss_res[i] / ss_tot)


def gaussian_r2(frame: np.ndarray, y: int, x: int, radius: int) -> float:
    """R² of a 2D isotropic Gaussian + offset fitted to the (2r+1)² window around (y, x) (r = radius + 2)."""
    from scipy.optimize import curve_fit

    r = radius + 2
    y0, y1, x0, x1 = max(0, y - r), min(frame.shape[0], y + r + 1), max(0, x - r), min(frame.shape[1], x + r + 1)
    win = np.asarray(frame[y0:y1, x0:x1], dtype=np.float64)
    if win.size < 9:
        return 0.0
    yy, xx = np.mgrid[y0:y1, x0:x1]
    coords = np.stack([yy.ravel(), xx.ravel()]).astype(np.float64)
    z = win.ravel()

    def model(c: np.ndarray, amp: float, cy: float, cx: float, sig: float, off: float) -> np.ndarray:
        return off + amp * np.exp(-((c[0] - cy) ** 2 + (c[1] - cx) ** 2) / (2 * sig ** 2))

    p0 = (float(z.max() - np.median(z)), float(y), float(x), max(1.0, radius / 2), float(np.median(z)))
    try:
        p, _ = curve_fit(model, coords, z, p0=p0, maxfev=400)
    except (RuntimeError, ValueError):
        return 0.0
    ss_tot = float(((z - z.mean()) ** 2).sum())
    if ss_tot <= 0 or p[0] <= 0:
        return 0.0
    return float(1.0 - ((z - model(coords, *p)) ** 2).sum() / ss_tot)


def detect_exoj_like(movie: np.ndarray, config: ExojLikeConfig = ExojLikeConfig(),
                     progress: Optional[Callable[[str, int, int], None]] = None) -> EventTable:
    """Detect exocytosis events in a (T, Y, X) movie with the ExoJ-like pipeline.

    Returns
    -------
    EventTable
        One event per accepted track, at its peak; columns ``df_sigma``, ``decay_r2``, ``tau`` (frames),
        ``gaussian_r2``, ``delta_f`` and ``duration`` (frames of the track).
    """
    movie = np.asarray(movie, dtype=np.float32)
    if movie.ndim != 3:
        raise ValueError(f"detect_exoj_like: movie must be (T, Y, X), got shape {movie.shape}")
    c = config
    spot_map = atrous_spot_map(movie, c.scales, c.scale_threshold)
    t, y, x = _local_maxima(spot_map, c.spot_radius)
    track = link_spots(t, y, x, c.search_radius, c.max_gap)
    bright = _disc_max(movie, c.spot_radius)
    n_t = movie.shape[0]
    rows: list[tuple[float, ...]] = []
    tracks = track_slices(track, t)
    for i, idx in enumerate(tracks):
        if progress is not None and i % 200 == 0:
            progress("exoj-like tracks", i, len(tracks))
        if idx.size < c.min_track_length:
            continue
        tf, ty, tx = t[idx], y[idx], x[idx]
        # positions on every frame of the extended track (gaps keep the last position)
        f_first, f_last = int(tf[0]), int(tf[-1])
        frames = np.arange(max(0, f_first - c.expand_frames), min(n_t, f_last + c.expand_frames + 1))
        k = np.clip(np.searchsorted(tf, frames, side="right") - 1, 0, idx.size - 1)
        py, px = ty[k], tx[k]
        curve = bright[frames, py, px].astype(np.float64)
        own = (frames >= f_first) & (frames <= f_last)
        pk = int(np.flatnonzero(own)[0] + np.argmax(curve[own]))
        while pk + 1 < curve.size and curve[pk + 1] >= curve[pk]:
            pk += 1
        before = curve[frames < f_first]
        if pk == 0 or (before.size and curve[pk] <= before.max()):
            continue  # no rise: a bright spot that was already there
        dfs = df_sigma(curve)
        if dfs < c.min_df_sigma:
            continue
        tail = curve[pk:]
        if tail.size < c.min_fit_points:
            continue
        _, b, tau, r2 = fit_decay(tail)
        if b <= 0 or r2 < c.min_decay_r2:
            continue
        g_r2 = gaussian_r2(movie[frames[pk]], int(py[pk]), int(px[pk]), c.spot_radius)
        if g_r2 < c.min_gaussian_r2:
            continue
        delta_f = float(curve[pk] - (np.median(before) if before.size else curve.min()))
        rows.append((float(px[pk]), float(py[pk]), float(frames[pk]), dfs, r2, tau, g_r2, delta_f,
                     float(f_last - f_first + 1)))
    if progress is not None:
        progress("exoj-like tracks", len(tracks), len(tracks))
    a = np.array(rows, dtype=np.float64).reshape(-1, 9)
    names = ("df_sigma", "decay_r2", "tau", "gaussian_r2", "delta_f", "duration")
    return EventTable(a[:, 0], a[:, 1], a[:, 2], {n: a[:, 3 + i] for i, n in enumerate(names)})
