"""Intensity normalisation, exactly as the original ExoDeepFinder (and the rdf's ``scale_range``), and the
static outliers (hot or saturated pixels) that exodf's default inference keeps from blinding the network."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_frames", "normalize_frame", "frame_range", "apply_range", "EPSILON", "dark_frames",
           "uniform_frames", "NormalizedMovie", "static_outliers", "OUTLIER_FACTOR", "median_frame",
           "bright_outside", "clipped_pixels", "clipped_parts"]

#: a pixel of the movie's median frame this many times a frame's p1-p99 range above p1 can be a static outlier
OUTLIER_FACTOR = 5.0

# a frame with p99 - p1 <= EPSILON becomes 0 (flat); for a movie whose values stay below 1 (floats scaled
# down), EPSILON times its scale instead, so that such a movie is not taken as flat everywhere
EPSILON = 1e-3


def frame_range(frame: np.ndarray, lower: float = 1.0, upper: float = 99.0,
                outliers: np.ndarray | None = None) -> tuple[np.float32, np.float32]:
    """The (p1, p99) of one frame, as :func:`normalize_frame` uses them; a frame with NaN or infinite pixels
    is refused (its range would be NaN and the frame would become 0, its events lost). ``outliers``: a
    (Y, X) bool mask of pixels left out (:func:`static_outliers`)."""
    f = np.asarray(frame, dtype=np.float32)
    if outliers is not None:
        f = f[~outliers]
    lo, hi = np.percentile(f, lower), np.percentile(f, upper)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("the frame holds NaN or infinite pixels (or values beyond float32); replace them first "
                         "(exodf.check_movie names the frames)")
    return lo, hi


def _varies(p_lo: np.float32, p_hi: np.float32) -> bool:
    """Whether a frame with this (p1, p99) is normalised (else it is flat and becomes 0)."""
    scale = min(1.0, max(abs(float(p_lo)), abs(float(p_hi))))
    return bool(p_hi - p_lo > EPSILON * scale)


def apply_range(data: np.ndarray, p_lo: np.float32, p_hi: np.float32,
                outliers: np.ndarray | None = None) -> np.ndarray:
    """(data - p_lo) / (p_hi - p_lo) in float32 (any part of a frame); 0 where the frame is flat.
    ``outliers``: a bool mask of ``data``'s (y, x) shape whose pixels are first clipped to ``p_hi`` (they
    become at most 1, as bright as the frame's brightest percent)."""
    f = np.asarray(data, dtype=np.float32)
    if outliers is not None and outliers.any():
        f = np.where(outliers, np.minimum(f, p_hi), f)
    if _varies(p_lo, p_hi):
        return (f - p_lo) / (p_hi - p_lo)
    return np.zeros(f.shape, dtype=np.float32)


def normalize_frame(frame: np.ndarray, lower: float = 1.0, upper: float = 99.0,
                    outliers: np.ndarray | None = None) -> np.ndarray:
    """(frame - p1) / (p99 - p1) in float32, without clipping; a flat frame becomes 0. With ``outliers``
    (:func:`static_outliers`), p1 and p99 are those of the other pixels, and the outliers are clipped to p99."""
    lo, hi = frame_range(frame, lower, upper, outliers)
    return apply_range(frame, lo, hi, outliers)


def normalize_frames(movie: np.ndarray, lower: float = 1.0, upper: float = 99.0,
                     out: np.ndarray | None = None, outliers: np.ndarray | None = None) -> np.ndarray:
    """Normalise each frame of a (T, Y, X) movie independently; returns float32.

    ``movie`` may be a memory map: frames are read one at a time. ``outliers``: see :func:`normalize_frame`.
    """
    if movie.ndim != 3:
        raise ValueError(f"normalize_frames: expected a (T, Y, X) movie, got shape {movie.shape}")
    res = np.empty(movie.shape, dtype=np.float32) if out is None else out
    for t in range(movie.shape[0]):
        try:
            res[t] = normalize_frame(movie[t], lower, upper, outliers)
        except ValueError as e:
            raise ValueError(f"normalize_frames: frame {t} (Slice {t + 1}): {e}") from None
    return res


