"""ExoJ-like exocytosis detection: the conventional pipeline of ExoJ (Liu et al. 2024), in numpy.

Steps, as ExoJ's code does them (github.com/zs6e/excytosis-analyzer-plugin, ``GUIWizard``,
``MicroWaveletFilter``, ``LocalMaximaDetector``, ``Secretion``, ``Vesicle``, ``Grubbs``,
``MovingLinearRegretionFinder``; parameter names are ExoJ's in brackets):

1. Spots: per frame, the à trous B3-spline wavelet transform (kernel 1/16, 1/4, 3/8, 1/4, 1/16 dilated
   by 2^(j-1), mirror borders). On each selected scale j the coefficients below ``k · λ_j · MAD_j`` are
   zeroed, with ``MAD_j = median|w − median w| / 0.6745`` and ``λ_j = sqrt(2 ln(N / 4^j))`` (the universal
   threshold at that scale, N pixels) [detection threshold "wavelet scale" k]. The kept coefficients are
   summed; spots are its positive local maxima over a disc of the vesicle radius, at least ``border`` px
   (2 × max vesicle radius) from the image edge.
2. Tracks: greedy nearest-neighbour linking with ExoJ's distance ``sqrt(|dy| + |dx|) < 2`` [spatial search
   radius 2 px] on consecutive frames only [temporal search depth 1 frame, i.e. ``max_gap = 0``], tracks of
   at least 2 spots [minimal event size].
3. Each spot is moved to the brightest raw pixel within the vesicle radius; each track is extended by
   4 frames before and after at its first/last position [expand frames]; its intensity curve is the
   maximum of the raw frame over the (4·max(r, 2) + 1)² window around that position (ExoJ's ``max_Den``).
4. Tests, in ExoJ's order, on the extended curve and its first differences d (d[0] = 0):
   S-H-ESD ("Grubbs") test: ``max|d − median d| / (MAD(d)/0.6745)`` above the one-sided critical value at
   α = 0.05, at an index K no earlier than the 4th and no later than 4 from the end [Grubbs];
   ``dF/σ`` (the same statistic) ``>= min_df_sigma`` [min dF/σ]; the peak is found by the moving linear
   regression (windows of 5 points: largest left-minus-right slope where the curve is above its mean, then
   the brightest point within ±2), moved forward while the curve does not fall; ``y = a + b·exp(−x/τ)``
   fitted from the peak to the end (≥ 5 points) must have R² ≥ ``min_decay_r2`` [min R² for decay]; a
   2D Gaussian fitted within a disc of radius 2·max(r, 2) at the peak must have R² ≥ ``min_gaussian_r2``
   [min R² for radius], and a peak on an extended frame (no spot there) has R² 0.

The event is the spot at the peak: its position and (0-based) frame. Defaults are the ExoDeepFinder
paper's best ExoJ setting: detection threshold (scale) 5, decay R² 0.8, radius (Gaussian) R² 0.7,
dF/σ 3.8; the rest are ExoJ's defaults for a vesicle radius of 2–3 px (wavelet scale 2, i.e. 3 px).
Not reproduced: ExoJ builds each track by following one spot forward (first come, first linked) where this
links frame by frame in order of distance; its curve values are truncated to integers; its decay fit is
ImageJ's simplex ``CurveFitter`` where this searches τ on a log grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from scipy import ndimage

from ..events import EventTable
from .tracking import link_spots, track_slices

__all__ = ["ExojLikeConfig", "detect_exoj_like", "atrous_spot_map", "grubbs_critical", "mlr_peak"]

_B3 = np.array([1 / 16, 1 / 4, 3 / 8, 1 / 4, 1 / 16])


@dataclass(frozen=True)
class ExojLikeConfig:
    """Settings of :func:`detect_exoj_like` (see the module docstring).

    ``max_gap`` is ExoJ's temporal search depth minus one; ``grubbs_alpha`` None switches the S-H-ESD test
    off; ``exoj_distance`` False links at Euclidean distance <= ``search_radius`` instead of ExoJ's metric.
    """

    scale_threshold: float = 5.0
    scales: tuple[int, ...] = (2,)
    spot_radius: int = 2
    border: int = 6
    search_radius: float = 2.0
    exoj_distance: bool = True
    max_gap: int = 0
    min_track_length: int = 2
    expand_frames: int = 4
    grubbs_alpha: Optional[float] = 0.05
    min_fit_points: int = 5
    min_decay_r2: float = 0.8
    min_gaussian_r2: float = 0.7
    min_df_sigma: float = 3.8

    def __post_init__(self) -> None:
        if not self.scale_threshold > 0:
            raise ValueError(f"ExojLikeConfig.scale_threshold must be > 0, got {self.scale_threshold}")
        if not self.scales or any(not 1 <= s <= 6 for s in self.scales):
            raise ValueError(f"ExojLikeConfig.scales must be wavelet scales within 1..6, got {self.scales}")
        for name in ("spot_radius", "min_track_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"ExojLikeConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.min_fit_points < 2:
            raise ValueError(f"ExojLikeConfig.min_fit_points must be >= 2, got {self.min_fit_points}")
        for name in ("max_gap", "expand_frames", "border"):
            if getattr(self, name) < 0:
                raise ValueError(f"ExojLikeConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.search_radius >= 0:
            raise ValueError(f"ExojLikeConfig.search_radius must be >= 0, got {self.search_radius}")
        if self.grubbs_alpha is not None and not 0 < self.grubbs_alpha < 1:
            raise ValueError(f"ExojLikeConfig.grubbs_alpha must be within (0, 1) or None, got {self.grubbs_alpha}")


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


def _disc(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return yy ** 2 + xx ** 2 <= radius ** 2


def _local_maxima(spot_map: np.ndarray, radius: int, border: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positive maxima of each frame over a disc of ``radius``, ``border`` px or more from the edges."""
    peak = (spot_map > 0) & (spot_map == ndimage.maximum_filter(spot_map, footprint=_disc(radius)[None],
                                                                mode="constant"))
    if border > 0:
        inner = np.zeros(spot_map.shape[1:], dtype=bool)
        inner[border:spot_map.shape[1] - border, border:spot_map.shape[2] - border] = True
        peak &= inner[None]
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


