"""Class probabilities of a normalised movie: the network run over tiles.

:func:`predict_probabilities` returns (T, Y, X, 3) float32 probabilities (background, bright spot,
exocytosis). :func:`iter_probability_blocks` yields them block by block for callers that do not want the
whole array in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Literal

import numpy as np

from .errors import ExodfError
from .model import N_CLASSES, SPATIAL_MULTIPLE
from .tiling import ORIGINAL_PAD, RECEPTIVE_HALO, Tile, context_tiles, original_tiles

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["InferenceConfig", "predict_probabilities", "iter_probability_blocks", "pad_movie", "Progress",
           "labels_from_probabilities"]

Progress = Callable[[int, int], None]  # (done, total) tiles
SLC = tuple[slice, slice, slice]


@dataclass(frozen=True)
class InferenceConfig:
    """How the network is run over a movie.

    Attributes
    ----------
    tiling
        ``"context"`` (default): tiles with a receptive-field halo, results independent of the tile size.
        ``"original"``: the original ExoDeepFinder's patches, for exact reproduction of its results.
    tile
        Context tiling: the largest kept core per tile (t, y, x); bigger is faster and needs more memory.
    patch
        Original tiling: the cubic patch side (the original's ``-ps``, default 160, a multiple of 4).
    time_pad
        Context tiling: frames added before the first and after the last frame by repeating them, so that
        what is already bright at the movie's start does not look like it "appears" there (the original's
        zero frames made it do so). 0 gives a plain whole-volume pass.
    """

    tiling: Literal["context", "original"] = "context"
    tile: tuple[int, int, int] = (48, 192, 192)
    patch: int = 160
    time_pad: int = 0
    halo: tuple[int, int, int] = field(default=RECEPTIVE_HALO)

    def __post_init__(self) -> None:
        if self.tiling not in ("context", "original"):
            raise ValueError(f"InferenceConfig.tiling must be 'context' or 'original', got {self.tiling!r}")
        if len(self.tile) != 3 or any(int(v) < 1 for v in self.tile):
            raise ValueError(f"InferenceConfig.tile must be three positive sizes (t, y, x), got {self.tile}")
        if self.tile[1] % SPATIAL_MULTIPLE or self.tile[2] % SPATIAL_MULTIPLE:
            raise ValueError(f"InferenceConfig.tile: y and x must be multiples of 4, got {self.tile}")
        if self.patch % SPATIAL_MULTIPLE or self.patch <= 2 * ORIGINAL_PAD:
            raise ValueError(f"InferenceConfig.patch must be a multiple of 4 above 50, got {self.patch}")
        if self.time_pad < 0:
            raise ValueError(f"InferenceConfig.time_pad must be >= 0, got {self.time_pad}")


def pad_movie(normalized: np.ndarray, time_pad: int) -> tuple[np.ndarray, SLC]:
    """Pad y and x up to multiples of 4 (mirroring the last rows/columns) and time by repeating edge frames.

    Returns the padded volume and the slices that recover the movie from it.
    """
    t, h, w = normalized.shape
    ph, pw = (-h) % SPATIAL_MULTIPLE, (-w) % SPATIAL_MULTIPLE
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "edge"
        normalized = np.pad(normalized, ((0, 0), (0, ph), (0, pw)), mode=mode)
    if time_pad:
        normalized = np.pad(normalized, ((time_pad, time_pad), (0, 0), (0, 0)), mode="edge")
    return normalized, (slice(time_pad, time_pad + t), slice(0, h), slice(0, w))


def _run(net: "keras.Model", block: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(block, dtype=np.float32)[None, ..., None]
    return np.asarray(net(x, training=False))[0]


def iter_probability_blocks(normalized: np.ndarray, net: "keras.Model", config: InferenceConfig = InferenceConfig(),
                            progress: Progress | None = None) -> Iterator[tuple[SLC, np.ndarray]]:
    """Yield (region of the movie, probabilities (t, y, x, 3) float32 of that region) covering the movie once.

    Only for context tiling; the original scheme averages overlapping patches and needs the whole array.
    """
    if config.tiling != "context":
        raise ValueError("iter_probability_blocks works with context tiling only")
    if normalized.ndim != 3:
        raise ValueError(f"expected a normalised (T, Y, X) movie, got shape {normalized.shape}")
    padded, crop = pad_movie(normalized, config.time_pad)
    tiles = context_tiles(padded.shape, config.tile, config.halo, SPATIAL_MULTIPLE)
    for k, tile in enumerate(tiles):
        probs = _run(net, padded[tile.source])[tile.inner]
        # intersect the tile's target with the movie (drop time and spatial padding)
        region, local = [], []
        for tg, cr in zip(tile.target, crop):
            a, b = max(tg.start, cr.start), min(tg.stop, cr.stop)
            region.append(slice(a - cr.start, max(a, b) - cr.start))
            local.append(slice(a - tg.start, max(a, b) - tg.start))
        if progress is not None:
            progress(k + 1, len(tiles))
        if all(s.stop > s.start for s in region):
            yield tuple(region), probs[tuple(local)]  # type: ignore[misc]


def predict_probabilities(normalized: np.ndarray, net: "keras.Model",
                          config: InferenceConfig = InferenceConfig(),
                          progress: Progress | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """(T, Y, X, 3) class probabilities of a normalised movie.

    Context tiling returns float32 (into ``out`` if given, e.g. a memory map). Original tiling returns
    float16, as the original accumulates and averages its patches in float16.
    """
    if config.tiling == "original":
        return _predict_original(normalized, net, config.patch, progress)
    if out is None:
        out = np.empty(normalized.shape + (N_CLASSES,), dtype=np.float32)
    for region, probs in iter_probability_blocks(normalized, net, config, progress):
        out[region] = probs
    return out


def _predict_original(normalized: np.ndarray, net: "keras.Model", patch: int,
                      progress: Progress | None) -> np.ndarray:
    """The original's tiled prediction, operation for operation (float16 accumulation included)."""
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
        pred = _run(net, data[tile.source])
        acc[tile.target] = acc[tile.target] + np.float16(pred[tile.inner])
        count[tile.target] = count[tile.target] + np.ones(count[tile.target].shape, dtype=np.int8)
        if progress is not None:
            progress(k + 1, len(tiles))
    for c in range(N_CLASSES):
        acc[..., c] = acc[..., c] / count
    p = ORIGINAL_PAD
    return acc[p:-p, p:-p, p:-p, :]


def labels_from_probabilities(probs: np.ndarray) -> np.ndarray:
    """Argmax over classes as int8 (0 background, 1 bright spot, 2 exocytosis)."""
    return np.argmax(probs, axis=-1).astype(np.int8)