class NormalizedMovie:
    """A (T, Y, X) movie that is normalised frame by frame as it is read, as :func:`normalize_frames` would
    (bit for bit): patches of a memory-mapped or 16-bit movie without holding a float32 copy of it.

    Indexing takes a frame index or slice first, then slices of rows and columns, and returns float32.
    """

    def __init__(self, movie: np.ndarray, lower: float = 1.0, upper: float = 99.0,
                 outliers: np.ndarray | None = None) -> None:
        if movie.ndim != 3:
            raise ValueError(f"NormalizedMovie: expected a (T, Y, X) movie, got shape {movie.shape}")
        self.movie = movie
        self.outliers = outliers
        ranges = [frame_range(movie[t], lower, upper, outliers) for t in range(movie.shape[0])]
        self.lo = np.array([r[0] for r in ranges], dtype=np.float32)
        hi = np.array([r[1] for r in ranges], dtype=np.float32)
        self.varies = np.array([_varies(lo, h) for lo, h in zip(self.lo, hi)], dtype=bool)
        self.den = np.where(self.varies, hi - self.lo, np.float32(1)).astype(np.float32)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.movie.shape)  # type: ignore[return-value]

    ndim = 3
    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return int(self.movie.shape[0])

    def __getitem__(self, key: object) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        frames = np.arange(self.movie.shape[0])[key[0]]
        if not all(isinstance(k, slice) for k in key[1:]):
            raise IndexError("NormalizedMovie: index rows and columns with slices")
        data = np.asarray(self.movie[key], dtype=np.float32)
        shape = (-1,) + (1,) * (data.ndim - 1) if np.ndim(frames) else ()  # per-frame values broadcast
        lo, den = self.lo[frames].reshape(shape), self.den[frames].reshape(shape)
        if self.outliers is not None:  # clipped to their frame's p99, as normalize_frames does
            data = np.where(self.outliers[tuple(key[1:])], np.minimum(data, lo + den), data)
        return np.where(self.varies[frames].reshape(shape), (data - lo) / den, np.float32(0))

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


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


def uniform_frames(movie: np.ndarray) -> np.ndarray:
    """Indices of frames without contrast (a saturated flash, a constant filler frame): their 1st and 99th
    percentiles are equal as the normaliser sees them (a 1-in-16 sample of pixels first), so they become 0,
    and, as after a dark frame, the cell's spots all seem to appear on the next frame."""
    if movie.ndim != 3:
        return np.zeros(0, dtype=np.int64)
    maybe = [t for t in range(movie.shape[0]) if not _varies(*frame_range(np.asarray(movie[t])[::4, ::4]))]
    # (a sparse frame, a few bright pixels on zeros, can look flat in the sample: the whole frame decides)
    return np.asarray([t for t in maybe if not _varies(*frame_range(movie[t]))], dtype=np.int64)


def _picks(t: int, n: int) -> np.ndarray:
    """``n`` frame indices spread evenly over ``t`` frames (all of them when fewer)."""
    return np.unique(np.linspace(0, t - 1, min(t, n)).round().astype(np.int64))


