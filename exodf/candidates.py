"""Candidate puffs: run the network only where a cheap test says a movie brightens suddenly.

Exocytosis events are rare (well under one per frame) and every one the network reports starts with a
local brightening: the frame, smoothed, exceeds the brightest of its few previous smoothed frames. This
test costs a few milliseconds per frame. The network then runs on boxes around the brightenings only,
with a halo of context, and everything outside the boxes is background. Within a box, only the encoder
sees the halo: the decoder computes what the kept voxels depend on (:meth:`exodf.stream.StreamingNetwork.run`).

Inside the boxes the probabilities are those of the whole-volume pass (``--tiling context``; bit for bit
in the tests): each box's halo is the network's whole receptive field
(:data:`exodf.tiling.RECEPTIVE_HALO`). What remains an approximation is the outside, taken as background:
an exocytosis label without any brightening before it (a lone voxel next to a static bright spot) is not
looked for, and a label reaching beyond its box (more than ``after`` frames after the brightening, or
``margin`` px from it) is cut there.

On simulated movies it finds the same events as the whole-volume pass to F1 ≥ 0.99 (README, Performance;
``exodf bench --tiling candidates`` measures it on any machine). Where brightenings are everywhere
(crowded or very noisy movies) the boxes merge and the cost tends to that of the whole-volume pass.

The first frame has no brightening test (nothing before it): the network runs on the whole of the first
``after + 1`` frames, where an event already under way at the first frame is labelled.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
from scipy import ndimage as ndi

from .io import MappedPages
from .model import SPATIAL_MULTIPLE
from .normalize import apply_range, clipped_pixels, frame_range
from .tiling import RECEPTIVE_HALO, split_axis

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["CandidateConfig", "Box", "brightening_scores", "candidate_boxes", "iter_candidate_blocks",
           "work_fraction"]

Progress = Callable[[int, int], None]
SLC = tuple[slice, slice, slice]
CELL = SPATIAL_MULTIPLE  # boxes sit on the pooling grid, so a box sees the same pooling phases as the movie
# when the boxes would cost this fraction of the whole-volume pass's convolutions, that pass (exact) is run
FALLBACK = 0.8  # instead (boxes are a little slower per operation: smaller tensors, more of them)
BLOCK = 16  # frames of the brightening test computed at once


@dataclass(frozen=True)
class CandidateConfig:
    """Where the network runs under ``--tiling candidates``.

    Attributes
    ----------
    sigma
        Gaussian smoothing (px) of each normalised frame before the brightening test.
    history
        A frame is compared with the brightest of this many previous smoothed frames.
    threshold
        A pixel is a candidate when its brightening exceeds the frame's median brightening by this many
        robust standard deviations (1.4826 × MAD). Events the network reports measure ≥ 12 on the
        simulated presets, the noise rarely 8.
    before, after
        Frames of each box before and after a candidate's frames: the network labels the frames after
        the brightening, and reports echoes of large events up to ~8 frames later.
    margin
        Pixels of each box around a candidate's pixels.
    halo
        Context (frames, px) around each box that the network sees but whose output is not kept. The
        default, the receptive field (14 frames, 36 px), makes the kept voxels equal those of the
        whole-volume pass. Smaller halos are faster and approximate: (6, 12) took about half the time
        on simulated movies but flipped voxels near the decision boundary, and lost events (a
        probability-0.955 event of the whole-volume pass; 2 of ~45 near-threshold test events).
    """

    sigma: float = 1.5
    history: int = 3
    threshold: float = 8.0
    before: int = 1
    after: int = 10
    margin: int = 8
    halo: tuple[int, int] = (RECEPTIVE_HALO[0], RECEPTIVE_HALO[1])

    def __post_init__(self) -> None:
        if self.sigma <= 0 or self.history < 1 or self.threshold <= 0:
            raise ValueError(f"CandidateConfig: sigma and threshold must be > 0 and history >= 1, got {self}")
        if min(self.before, self.after, self.margin, *self.halo) < 0:
            raise ValueError(f"CandidateConfig: before, after, margin and halo must be >= 0, got {self}")
        if self.halo[1] % CELL:
            raise ValueError(f"CandidateConfig: the pixel halo must be a multiple of {CELL}, got {self.halo[1]}")


@dataclass(frozen=True, eq=False)
class Box:
    """A connected set of 4 × 4-px cells where the network's output is kept, and its bounding box
    [t0, t1) × [y0, y1) × [x0, x1) in pixels of the movie padded to multiples of 4.

    ``cells`` is the (t1 - t0, (y1 - y0) / 4, (x1 - x0) / 4) bool mask of the set inside the bounding box.
    Different boxes' cells never overlap (their bounding boxes may).
    """

    t0: int
    t1: int
    y0: int
    y1: int
    x0: int
    x1: int
    cells: np.ndarray

    @property
    def voxels(self) -> int:
        return int(self.cells.sum()) * CELL * CELL

    def keep(self, ts: slice, ys: slice, xs: slice) -> np.ndarray:
        """The (t, y, x) bool mask of this box's cells over a part of its bounding box (movie pixels)."""
        c = self.cells[ts.start - self.t0: ts.stop - self.t0]
        c = np.repeat(np.repeat(c, CELL, axis=1), CELL, axis=2)
        return c[:, ys.start - self.y0: ys.stop - self.y0, xs.start - self.x0: xs.stop - self.x0]