def _refine(frame: np.ndarray, y: int, x: int, radius: int) -> tuple[int, int]:
    """ExoJ's ``Vesicle``: move to the brightest pixel within ``radius`` (the centre wins ties)."""
    h, w = frame.shape
    best, by, bx = frame[y, x], y, x
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            yy, xx = y + dy, x + dx
            if dy * dy + dx * dx <= radius * radius and 0 <= yy < h and 0 <= xx < w and frame[yy, xx] > best:
                best, by, bx = frame[yy, xx], yy, xx
    return by, bx


def _window_max(frame: np.ndarray, y: int, x: int, half: int) -> float:
    """Maximum of the (2·half + 1)² window at (y, x), shifted inside the image as ExoJ crops it."""
    h, w = frame.shape
    y0 = min(max(0, y - half), max(0, h - 2 * half - 1))
    x0 = min(max(0, x - half), max(0, w - 2 * half - 1))
    return float(frame[y0:y0 + 2 * half + 1, x0:x0 + 2 * half + 1].max())


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
    """R² of a 2D isotropic Gaussian + offset fitted around (y, x), as ExoJ's ``Vesicle.get2DGaussFitter``.

    The window is (4c + 1)² with c = max(radius, 2), shifted inside the image; only the pixels within a
    disc of radius 2c around its centre count; start: offset = min, amplitude = max − min, σ = radius.
    """
    from scipy.optimize import curve_fit

    frame = np.asarray(frame)
    half = 2 * max(radius, 2)
    h, w = frame.shape
    if h < 2 * half + 1 or w < 2 * half + 1:
        return 0.0
    y0 = min(max(0, y - half), h - 2 * half - 1)
    x0 = min(max(0, x - half), w - 2 * half - 1)
    win = np.asarray(frame[y0:y0 + 2 * half + 1, x0:x0 + 2 * half + 1], dtype=np.float64)
    keep = _disc(half)
    yy, xx = np.mgrid[0:2 * half + 1, 0:2 * half + 1]
    coords = np.stack([yy[keep], xx[keep]]).astype(np.float64)
    z = win[keep]

    def model(c: np.ndarray, off: float, amp: float, cy: float, cx: float, sig: float) -> np.ndarray:
        return off + amp * np.exp(-((c[0] - cy) ** 2 + (c[1] - cx) ** 2) / (2 * sig ** 2))

    p0 = (float(win.min()), float(win.max() - win.min()), float(half), float(half), float(radius))
    try:
        p, _ = curve_fit(model, coords, z, p0=p0, maxfev=400)
    except (RuntimeError, ValueError):
        return 0.0
    ss_tot = float(((z - z.mean()) ** 2).sum())
    if ss_tot <= 0:
        return 0.0
    return float(1.0 - ((z - model(coords, *p)) ** 2).sum() / ss_tot)


