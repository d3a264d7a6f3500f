"""Small synthetic movies shared by the tests (imported as ``from puffs import puff_movie``)."""

from __future__ import annotations

import numpy as np


def puff_movie(seed: int = 0, frames: int = 30, size: int = 64) -> np.ndarray:
    """Noisy background with docked bright spots and three puffs that flash and decay."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    base = 300 + 40 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
    movie = np.repeat(base[None], frames, axis=0).astype(np.float64)
    for (y, x) in ((12, 50), (50, 14)):  # static bright spots
        movie += 400 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.3 ** 2))[None]
    for (t, y, x) in ((8, 20, 20), (15, 40, 44), (22, 30, 12)):
        for dt in range(0, frames - t):
            s2 = 1.2 ** 2 + 0.6 * dt
            movie[t + dt] += 1500 * np.exp(-dt / 2.0) * 1.2 ** 2 / s2 * np.exp(
                -((yy - y) ** 2 + (xx - x) ** 2) / (2 * s2))
    return rng.poisson(movie).astype(np.uint16)