def median_frame(movie: np.ndarray, n_sample: int = 16) -> np.ndarray:
    """The pixel-wise median of ``n_sample`` frames spread over a (T, Y, X) movie, float32: its static
    picture (an event lasts a few frames; it leaves the median). Read 32 MB of rows at a time."""
    t, h, w = movie.shape
    picks = _picks(t, n_sample)
    med = np.empty((h, w), dtype=np.float32)
    rows = max(1, (32 << 20) // (4 * len(picks) * max(1, w)))
    for r0 in range(0, h, rows):
        med[r0: r0 + rows] = np.median(np.stack([np.asarray(movie[int(i), r0: r0 + rows], dtype=np.float32)
                                                 for i in picks]), axis=0)
    return med


def static_outliers(movie: np.ndarray, factor: float = OUTLIER_FACTOR, n_sample: int = 16,
                    most: float = 0.05, largest: int = 150, median: np.ndarray | None = None) -> np.ndarray | None:
    """Pixels that stay far brighter than the cell all through the movie — hot or saturated camera pixels,
    a bead, debris — as a (Y, X) bool mask, or None where there are none (most movies).

    Per-frame normalisation scales each frame by its p1-p99 range without clipping, so such a pixel enters
    the network at many times the brightest spot's value; that blinds it within its receptive field (±34
    px): 20 hot pixels in a 128 x 128 movie made it miss 27 of 28 events; at 2.7 times the range already
    2 of 22.

    In the median of ``n_sample`` frames spread over the movie (transient events leave it), a group of
    touching pixels is an outlier when it lies more than ``factor`` times a frame's p1-p99 range above its
    p1 (as the network would see it; the median of those frames' p1 and p99) and either is saturated (most
    of it at the maximum, a plateau of 4 pixels or more, left out of the ranges first) or is no larger than
    ``largest`` pixels (a bead, debris; a cell is larger) with surroundings 4-8 px away no brighter than the
    p99 (so nothing inside a cell that fills under 1 % of the frame, whose p99 is then the background's).
    More than ``most`` of the frame flagged is no outlier: None. ``median``: the movie's
    :func:`median_frame`, if already computed.
    """
    if movie.ndim != 3 or movie.shape[0] < 1:
        raise ValueError(f"static_outliers: expected a (T, Y, X) movie, got shape {movie.shape}")
    from scipy import ndimage as ndi

    med = median_frame(movie, n_sample) if median is None else median
    if not np.isfinite(med).all():
        return None  # (NaN frames are refused elsewhere, by name)
    plateau = med == med.max()
    if not 4 <= plateau.sum() <= med.size // 2:
        plateau[:] = False
    ranges = np.array([np.percentile(np.asarray(movie[int(i)], dtype=np.float32)[~plateau], [1, 99])
                       for i in _picks(movie.shape[0], n_sample)])
    lo, hi = np.median(ranges, axis=0)
    if not _varies(np.float32(lo), np.float32(hi)):
        return None
    bright = med > lo + factor * (hi - lo)
    labels, _ = ndi.label(bright, structure=np.ones((3, 3)))
    out = np.zeros(med.shape, dtype=bool)
    near, far = 3, 8
    for k, (sy, sx) in enumerate(ndi.find_objects(labels), start=1):
        ys = slice(max(0, sy.start - far), sy.stop + far)
        xs = slice(max(0, sx.start - far), sx.stop + far)
        group = labels[ys, xs] == k
        if plateau[ys, xs][group].mean() < 0.5:  # not saturated: small and alone, or part of a cell
            if group.sum() > largest:
                continue
            ring = (ndi.binary_dilation(group, iterations=far) & ~ndi.binary_dilation(group, iterations=near)
                    & ~bright[ys, xs])
            if ring.any() and np.median(med[ys, xs][ring]) > hi:
                continue
        out[ys, xs] |= group
    n = int(out.sum())
    return out if 0 < n <= most * med.size else None


def bright_outside(movie: np.ndarray, mask: np.ndarray, n_sample: int = 16,
                   median: np.ndarray | None = None) -> np.ndarray | None:
    """Pixels outside a cell ``mask`` (Y, X) that stay brighter than the cell's own p99 (a brighter
    neighbouring cell, a bright region beside the cell), as a (Y, X) bool mask, or None where there are none
    or too few to raise the p99 of the (median) frame above the cell's by a quarter of the cell's p1-p99 range.

    Each frame's p99 then lies in that region and the cell's events are squeezed into a small part of the
    range the network knows: in a simulated movie whose outside was made 5 x brighter, F1 in the cell fell
    from 0.86 to 0.59; with these pixels clipped (:func:`clipped_pixels`) it was 0.83. ``median``: the
    movie's :func:`median_frame`, if already computed.
    """
    m = np.asarray(mask, dtype=bool)
    if m.shape != movie.shape[1:]:
        raise ValueError(f"bright_outside: mask shape {m.shape} differs from the frame shape {movie.shape[1:]}")
    if not m.any() or m.all():
        return None
    med = median_frame(movie, n_sample) if median is None else median
    lo, hi = np.percentile(med[m], [1, 99])
    if not np.percentile(med, 99) > hi + 0.25 * (hi - lo):  # the frame's range is the cell's: nothing to do
        return None
    out = ~m & (med > hi)
    return out if out.any() else None


def clipped_parts(movie: np.ndarray, mask: np.ndarray | None = None
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(:func:`static_outliers`, :func:`bright_outside` with a cell ``mask``) of a movie, its median frame
    read once; (None, None) where together they would cover the whole frame (nothing is clipped then)."""
    med = median_frame(movie)
    static = static_outliers(movie, median=med)
    outside = bright_outside(movie, mask, median=med) if mask is not None else None
    found = [p for p in (static, outside) if p is not None]
    if found and np.logical_or.reduce(found).all():
        return None, None
    return static, outside


def clipped_pixels(movie: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray | None:
    """The pixels exodf's default inference leaves out of each frame's p1/p99 and clips to its p99: the
    :func:`static_outliers`, and with a cell ``mask`` the pixels outside it brighter than the cell
    (:func:`bright_outside`); None where there are none (a movie then normalised exactly as the original)."""
    found = [p for p in clipped_parts(movie, mask) if p is not None]
    return np.logical_or.reduce(found) if found else None