def grubbs_critical(n: int, alpha: float = 0.05) -> float:
    """One-sided Grubbs critical value for ``n`` points (the table ExoJ's S-H-ESD test uses; 0 below 3)."""
    from scipy.stats import t as student_t

    if n < 3:
        return 0.0
    tq = float(student_t.ppf(1.0 - alpha / n, n - 2))
    return (n - 1) / math.sqrt(n) * math.sqrt(tq * tq / (n - 2 + tq * tq))


def _grubbs_index(d: np.ndarray, alpha: float) -> Optional[int]:
    """ExoJ's S-H-ESD test on the differences: the outlier's index, or None when there is none."""
    n = d.size
    if n < 3:
        return None
    med = np.median(d)
    mad = np.median(np.abs(d - med)) / 0.6745
    g = np.abs(d - med) / mad if mad > 0 else np.where(d != med, np.inf, 0.0)
    k = int(np.argmax(g))
    return k if g[k] > grubbs_critical(min(n - 1, 100), alpha) else None


def _slope(v: np.ndarray) -> float:
    x = np.arange(v.size, dtype=np.float64)
    return float(((x - x.mean()) * (v - v.mean())).sum() / ((x - x.mean()) ** 2).sum())


def mlr_peak(curve: np.ndarray, window: int) -> int:
    """ExoJ's ``MovingLinearRegretionFinder``: index of the peak, 0 when none is found.

    For each i the slope of the ``window`` points ending at i minus that of the ``window`` points starting
    at i; the largest positive difference where the curve is above its mean gives K1, and the brightest
    point within [K1 − window//2, K1 + window//2) the peak.
    """
    y = np.asarray(curve, dtype=np.float64)
    n = y.size
    if window < 2:
        return 0
    mean = y.mean()
    best, k1 = 0.0, 0
    for i in range(window - 1, n - window + 1):
        diff = _slope(y[i - window + 1:i + 1]) - _slope(y[i:i + window])
        if diff > best and y[i] > mean:
            best, k1 = diff, i
    if k1 == 0:
        return 0
    lo, hi = max(0, k1 - window // 2), min(n, k1 + window // 2)
    return lo + int(np.argmax(y[lo:hi]))


def detect_exoj_like(movie: np.ndarray, config: ExojLikeConfig = ExojLikeConfig(),
                     progress: Optional[Callable[[str, int, int], None]] = None) -> EventTable:
    """Detect exocytosis events in a (T, Y, X) movie with the ExoJ-like pipeline.

    Returns
    -------
    EventTable
        One event per accepted track, at its peak; columns ``df_sigma``, ``decay_r2``, ``tau`` (frames),
        ``gaussian_r2``, ``delta_f`` (max − min of the extended curve, ExoJ's ΔF) and ``duration`` (frames
        of the track).
    """
    movie = np.asarray(movie, dtype=np.float32)
    if movie.ndim != 3:
        raise ValueError(f"detect_exoj_like: movie must be (T, Y, X), got shape {movie.shape}")
    c = config
    spot_map = atrous_spot_map(movie, c.scales, c.scale_threshold)
    t, y, x = _local_maxima(spot_map, c.spot_radius, c.border)
    track = link_spots(t, y, x, c.search_radius, c.max_gap, metric="exoj" if c.exoj_distance else "euclidean")
    half = 2 * max(c.spot_radius, 2)
    n_t = movie.shape[0]
    rows: list[tuple[float, ...]] = []
    tracks = track_slices(track, t)
    for i, idx in enumerate(tracks):
        if progress is not None and i % 200 == 0:
            progress("exoj-like tracks", i, len(tracks))
        if idx.size < c.min_track_length:
            continue
        tf = t[idx]
        f_first, f_last = int(tf[0]), int(tf[-1])
        # every frame of the track: spots moved to the brightest raw pixel; gaps keep the last position
        frames = np.arange(max(0, f_first - c.expand_frames), min(n_t, f_last + c.expand_frames + 1))
        spot_at = {int(f): (int(yy), int(xx)) for f, yy, xx in zip(tf, y[idx], x[idx])}
        pos: list[tuple[int, int]] = []
        for f in range(f_first, f_last + 1):
            pos.append(_refine(movie[f], *spot_at[f], c.spot_radius) if f in spot_at else pos[-1])
        first, last = pos[0], pos[-1]
        py, px = np.zeros(frames.size, dtype=np.int64), np.zeros(frames.size, dtype=np.int64)
        for j, f in enumerate(frames):
            f = int(f)
            if f < f_first:
                py[j], px[j] = _refine(movie[f], *first, c.spot_radius)
            elif f > f_last:
                py[j], px[j] = _refine(movie[f], *last, c.spot_radius)
            else:
                py[j], px[j] = pos[f - f_first]
        curve = np.array([_window_max(movie[f], py[j], px[j], half) for j, f in enumerate(frames)])
        d = np.diff(curve, prepend=curve[0])
        if c.grubbs_alpha is not None:
            k = _grubbs_index(d, c.grubbs_alpha)
            if k is None or k < c.expand_frames or k > d.size - c.expand_frames:
                continue
        dfs = df_sigma(curve)
        if dfs < c.min_df_sigma:
            continue
        pk = mlr_peak(curve, c.min_fit_points)
        while 0 < pk < curve.size - 1 and curve[pk] <= curve[pk + 1]:
            pk += 1
        if pk == 0 or curve.size - pk < c.min_fit_points:
            continue
        _, _, tau, r2 = fit_decay(curve[pk:])
        if not tau > 0 or r2 < c.min_decay_r2:
            continue
        f_pk = int(frames[pk])
        on_spot = f_pk in spot_at
        g_r2 = gaussian_r2(movie[f_pk], int(py[pk]), int(px[pk]), c.spot_radius) if on_spot else 0.0
        if g_r2 < c.min_gaussian_r2:
            continue
        delta_f = float(curve.max() - curve.min())
        rows.append((float(px[pk]), float(py[pk]), float(f_pk), dfs, r2, tau, g_r2, delta_f,
                     float(f_last - f_first + 1)))
    if progress is not None:
        progress("exoj-like tracks", len(tracks), len(tracks))
    a = np.array(rows, dtype=np.float64).reshape(-1, 9)
    names = ("df_sigma", "decay_r2", "tau", "gaussian_r2", "delta_f", "duration")
    return EventTable(a[:, 0], a[:, 1], a[:, 2], {n: a[:, 3 + i] for i, n in enumerate(names)})
