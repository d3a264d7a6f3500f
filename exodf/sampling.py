"""Training patches: centred on annotated objects, classes balanced per batch, shifted, xy-symmetrised.

As in the original, a patch is a cube of ``patch`` frames × ``patch`` × ``patch`` pixels centred on an
object (an annotated event or a bright-spot centroid) moved by a random shift of up to ``shift`` voxels
along each axis, then pushed back inside the movie. Each batch holds as many bright-spot patches as
exocytosis patches (when both exist). Augmentation is one of the 8 symmetries of the square in the
y–x plane (transpose, flips); time is never flipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .targets import EXOCYTOSIS, SPOT, TrainingObjects

__all__ = ["TrainingMovie", "sample_batch", "symmetry", "N_CLASSES"]

N_CLASSES = 3


@dataclass(frozen=True)
class TrainingMovie:
    """One annotated movie, ready for sampling.

    Attributes
    ----------
    frames
        The normalised movie (T, Y, X) float32 (see :func:`exodf.normalize.normalize_frames`), or a
        :class:`exodf.normalize.NormalizedMovie` that normalises what is read of it.
    target
        Classes (T, Y, X) int8 (see :func:`exodf.targets.make_target`).
    objects
        The patch centres per class.
    name
        A label for messages (the file name).
    """

    frames: np.ndarray
    target: np.ndarray
    objects: TrainingObjects
    name: str = ""

    def __post_init__(self) -> None:
        if self.frames.shape != self.target.shape or self.frames.ndim != 3:
            raise ValueError(f"TrainingMovie {self.name!r}: frames {self.frames.shape} and target "
                             f"{self.target.shape} must be the same (T, Y, X) shape")


def symmetry(a: np.ndarray, k: int) -> np.ndarray:
    """Apply symmetry ``k`` (0–7) of the square to the y–x axes (1, 2) of ``a`` (t, y, x, ...)."""
    if k & 4:
        a = np.swapaxes(a, 1, 2)
    if k & 1:
        a = a[:, ::-1]
    if k & 2:
        a = a[:, :, ::-1]
    return a


def _pool(movies: list[TrainingMovie], label: int) -> np.ndarray:
    """(N, 4) int64 rows (movie index, t, y, x) of every object of ``label``."""
    parts = [np.column_stack([np.full(len(o), i), o]) for i, m in enumerate(movies)
             if len(o := m.objects.of_class(label))]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, 4), dtype=np.int64)


def _corner(centre: int, size: int, patch: int) -> int:
    """Start index of a ``patch``-long window around ``centre``, kept inside [0, size)."""
    return int(min(max(centre - patch // 2, 0), size - patch))


def sample_batch(movies: list[TrainingMovie], patch: int, batch: int, shift: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One batch: inputs (B, p, p, p, 1) float32 and one-hot targets (B, p, p, p, 3) float32.

    Raises
    ------
    ValueError
        If no movie holds an object, or a movie is smaller than the patch along an axis.
    """
    for m in movies:
        if min(m.frames.shape) < patch:
            raise ValueError(f"movie {m.name!r} of shape {m.frames.shape} is smaller than the patch size "
                             f"{patch} along an axis; use smaller patches or longer/larger movies")
    pools = [p for p in (_pool(movies, SPOT), _pool(movies, EXOCYTOSIS)) if len(p)]
    if not pools:
        raise ValueError("no annotated events nor bright spots to centre training patches on")
    order = rng.permutation(batch) % len(pools)  # classes balanced: equal counts (±1), shuffled
    x = np.empty((batch, patch, patch, patch, 1), dtype=np.float32)
    y = np.zeros((batch, patch, patch, patch, N_CLASSES), dtype=np.float32)
    for i in range(batch):
        pool = pools[int(order[i])]
        mi, *centre = pool[int(rng.integers(len(pool)))]
        m = movies[int(mi)]
        jitter = rng.integers(-shift, shift + 1, size=3) if shift > 0 else np.zeros(3, dtype=np.int64)
        starts = [_corner(int(c + j), s, patch) for c, j, s in zip(centre, jitter, m.frames.shape)]
        sl = tuple(slice(a, a + patch) for a in starts)
        k = int(rng.integers(8))
        x[i, ..., 0] = symmetry(m.frames[sl], k)
        lab = symmetry(m.target[sl], k)
        np.put_along_axis(y[i], lab[..., None].astype(np.int64), 1.0, axis=-1)
    return x, y
