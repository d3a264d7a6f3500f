"""Where the network looks: pure tile geometry, no arrays.

Two schemes:

- :func:`context_tiles` (the default): tiles whose halo covers the network's receptive field and whose
  y/x starts sit on the pooling grid (multiples of 4), so the stitched result equals one pass of the
  network over the whole (padded) volume: the tile size changes speed and memory, never the result.
- :func:`original_tiles`: the original ExoDeepFinder's scheme (cubic patches of side P every P + 1 - 55
  voxels in the movie zero-padded by 25 voxels on every axis, the central (P - 50)^3 of each averaged),
  kept to reproduce published analyses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Tile", "context_tiles", "original_tiles", "RECEPTIVE_HALO", "ORIGINAL_PAD", "split_axis"]

# One-sided receptive field of the network (t, y, x), measured with an impulse (tests/test_tiling.py):
# an output voxel depends on inputs 12 frames before to 14 after it, and up to 34 px away in y/x
# (depending on the pooling phase). The y/x halo is rounded up to the pooling multiple.
RECEPTIVE_HALO = (14, 36, 36)
ORIGINAL_PAD = 25
ORIGINAL_OVERLAP = 55
SLC = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Tile:
    """One network input and the part of its output that is kept.

    ``source``: the input region (in the padded volume); ``target``: where the kept output goes (same
    coordinates); ``inner``: that kept part inside the tile's own output.
    """

    source: SLC
    target: SLC
    inner: SLC

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(s.stop - s.start for s in self.source)  # type: ignore[return-value]


def split_axis(n: int, max_core: int, multiple: int) -> list[tuple[int, int]]:
    """Split [0, n) into near-equal cores no longer than ``max_core`` whose starts are multiples of ``multiple``."""
    if n <= 0:
        raise ValueError(f"split_axis: axis length must be > 0, got {n}")
    max_core = max(multiple, (max_core // multiple) * multiple)
    k = math.ceil(n / max_core)
    core = math.ceil(math.ceil(n / k) / multiple) * multiple
    bounds = []
    start = 0
    while start < n:
        bounds.append((start, min(n, start + core)))
        start += core
    return bounds


def context_tiles(shape: tuple[int, int, int], core: tuple[int, int, int],
                  halo: tuple[int, int, int] = RECEPTIVE_HALO, multiple: int = 4) -> list[Tile]:
    """Tiles over a (T, Y, X) volume whose Y and X are multiples of ``multiple``.

    Each tile's input extends ``halo`` beyond its core on every side, clipped at the volume's edge (where the
    network's own 'same' padding then acts exactly as in a whole-volume pass).
    """
    if any(s % multiple for s in shape[1:]):
        raise ValueError(f"context_tiles: Y and X ({shape[1:]}) must be multiples of {multiple}")
    if any(h % multiple for h in halo[1:]):
        raise ValueError(f"context_tiles: the y/x halo {halo[1:]} must be a multiple of {multiple}")
    axes = [split_axis(shape[0], core[0], 1)] + [split_axis(shape[i], core[i], multiple) for i in (1, 2)]
    tiles = []
    for bt in axes[0]:
        for by in axes[1]:
            for bx in axes[2]:
                src, tgt, inn = [], [], []
                for (c0, c1), h, n in zip((bt, by, bx), halo, shape):
                    s0, s1 = max(0, c0 - h), min(n, c1 + h)
                    src.append(slice(s0, s1))
                    tgt.append(slice(c0, c1))
                    inn.append(slice(c0 - s0, c1 - s0))
                tiles.append(Tile(tuple(src), tuple(tgt), tuple(inn)))  # type: ignore[arg-type]
    return tiles


def original_work(patch: int) -> float:
    """Network voxels computed per movie voxel by the original's tiling with this patch side (large movies):
    each ``patch``³ patch keeps its central ``patch - 50`` cube, patches ``patch + 1 - 55`` apart."""
    return (patch / (patch + 1 - ORIGINAL_OVERLAP)) ** 3


def original_tiles(padded_shape: tuple[int, int, int], patch: int = 160) -> list[Tile]:
    """The original's patches over the movie already zero-padded by :data:`ORIGINAL_PAD` on every axis.

    Order and geometry are the original's: centres every ``patch + 1 - 55`` voxels from ``patch/2``, one
    more centre flush with the far edge if needed; the kept part is the central ``patch - 50`` cube.
    """
    if patch % 4 or patch + 1 - ORIGINAL_OVERLAP < 2:
        raise ValueError(f"original_tiles: the patch size must be a multiple of 4 from 56, got {patch}")
    if any(n < patch for n in padded_shape):
        raise ValueError(f"original_tiles: the padded movie {padded_shape} is smaller than a {patch}^3 patch")
    half = patch // 2
    keep = half - ORIGINAL_PAD
    step = 2 * half + 1 - ORIGINAL_OVERLAP

    def centres(n: int) -> list[int]:
        c = list(range(half, n - half, step))
        if not c or c[-1] < n - half:
            c.append(n - half)
        return c

    tiles = []
    for ct in centres(padded_shape[0]):
        for cy in centres(padded_shape[1]):
            for cx in centres(padded_shape[2]):
                src = tuple(slice(c - half, c + half) for c in (ct, cy, cx))
                tgt = tuple(slice(c - keep, c + keep) for c in (ct, cy, cx))
                inn = (slice(half - keep, half + keep),) * 3
                tiles.append(Tile(src, tgt, inn))  # type: ignore[arg-type]
    return tiles
