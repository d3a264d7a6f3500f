"""Class probabilities of a normalised movie: the network run over tiles.

:func:`predict_probabilities` returns (T, Y, X, 3) float32 probabilities (background, bright spot,
exocytosis). :func:`iter_probability_blocks` yields them block by block for callers that do not want the
whole array in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

import numpy as np

from .candidates import CandidateConfig
from .errors import ExodfError
from .io import MappedPages, check_movie
from .model import N_CLASSES, SPATIAL_MULTIPLE
from .normalize import apply_range, clipped_pixels, frame_range, normalize_frames
from .stream import DTYPES
from .tiling import ORIGINAL_OVERLAP, ORIGINAL_PAD, RECEPTIVE_HALO, Tile, context_tiles, original_tiles

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["InferenceConfig", "DEFAULT_TILE", "TILINGS", "predict_probabilities", "iter_probability_blocks",
           "NormalizedFrames", "Progress", "iter_tiled_blocks", "original_probabilities", "keras_block_fn",
           "BlockFn", "labels_from_probabilities"]

Progress = Callable[[int, int], None]  # (done, total) tiles
# context tiling: frames fed per streamed step (2: least memory at the same speed), largest y/x core
DEFAULT_TILE: tuple[int, int, int] = (2, 448, 448)
TILINGS = ("context", "original", "candidates")
SLC = tuple[slice, slice, slice]


@dataclass(frozen=True)
class InferenceConfig:
    """How the network is run over a movie.

    Attributes
    ----------
    tiling
        ``"context"`` (default): one whole-volume pass, computed frame-streamed along time
        (:mod:`exodf.stream`) and, for frames larger than ``tile``, in y/x tiles with a receptive-field halo;
        results do not depend on the tile size. ``"original"``: the original ExoDeepFinder's patches, for
        exact reproduction of its results. ``"candidates"``: the network only around sudden brightenings
        (:mod:`exodf.candidates`), about 3x faster on long sparse movies (1000 x 300 x 300: 181 s vs 722 s;
        80 x 128 x 128: 30 s vs 16 s, its brightening pass and halos outweigh the saving): the probabilities
        of ``"context"`` there, background elsewhere.
    tile
        Context tiling: (frames fed at a time, largest y core, largest x core). Memory grows with each; the
        result does not change.
    patch
        Original tiling: the cubic patch side (the original's ``-ps``, default 160, a multiple of 4).
    candidates
        Candidate tiling: where the network runs (:class:`exodf.candidates.CandidateConfig`).
    dtype
        Context and candidate tiling: what the layers compute in (:class:`exodf.stream.StreamingNetwork`).
        ``"float32"`` (default) is the network as trained; ``"bfloat16"`` is about 2 times (1.7-2.4) faster on CPUs
        with bfloat16 arithmetic (AVX512_BF16, AMX) and found the same events on the simulated benchmark
        movies (README, Performance), but it rounds every activation to 8 significant bits, so single voxels'
        labels can change; ``"float16"`` is meant for GPUs (on a CPU it is several times slower).
    clip_outliers
        Context and candidate tiling: pixels that stay far brighter than the cell all through the movie (hot
        or saturated camera pixels, a bead, debris: :func:`exodf.normalize.static_outliers`) and, given a
        cell mask, pixels outside it brighter than the cell (:func:`exodf.normalize.bright_outside`) are
        left out of each frame's p1-p99 range and clipped to its p99 before the network, which they would
        otherwise blind within ±34 px or whose contrast they would squeeze. Movies without such pixels are
        normalised exactly as the original; ``False`` feeds them as they are, as the original does
        (original tiling always does).
    """

    tiling: Literal["context", "original", "candidates"] = "context"
    tile: tuple[int, int, int] = DEFAULT_TILE
    patch: int = 160
    halo: tuple[int, int, int] = field(default=RECEPTIVE_HALO)
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    clip_outliers: bool = True

    def __post_init__(self) -> None:
        if self.tiling not in TILINGS:
            raise ValueError(f"InferenceConfig.tiling must be one of {', '.join(TILINGS)}, got {self.tiling!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"InferenceConfig.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.tiling == "original" and self.dtype != "float32":
            raise ValueError(f"InferenceConfig: original tiling reproduces the original in float32; dtype "
                             f"{self.dtype!r} needs context or candidates tiling")
        if len(self.tile) != 3 or any(int(v) != v or int(v) < 1 for v in self.tile):
            raise ValueError(f"InferenceConfig.tile must be three positive whole sizes (t, y, x), got {self.tile}")
        if self.tile[1] % SPATIAL_MULTIPLE or self.tile[2] % SPATIAL_MULTIPLE:
            raise ValueError(f"InferenceConfig.tile: y and x must be multiples of 4, got {self.tile}")
        if self.patch % SPATIAL_MULTIPLE or self.patch + 1 - ORIGINAL_OVERLAP < 2:  # patches must advance
            raise ValueError(f"InferenceConfig.patch must be a multiple of 4 from 56 (the original's patches advance "
                             f"by the side - 54 voxels), got {self.patch}")


class NormalizedFrames:
    """A (T, Y', X') view of a movie normalised frame by frame on access, Y' and X' padded to multiples of 4.

    Frames are read (e.g. from a memory map) and normalised only when indexed, so a long movie never
    needs to be in memory as float32. Padding mirrors the last rows/columns (repeats them in frames
    too small to mirror). Each frame's (p1, p99) is computed once, when the frame is first read, or given
    (``lo``, ``hi``: :func:`exodf.normalize.frame_range` of each frame): the y/x tiles of large frames then
    read and normalise only their crop. ``frames[ts, ys, xs]`` equals the crop of the padded
    :func:`exodf.normalize.normalize_frames` of the movie (with the same ``outliers``), bit for bit.
    """

    def __init__(self, movie: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None,
                 outliers: np.ndarray | None = None) -> None:
        if movie.ndim != 3:
            raise ValueError(f"expected a (T, Y, X) movie, got shape {movie.shape}")
        if outliers is not None and outliers.shape != movie.shape[1:]:
            raise ValueError(f"NormalizedFrames: outliers of shape {outliers.shape} for frames {movie.shape[1:]}")
        self.movie = movie
        self.outliers = outliers
        self._pages = MappedPages(movie)
        t, h, w = movie.shape
        self.pad = ((-h) % SPATIAL_MULTIPLE, (-w) % SPATIAL_MULTIPLE)
        self.shape = (t, h + self.pad[0], w + self.pad[1])
        self.ndim = 3
        self.dtype = np.dtype(np.float32)
        self._reflect = h > self.pad[0] and w > self.pad[1]
        if (lo is None) != (hi is None) or (lo is not None and hi is not None and (len(lo) != t or len(hi) != t)):
            raise ValueError(f"NormalizedFrames: give both lo and hi, one per frame ({t})")
        self.lo = np.full(t, np.nan, np.float32) if lo is None else np.array(lo, dtype=np.float32)  # (copies:
        self.hi = np.full(t, np.nan, np.float32) if hi is None else np.array(hi, dtype=np.float32)  # filled here)

    def _index(self, s: slice, n: int, padded: int) -> np.ndarray:
        i = np.arange(*s.indices(padded))
        return np.where(i < n, i, 2 * (n - 1) - i if self._reflect else n - 1)

    def __getitem__(self, key: tuple[slice, ...] | slice) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if not all(isinstance(k, slice) for k in key) or len(key) > 3:
            raise IndexError("NormalizedFrames takes slices: frames[ts], frames[ts, ys] or frames[ts, ys, xs]")
        ts, ys, xs = key + (slice(None),) * (3 - len(key))
        t_n, h, w = self.movie.shape
        ti = np.arange(*ts.indices(t_n))
        yi, xi = self._index(ys, h, self.shape[1]), self._index(xs, w, self.shape[2])
        if not (len(ti) and len(yi) and len(xi)):
            return np.zeros((len(ti), len(yi), len(xi)), dtype=np.float32)
        y0, x0 = int(yi.min()), int(xi.min())
        whole = y0 == 0 and x0 == 0 and yi.max() == h - 1 and xi.max() == w - 1
        block = np.asarray(self.movie[ts, y0: int(yi.max()) + 1, x0: int(xi.max()) + 1], dtype=np.float32)
        for k, t in enumerate(ti):
            if np.isnan(self.lo[t]):  # first read of this frame: its range, from the block if it is whole
                self.lo[t], self.hi[t] = frame_range(block[k] if whole else self.movie[t],
                                                     outliers=self.outliers)
        self._pages.release_before(int(ti.min()))
        if len(yi) != block.shape[1] or (np.diff(yi) != 1).any():  # mirrored padding
            block = block[:, yi - y0]
        if len(xi) != block.shape[2] or (np.diff(xi) != 1).any():
            block = block[:, :, xi - x0]
        clip = None if self.outliers is None else self.outliers[np.ix_(yi, xi)]
        return np.stack([apply_range(f, lo, hi, clip) for f, lo, hi in zip(block, self.lo[ti], self.hi[ti])])


def iter_probability_blocks(movie: np.ndarray, net: "keras.Model", config: InferenceConfig = InferenceConfig(),
                            progress: Progress | None = None, mask: np.ndarray | None = None
                            ) -> Iterator[tuple[SLC, np.ndarray]] | Iterator[
                                tuple[SLC, np.ndarray, np.ndarray]]:
    """Yield (region of the movie, probabilities (t, y, x, 3) float32 of that region), covering it once
    (candidate tiling adds a third item, the voxels of the region it covers: see
    :func:`exodf.candidates.iter_candidate_blocks`).

    ``movie`` is the raw (T, Y, X) movie (normalised here, frame by frame). Context and candidate tiling
    only: the original scheme averages overlapping patches and needs the whole array. Candidate tiling
    covers only its boxes: the rest of the movie is background. ``mask``: the cell's (Y, X) mask, if known
    (pixels outside it brighter than the cell are then clipped: :func:`exodf.normalize.clipped_pixels`).
    """
    from .candidates import iter_candidate_blocks
    from .stream import StreamingNetwork

    if config.tiling == "candidates":
        yield from iter_candidate_blocks(movie, net, config.candidates, config.tile, progress, config.dtype,
                                         config.clip_outliers, mask)
        return
    if config.tiling != "context":
        raise ValueError("iter_probability_blocks works with context or candidate tiling only")
    frames = NormalizedFrames(movie, outliers=clipped_pixels(movie, mask) if config.clip_outliers else None)
    t, h, w = movie.shape
    _, hp, wp = frames.shape
    spatial = context_tiles((1, hp, wp), (1,) + tuple(config.tile[1:]), (0,) + tuple(config.halo[1:]),
                            SPATIAL_MULTIPLE)
    stream = StreamingNetwork(net, config.dtype)
    total = t * len(spatial)
    for k, tile in enumerate(spatial):
        _, ys, xs = tile.source
        _, yi, xi = tile.inner
        _, yt, xt = tile.target
        # the part of this tile's kept core that lies inside the movie (not in the y/x padding)
        y1, x1 = min(yt.stop, h), min(xt.stop, w)
        if y1 <= yt.start or x1 <= xt.start:
            continue
        view = _TileView(frames, ys, xs)
        tile_progress = (lambda d, n, k=k: progress(k * t + d, total)) if progress else None
        keep = (slice(None), slice(yi.start, yi.start + y1 - yt.start), slice(xi.start, xi.start + x1 - xt.start))
        for t0, probs in stream.run(view, config.tile[0], tile_progress, keep=keep):
            yield (slice(t0, t0 + probs.shape[0]), slice(yt.start, y1), slice(xt.start, x1)), probs


class _TileView:
    """(t, y, x) frames of one tile of a normalised movie view indexed as ``frames[ts, ys, xs]`` (a
    :class:`NormalizedFrames`, or the candidate boxes' pre-ranged frames), for
    :class:`exodf.stream.StreamingNetwork`; the tile spans all frames unless ``ts`` is given."""

    def __init__(self, frames: Any, ys: slice, xs: slice, ts: slice | None = None) -> None:
        self.frames, self.ys, self.xs = frames, ys, xs
        self.ts = ts if ts is not None else slice(0, frames.shape[0])
        self.shape = (self.ts.stop - self.ts.start, ys.stop - ys.start, xs.stop - xs.start)
        self.ndim = 3

    def __getitem__(self, key: slice) -> np.ndarray:
        a = self.ts.start + (key.start or 0)
        b = self.ts.start + (self.shape[0] if key.stop is None else key.stop)
        return self.frames[slice(a, b), self.ys, self.xs]


BlockFn = Callable[[np.ndarray], np.ndarray]  # (t, y, x) float32 -> (t, y, x, 3) float32


def _run(net: "keras.Model", block: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(block, dtype=np.float32)[None, ..., None]
    return np.asarray(net(x, training=False))[0]


def keras_block_fn(net: "keras.Model") -> BlockFn:
    """Run a Keras network on one normalised (t, y, x) block."""
    return lambda block: _run(net, block)


def iter_tiled_blocks(normalized: np.ndarray, run_block: BlockFn, core: tuple[int, int, int] = (48, 192, 192),
                      halo: tuple[int, int, int] = RECEPTIVE_HALO,
                      progress: Progress | None = None) -> Iterator[tuple[SLC, np.ndarray]]:
    """Whole-volume-equivalent probabilities from any block-wise network (e.g. a bioimage.io package).

    The normalised movie is cut into :func:`exodf.tiling.context_tiles` whose halo covers the receptive
    field; y/x are padded (mirrored) to multiples of 4 first. Slower than the streamed Keras path (halos are
    recomputed) but needs nothing but a function from a block to its probabilities.
    """
    t, h, w = normalized.shape
    ph, pw = (-h) % SPATIAL_MULTIPLE, (-w) % SPATIAL_MULTIPLE
    padded = normalized
    if ph or pw:
        padded = np.pad(normalized, ((0, 0), (0, ph), (0, pw)), mode="reflect" if h > ph and w > pw else "edge")
    tiles = context_tiles(padded.shape, core, halo, SPATIAL_MULTIPLE)
    for k, tile in enumerate(tiles):
        probs = run_block(np.ascontiguousarray(padded[tile.source], dtype=np.float32))[tile.inner]
        tt, yt, xt = tile.target
        y1, x1 = min(yt.stop, h), min(xt.stop, w)
        if progress is not None:
            progress(k + 1, len(tiles))
        if y1 > yt.start and x1 > xt.start:
            yield (tt, slice(yt.start, y1), slice(xt.start, x1)), probs[:, : y1 - yt.start, : x1 - xt.start]


def predict_probabilities(movie: np.ndarray, net: "keras.Model", config: InferenceConfig = InferenceConfig(),
                          progress: Progress | None = None, out: np.ndarray | None = None,
                          mask: np.ndarray | None = None) -> np.ndarray:
    """(T, Y, X, 3) class probabilities of a raw (T, Y, X) movie (normalised here, as the original).

    Context tiling returns float32 (into ``out`` if given, e.g. a memory map). Original tiling returns
    float16, as the original accumulates and averages its patches in float16. The movie is checked as
    :func:`exodf.detect.detect_events` checks it (:func:`exodf.io.check_movie`). ``mask``: see
    :func:`iter_probability_blocks`.
    """
    check_movie(movie, "predict_probabilities: the movie")
    if config.tiling == "original":
        return original_probabilities(normalize_frames(movie), keras_block_fn(net), config.patch, progress)
    if out is None:
        out = np.empty(movie.shape + (N_CLASSES,), dtype=np.float32)
    if config.tiling == "candidates":  # outside the boxes: background
        out[...] = 0
        out[..., 0] = 1
    for region, probs, *keep in iter_probability_blocks(movie, net, config, progress, mask):
        if keep:
            np.copyto(out[region], probs, where=keep[0][..., None])
        else:
            out[region] = probs
    return out


def original_probabilities(normalized: np.ndarray, run_block: BlockFn, patch: int = 160,
                           progress: Progress | None = None) -> np.ndarray:
    """The original's tiled prediction, operation for operation (float16 accumulation included).

    ``normalized`` is the normalised (T, Y, X) movie; returns (T, Y, X, 3) float16.
    """
    need = patch - 2 * ORIGINAL_PAD
    if min(normalized.shape) < need:
        raise ExodfError(
            f"--tiling original needs at least {need} frames and {need}x{need} px for patch size {patch} "
            f"(the movie is {normalized.shape[0]} frames of {normalized.shape[2]}x{normalized.shape[1]} px); "
            "use the default tiling, or a smaller --patch-size (a multiple of 4)")
    data = np.pad(normalized.astype(np.float32, copy=False), ORIGINAL_PAD, mode="constant", constant_values=0)
    acc = np.zeros(data.shape + (N_CLASSES,), dtype=np.float16)
    count = np.zeros(data.shape, dtype=np.int8)
    tiles: list[Tile] = original_tiles(data.shape, patch)
    for k, tile in enumerate(tiles):
        pred = run_block(data[tile.source])
        acc[tile.target] = acc[tile.target] + np.float16(pred[tile.inner])
        count[tile.target] = count[tile.target] + np.ones(count[tile.target].shape, dtype=np.int8)
        if progress is not None:
            progress(k + 1, len(tiles))
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 only in the zero padding, cut off below
        for c in range(N_CLASSES):
            acc[..., c] = acc[..., c] / count
    p = ORIGINAL_PAD
    return acc[p:-p, p:-p, p:-p, :]


def labels_from_probabilities(probs: np.ndarray) -> np.ndarray:
    """Argmax over classes as int8 (0 background, 1 bright spot, 2 exocytosis)."""
    return np.argmax(probs, axis=-1).astype(np.int8)