def brightening_scores(movie: np.ndarray, config: CandidateConfig = CandidateConfig(),
                       progress: Progress | None = None, outliers: np.ndarray | None = None
                       ) -> Iterator[tuple[int, np.float32, np.float32, np.ndarray]]:
    """Yield (frame, p1, p99, robust z-score of its brightening (Y, X) float32) for each frame of ``movie``.

    Brightening: the normalised frame smoothed with a Gaussian of ``sigma`` px, minus the pixel-wise
    maximum of the ``history`` previous smoothed frames (0 for the first frame). Frames are computed
    :data:`BLOCK` at a time on every core (NumPy and SciPy release the GIL), yielded in order. ``outliers``:
    normalised as :func:`exodf.normalize.normalize_frame` does with them.
    """
    n = movie.shape[0]

    def smooth(t: int) -> tuple[np.float32, np.float32, np.ndarray]:
        raw = np.asarray(movie[t], dtype=np.float32)
        lo, hi = frame_range(raw, outliers=outliers)
        return lo, hi, ndi.gaussian_filter(apply_range(raw, lo, hi, outliers), config.sigma)

    def zscore(current: np.ndarray, previous: list[np.ndarray]) -> np.ndarray:
        if not previous:
            return np.zeros(current.shape, dtype=np.float32)
        rise = current - (previous[0] if len(previous) == 1 else np.maximum.reduce(previous))
        med = np.median(rise)
        mad = 1.4826 * np.median(np.abs(rise - med))
        # a frame without noise (a flat or synthetic frame) leaves nothing to compare with: every
        # change counts, and the network then decides
        z = (rise - med) / mad if mad > 0 else np.where(rise > med, np.inf, 0)
        return z.astype(np.float32, copy=False)

    history: list[np.ndarray] = []  # the smoothed frames before the current block
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for b0 in range(0, n, BLOCK):
            frames = range(b0, min(n, b0 + BLOCK))
            ranged = list(pool.map(smooth, frames))
            smoothed = history + [sm for _, _, sm in ranged]
            k0 = len(history)
            scores = pool.map(lambda k: zscore(smoothed[k], smoothed[max(0, k - config.history): k]),
                              range(k0, len(smoothed)))
            for t, (lo, hi, _), z in zip(frames, ranged, scores):
                if progress is not None:
                    progress(t + 1, n)
                yield t, lo, hi, z
            history = smoothed[-config.history:]


