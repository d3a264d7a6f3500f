"""Tile geometry, and the claim it rests on: the halo covers the network's receptive field."""

from __future__ import annotations

import numpy as np
import pytest

from exodf.tiling import RECEPTIVE_HALO, context_tiles, original_tiles, split_axis


def test_split_axis_covers_once_on_grid() -> None:
    for n in (1, 7, 64, 199, 300, 1000):
        for core in (8, 48, 192):
            b = split_axis(n, core, 4)
            assert b[0][0] == 0 and b[-1][1] == n
            assert all(a1 == b0 for (_, a1), (b0, _) in zip(b, b[1:]))
            assert all(a % 4 == 0 for a, _ in b)
            assert max(e - s for s, e in b) <= max(4, core - core % 4)


def test_context_tiles_partition_the_volume() -> None:
    shape = (50, 100, 68)
    tiles = context_tiles(shape, (16, 40, 40))
    hits = np.zeros(shape, int)
    for t in tiles:
        hits[t.target] += 1
        for src, tgt, inn, h, n in zip(t.source, t.target, t.inner, RECEPTIVE_HALO, shape):
            assert src.start == max(0, tgt.start - h) and src.stop == min(n, tgt.stop + h)
            assert inn.start == tgt.start - src.start and inn.stop - inn.start == tgt.stop - tgt.start
        assert t.source[1].start % 4 == 0 and t.source[2].start % 4 == 0
    assert (hits == 1).all()


def test_original_tiles_match_the_original_geometry() -> None:
    # 200^3 movie padded by 25 -> 250^3: centres 80 and 170 on each axis, kept cube 110^3
    tiles = original_tiles((250, 250, 250), 160)
    assert len(tiles) == 8
    assert tiles[0].source == (slice(0, 160),) * 3 and tiles[0].target == (slice(25, 135),) * 3
    assert tiles[-1].source == (slice(90, 250),) * 3 and tiles[-1].target == (slice(115, 225),) * 3
    assert tiles[0].inner == (slice(25, 135),) * 3
    with pytest.raises(ValueError, match="smaller"):
        original_tiles((100, 250, 250), 160)


def test_receptive_field_within_halo() -> None:
    """An impulse changes outputs no further than RECEPTIVE_HALO away, at every pooling phase."""
    from exodf.model import build_unet

    net = build_unet()
    rng = np.random.default_rng(0)
    for layer in net.layers:
        w = layer.get_weights()
        if w:  # positive weights, no bias: every path through the network carries the impulse
            layer.set_weights([np.abs(rng.normal(0, 0.05, w[0].shape)).astype("float32"), np.zeros_like(w[1])])
    t0, c = 20, 48
    x0 = np.zeros((1, 40, 96, 96, 1), "float32")
    base = np.asarray(net(x0))
    reach = np.zeros(3, int)
    for phase in range(4):
        x = x0.copy()
        x[0, t0, c + phase, c + phase, 0] = 1.0
        d = np.abs(np.asarray(net(x)) - base).max(axis=(0, 4))
        nz = np.argwhere(d > 0) - np.array([t0, c + phase, c + phase])
        reach = np.maximum(reach, np.abs(nz).max(axis=0))
    assert reach[0] == 14 and 30 <= reach[1] <= RECEPTIVE_HALO[1] and reach[2] <= RECEPTIVE_HALO[2]
    assert reach[0] <= RECEPTIVE_HALO[0]


def test_original_patches_must_advance() -> None:
    """A 52-px patch advances by -2 voxels: one patch at the far end, NaN everywhere else (the original's
    arithmetic too); 56 is the smallest patch whose patches cover the movie."""
    from exodf.predict import InferenceConfig

    for bad in (48, 52, 54):
        with pytest.raises(ValueError, match="multiple of 4 from 56"):
            InferenceConfig(tiling="original", patch=bad)
    padded = (130, 130, 130)
    covered = np.zeros(padded, bool)
    for tile in original_tiles(padded, 56):
        covered[tile.target] = True
    assert covered[25:-25, 25:-25, 25:-25].all()
