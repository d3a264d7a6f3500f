"""Per-event measurements as the ExoDeepFinder paper defines them.

- F/F0: the mean of a 7×7 window centred on the event at its (peak) frame, over the mean of the same
  window 5 frames before.
- Decay: ``I(t) = A·e^(−t/τ) + B`` fitted to the 7×7 window mean over the 16 frames from the peak; the
  half-life is ``τ·ln 2``. Per cell (one movie), the half-lives of the events whose fit succeeded are
  averaged.

Pure compute on a (T, Y, X) array and an :class:`~exodf.events.EventTable`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .events import EventTable

__all__ = ["MeasureConfig", "measure_events", "window_trace", "fit_decay", "min_fit_frames", "CellSummary",
           "summarize_cell"]


@dataclass(frozen=True)
class MeasureConfig:
    """How events are measured (defaults: the paper's).

    Attributes
    ----------
    window
        Side of the square window (px, odd).
    before
        F0 is the window mean this many frames before the event's frame.
    n_fit
        Number of frames, from the event's frame on, that the decay is fitted to.
    frame_interval_s
        If given, τ and the half-life are in seconds; otherwise in frames.
    peak_search
        Look for the peak (largest window mean) this many frames either side of the event's frame. The
        default 2 is for detections, placed at a cluster's centroid a frame or two after the peak (measured
        there, F/F0 came out about 20 % low); 0 is the paper's definition: measure at the given frame.
    """

    window: int = 7
    before: int = 5
    n_fit: int = 16
    frame_interval_s: float | None = None
    peak_search: int = 2

    def __post_init__(self) -> None:
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"MeasureConfig.window must be odd and >= 1, got {self.window}")
        if self.before < 1:
            raise ValueError(f"MeasureConfig.before must be >= 1, got {self.before}")
        if self.n_fit < 4:
            raise ValueError(f"MeasureConfig.n_fit must be >= 4 (3 parameters are fitted), got {self.n_fit}")
        if self.peak_search < 0:
            raise ValueError(f"MeasureConfig.peak_search must be >= 0, got {self.peak_search}")
        if self.frame_interval_s is not None and not self.frame_interval_s > 0:
            raise ValueError(f"MeasureConfig.frame_interval_s must be > 0, got {self.frame_interval_s}")


def window_trace(movie: np.ndarray, x: float, y: float, frames: np.ndarray, window: int = 7) -> np.ndarray:
    """Mean of the ``window``×``window`` box around the pixel nearest (x, y) in each of ``frames``.

    The box is clipped at the frame border; frames outside the movie give NaN.
    """
    r = window // 2
    cy, cx = int(math.floor(y + 0.5)), int(math.floor(x + 0.5))
    ys, xs = slice(max(0, cy - r), max(0, cy + r + 1)), slice(max(0, cx - r), max(0, cx + r + 1))
    out = np.full(len(frames), np.nan)
    ok = (frames >= 0) & (frames < movie.shape[0])
    if ok.any():
        box = np.asarray(movie[np.asarray(frames)[ok], ys, xs], dtype=np.float64)
        if box.size:
            out[ok] = box.reshape(box.shape[0], -1).mean(axis=1)
    return out


#: Shortest τ (frames) a fit may report: the second point keeps 5 % of A (a one-frame spike has no τ).
MIN_TAU = 1.0 / math.log(20.0)
#: A fitted decay must rise this many residual SDs above the fitted baseline (noise fits give about 1-2).
MIN_SNR = 4.0


def fit_decay(trace: np.ndarray) -> tuple[float, float, float] | None:
    """Fit ``A·e^(−t/τ) + B`` (t = 0, 1, ... frames) to ``trace``; (A, τ, B) or None if there is no decay.

    A fit is rejected (None) unless the decay is measurable in the trace: A > 0, τ between
    :data:`MIN_TAU` and the trace's length (a longer τ is not a decay within the fitted frames, a
    shorter one a single-frame spike), and A at least :data:`MIN_SNR` residual SDs and 0.4 % of B (a flat
    noisy trace otherwise gives a τ at one bound or the other, which then dominated a cell's mean
    half-life).
    """
    from scipy.optimize import curve_fit

    y = np.asarray(trace, dtype=np.float64)
    t = np.arange(y.size, dtype=np.float64)
    good = np.isfinite(y)
    if good.sum() < 4:
        return None
    t, y = t[good], y[good]
    b0 = float(np.min(y))
    a0 = max(float(y[0] - b0), 1e-6)
    above = np.flatnonzero(y - b0 < a0 / 2)
    tau0 = max(float(above[0]) / math.log(2), 0.5) if above.size else float(t[-1])

    def model(tt: np.ndarray, a: float, tau: float, b: float) -> np.ndarray:
        return a * np.exp(-tt / tau) + b

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (a, tau, b), _ = curve_fit(model, t, y, p0=(a0, min(tau0, 999.0), b0),
                                       bounds=([0.0, 0.05, -np.inf], [np.inf, 1000.0, np.inf]), maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    if not a > 0 or not np.isfinite(tau) or not MIN_TAU <= tau <= t[-1]:
        return None
    resid = y - model(t, a, tau, b)
    noise = max(float(np.sqrt(np.mean(resid ** 2))), 1e-3 * abs(b))  # a 0.1 % bump is no decay either
    if a < MIN_SNR * noise:
        return None
    return float(a), float(tau), float(b)


def min_fit_frames(config: MeasureConfig) -> int:
    """Frames a decay fit needs within the movie: half of ``n_fit`` (at least 4); an event near the movie's end
    has fewer, and 3 parameters fitted to a handful of frames gave a τ as if measured."""
    return max(4, config.n_fit // 2)


def measure_events(movie: np.ndarray, events: EventTable, config: MeasureConfig = MeasureConfig()) -> EventTable:
    """The events with columns ``f0``, ``f``, ``fold`` (F/F0), ``decay_tau``, ``half_life`` (s or frames, as
    their ``units`` say).

    Columns of ``events`` with those names (e.g. the simulator's drawn ``fold``) are kept as ``<name>_given``.

    Each event is measured at its peak: the frame of largest window mean within ``config.peak_search``
    frames of its nearest frame (2 by default; 0: at its nearest frame, the paper's definition). F/F0 is NaN
    when the F0 frame (``config.before`` frames before the peak, 5 by default) is outside the movie; the decay
    values are NaN when the fit fails or fewer than :func:`min_fit_frames` frames (half of ``n_fit``) are left
    before the movie's end; every value is NaN for an event whose frame is outside the movie.
    """
    if movie.ndim != 3:
        raise ValueError(f"measure_events: expected a (T, Y, X) movie, got shape {movie.shape}")
    n = len(events)
    f0 = np.full(n, np.nan)
    f = np.full(n, np.nan)
    tau = np.full(n, np.nan)
    scale = config.frame_interval_s if config.frame_interval_s is not None else 1.0
    peak = np.floor(events.frame + 0.5).astype(np.int64)
    for i in range(n):
        if not 0 <= peak[i] < movie.shape[0]:  # an event outside the movie: nothing to measure
            continue
        if config.peak_search:
            near = peak[i] + np.arange(-config.peak_search, config.peak_search + 1)
            tr = window_trace(movie, events.x[i], events.y[i], near, config.window)
            if np.isfinite(tr).any():
                peak[i] = near[int(np.nanargmax(tr))]
        frames = np.concatenate([[peak[i] - config.before], peak[i] + np.arange(config.n_fit)])
        trace = window_trace(movie, events.x[i], events.y[i], frames, config.window)
        f0[i], f[i] = trace[0], trace[1]
        if np.isfinite(trace[1:]).sum() < min_fit_frames(config):  # the movie ends before the decay does
            continue
        fit = fit_decay(trace[1:])
        if fit is not None:
            tau[i] = fit[1] * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        fold = np.where(f0 > 0, f / f0, np.nan)
    new = ("peak_frame", "f0", "f", "fold", "decay_tau", "half_life")
    cols = {(f"{k}_given" if k in new else k): v for k, v in events.columns.items()}
    cols.update({"peak_frame": peak.astype(np.float64), "f0": f0, "f": f, "fold": fold, "decay_tau": tau,
                 "half_life": tau * math.log(2)})
    units = {(f"{k}_given" if k in new else k): u for k, u in events.units.items()}
    time_unit = "s" if config.frame_interval_s is not None else "frames"
    units.update(decay_tau=time_unit, half_life=time_unit)
    return EventTable(events.x, events.y, events.frame, cols, units)


@dataclass(frozen=True)
class CellSummary:
    """One cell's (movie's) averages over its measured events."""

    n_events: int
    fold_mean: float | None
    fold_median: float | None
    half_life_mean: float | None
    half_life_median: float | None
    n_fitted: int
    n_fold: int = 0  # events with a defined F/F0 (the F/F0 mean is over these)

    def as_dict(self) -> dict[str, float | int | None]:
        return {k: getattr(self, k) for k in ("n_events", "fold_mean", "fold_median", "n_fold", "half_life_mean",
                                              "half_life_median", "n_fitted")}


def summarize_cell(measured: EventTable) -> CellSummary:
    """Mean and median F/F0 and half-life of one cell's measured events (NaNs left out)."""
    def stats(name: str) -> tuple[float | None, float | None, int]:
        v = measured.columns.get(name, np.zeros(0))
        v = v[np.isfinite(v)]
        return (float(v.mean()), float(np.median(v)), int(v.size)) if v.size else (None, None, 0)

    fm, fmed, nfold = stats("fold")
    hm, hmed, nfit = stats("half_life")
    return CellSummary(len(measured), fm, fmed, hm, hmed, nfit, nfold)