def candidate_boxes(movie: np.ndarray, config: CandidateConfig = CandidateConfig(),
                    progress: Progress | None = None, outliers: np.ndarray | None = None
                    ) -> tuple[list[Box], np.ndarray, np.ndarray]:
    """The boxes of a raw (T, Y, X) movie where the network must run; also each frame's (p1, p99).

    Boxes are the connected parts of the 4 × 4-px cells (on the pooling grid of the movie padded to
    multiples of 4) within ``before``/``after`` frames and ``margin`` px of a candidate pixel, plus the
    first ``after + 1`` frames whole.
    """
    t_n, h, w = movie.shape
    gy, gx = -(-h // CELL), -(-w // CELL)
    grid = np.zeros((t_n, gy, gx), dtype=bool)
    grid[: config.after + 1] = True  # frame 0 cannot brighten: all of it is a candidate
    lo = np.empty(t_n, dtype=np.float32)
    hi = np.empty(t_n, dtype=np.float32)
    pages = MappedPages(movie)  # a memory-mapped movie's pages, handed back once read
    for t, p_lo, p_hi, z in brightening_scores(movie, config, progress, outliers):
        lo[t], hi[t] = p_lo, p_hi
        pages.release_before(t)
        labels, n = ndi.label(z > config.threshold)
        if not n:
            continue
        for ys, xs in ndi.find_objects(labels):
            y0, y1 = max(0, ys.start - config.margin) // CELL, -(-min(h, ys.stop + config.margin) // CELL)
            x0, x1 = max(0, xs.start - config.margin) // CELL, -(-min(w, xs.stop + config.margin) // CELL)
            grid[max(0, t - config.before): t + 1 + config.after, y0:y1, x0:x1] = True
    labels, _ = ndi.label(grid)
    boxes = [Box(ts.start, ts.stop, ys.start * CELL, ys.stop * CELL, xs.start * CELL, xs.stop * CELL,
                 labels[ts, ys, xs] == k + 1)
             for k, (ts, ys, xs) in enumerate(ndi.find_objects(labels))]
    return boxes, lo, hi


def iter_candidate_blocks(movie: np.ndarray, net: "keras.Model", config: CandidateConfig = CandidateConfig(),
                          tile: tuple[int, int, int] = (2, 448, 448), progress: Progress | None = None,
                          dtype: str = "float32", clip_outliers: bool = True, mask: np.ndarray | None = None
                          ) -> Iterator[tuple[SLC, np.ndarray, np.ndarray]]:
    """Yield (region, probabilities (t, y, x, 3) float32, keep (t, y, x) bool) for the candidate boxes of
    a raw (T, Y, X) movie.

    Only the voxels marked ``keep`` belong to the result; they are never marked twice, and voxels never
    marked are background. Each box runs frame-streamed
    (:class:`exodf.stream.StreamingNetwork`) on its input (the box and its halo), in y/x pieces no larger
    than ``tile``'s core, so memory is bounded whatever the boxes become. ``dtype``: what the network
    computes in (see :class:`exodf.stream.StreamingNetwork`); ``clip_outliers``: see
    :class:`exodf.predict.InferenceConfig`; ``mask``: see :func:`exodf.predict.iter_probability_blocks`.
    """
    from .predict import NormalizedFrames, _TileView
    from .stream import StreamingNetwork

    if movie.ndim != 3:
        raise ValueError(f"iter_candidate_blocks: expected a (T, Y, X) movie, got shape {movie.shape}")
    t_n, h, w = movie.shape
    # progress: the brightening pass counts one unit per frame, the network one per frame of box kept
    outliers = clipped_pixels(movie, mask) if clip_outliers else None
    boxes, lo, hi = candidate_boxes(movie, config, (lambda d, n: progress(d, 2 * n)) if progress else None,
                                    outliers)
    frames = NormalizedFrames(movie, lo, hi, outliers)  # the brightening pass's ranges: each box reads its crop
    _, hp, wp = frames.shape
    pieces = [(box, piece) for box in boxes for piece in _pieces(box, t_n, h, w, hp, wp, config.halo, tile)]
    if work_fraction(boxes, movie.shape, net, config, tile) > FALLBACK:
        # brightenings everywhere: the boxes would cost about as much as the exact whole-volume pass
        from .predict import InferenceConfig, iter_probability_blocks

        context = InferenceConfig(tile=tile, dtype=dtype, clip_outliers=clip_outliers)  # type: ignore[arg-type]
        yield from iter_probability_blocks(movie, net, context,
                                           (lambda d, n: progress(n + d, 2 * n)) if progress else None, mask)
        return
    # voxels fed at once: as many as the whole-movie stream feeds (tile[0] frames of at most a tile's core)
    budget = tile[0] * min(hp, tile[1]) * min(wp, tile[2])
    box_frames = sum(b.t1 - b.t0 for b in boxes) or 1
    done = 0
    stream = StreamingNetwork(net, dtype)
    pages = MappedPages(movie)  # a memory-mapped movie's pages, handed back once read
    current = None
    for box, (source, target) in pieces:  # in order of the boxes' first frame
        if box is not current:
            if current is not None:
                done += current.t1 - current.t0
                if progress is not None:
                    progress(t_n + round(t_n * done / box_frames), 2 * t_n)
            current = box
            pages.release_before(source[0].start)
        ts, ys, xs = source
        view = _TileView(frames, ys, xs, ts)
        chunk = max(tile[0], budget // ((ys.stop - ys.start) * (xs.stop - xs.start)))
        for s0, probs in stream.run(view, chunk, keep=_within(target, source)):
            region = (slice(ts.start + s0, ts.start + s0 + probs.shape[0]), target[1], target[2])
            yield region, probs, box.keep(*region)
    if progress is not None:
        progress(2 * t_n, 2 * t_n)


def work_fraction(boxes: list[Box], shape: tuple[int, int, int], net: "keras.Model",
                  config: CandidateConfig = CandidateConfig(), tile: tuple[int, int, int] = (2, 448, 448)) -> float:
    """The boxes' network work as a fraction of the whole-volume pass's, for a (T, Y, X) movie of ``shape``
    (above :data:`FALLBACK`, :func:`iter_candidate_blocks` runs the whole-volume pass instead)."""
    from .stream import StreamingNetwork

    t_n, h, w = shape
    hp, wp = h + (-h) % CELL, w + (-w) % CELL
    stream = StreamingNetwork(net)
    work = sum(stream.macs((source[0].stop - source[0].start, source[1].stop - source[1].start,
                            source[2].stop - source[2].start), _within(target, source))
               for box in boxes for source, target in _pieces(box, t_n, h, w, hp, wp, config.halo, tile))
    return work / stream.macs((t_n, hp, wp))


def _within(target: SLC, source: SLC) -> SLC:
    """``target`` in the coordinates of ``source`` (a piece's kept output inside its input)."""
    return (slice(target[0].start - source[0].start, target[0].stop - source[0].start),
            slice(target[1].start - source[1].start, target[1].stop - source[1].start),
            slice(target[2].start - source[2].start, target[2].stop - source[2].start))


def _pieces(box: Box, t_n: int, h: int, w: int, hp: int, wp: int, halo: tuple[int, int],
            tile: tuple[int, int, int]) -> list[tuple[SLC, SLC]]:
    """(network input, kept output) regions of one box: y/x pieces no larger than ``tile``'s core, each
    with ``halo`` (frames, px) of context clipped to the padded movie; outputs clipped to the movie."""
    ht, hpx = halo
    it0, it1 = max(0, box.t0 - ht), min(t_n, box.t1 + ht)
    out = []
    for a, b in split_axis(box.y1 - box.y0, tile[1], CELL):
        for c, d in split_axis(box.x1 - box.x0, tile[2], CELL):
            py0, py1, px0, px1 = box.y0 + a, box.y0 + b, box.x0 + c, box.x0 + d
            y1, x1 = min(py1, h), min(px1, w)
            if y1 <= py0 or x1 <= px0:
                continue
            source = (slice(it0, it1), slice(max(0, py0 - hpx), min(hp, py1 + hpx)),
                      slice(max(0, px0 - hpx), min(wp, px1 + hpx)))
            out.append((source, (slice(box.t0, box.t1), slice(py0, y1), slice(px0, x1))))
    return out
