from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exodf.normalize import normalize_frame, normalize_frames


def test_per_frame_percentiles_without_clipping() -> None:
    f = np.arange(101, dtype=np.uint16).reshape(1, 101)  # p1 = 1, p99 = 99
    out = normalize_frame(f)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, [0, 1, 50, 99, 100]], [-1 / 98, 0, 49 / 98, 1, 99 / 98], rtol=1e-6)


def test_flat_frame_becomes_zero_and_frames_are_independent() -> None:
    m = np.stack([np.full((5, 5), 7, np.uint16), np.arange(25, dtype=np.uint16).reshape(5, 5) * 10])
    out = normalize_frames(m)
    assert (out[0] == 0).all()
    np.testing.assert_array_equal(out[1], normalize_frame(m[1]))
    assert np.isclose(np.percentile(out[1], 1), 0, atol=1e-6) and np.isclose(np.percentile(out[1], 99), 1)


def test_a_frame_with_nan_is_refused_not_zeroed() -> None:
    """One NaN pixel made the frame's percentiles NaN, so the whole frame became 0 and its events were lost."""
    m = np.random.default_rng(0).normal(100, 5, (4, 8, 8)).astype(np.float32)
    m[2, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"frame 2 \(Slice 3\): the frame holds NaN or infinite pixels"):
        normalize_frames(m)
    m[2, 3, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        normalize_frame(m[2])
    from exodf.errors import ExodfError
    from exodf.predict import predict_probabilities

    with pytest.raises(ExodfError, match=r"predict_probabilities: the movie: Slice 3 \(frame 2"):
        predict_probabilities(m, None)  # checked before the network is used
    with pytest.raises(ExodfError, match="expected a \\(T, Y, X\\) numpy array, got list"):
        predict_probabilities(m.tolist(), None)


def _resident_kb(path: str) -> int:
    """Resident kB of this process's mappings of ``path`` (Linux /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping's header line
                inside = line.rstrip().endswith(path)
            elif inside and first == "Rss:":
                total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_memory_mapped_movie_does_not_stay_resident(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames read forward are released: a long movie is never resident as a whole (issue: RSS ≤ 2 GB)."""
    from exodf.io import read_movie, write_tiff
    from exodf.predict import NormalizedFrames

    rng = np.random.default_rng(0)
    movie = rng.integers(0, 4000, (128, 256, 512), dtype=np.uint16)  # 32 MiB
    path = tmp_path / "movie.tif"
    write_tiff(path, movie)
    mapped = read_movie(path)
    assert isinstance(mapped, np.memmap)
    frames = NormalizedFrames(mapped)
    peak = 0
    for t0 in range(0, 128, 2):
        np.testing.assert_array_equal(frames[t0:t0 + 2], normalize_frames(movie[t0:t0 + 2]))
        peak = max(peak, _resident_kb(str(path)))
    # the frames being read, plus the kernel's read-around, never the movie
    assert peak < 8 * 1024, f"{peak} kB of the 32 MiB movie resident at once"
    assert not mapped.flags.writeable  # mapped read-only: exodf never writes into a movie
    # a second pass (the next y/x tile) reads the same values again, each frame's range computed once
    import exodf.predict

    calls = []
    real = exodf.predict.frame_range
    monkeypatch.setattr(exodf.predict, "frame_range", lambda f, **k: calls.append(1) or real(f, **k))
    np.testing.assert_array_equal(frames[10:12, 4:8, 4:8], normalize_frames(movie[10:12])[:, 4:8, 4:8])
    tiles = NormalizedFrames(mapped)
    for t0 in range(0, 128, 2):  # two y/x tiles, one after the other
        np.testing.assert_array_equal(tiles[t0:t0 + 2, 0:128], normalize_frames(movie[t0:t0 + 2])[:, 0:128])
    for t0 in range(0, 128, 2):
        np.testing.assert_array_equal(tiles[t0:t0 + 2, 128:256], normalize_frames(movie[t0:t0 + 2])[:, 128:])
    assert len(calls) == 128


def test_a_movie_scaled_below_1_is_not_taken_as_flat() -> None:
    rng = np.random.default_rng(0)
    movie = rng.poisson(300, (3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(normalize_frames(movie * 1e-7), normalize_frames(movie), atol=1e-5)
    assert not normalize_frames(np.zeros((2, 8, 8), np.float32)).any()  # a flat frame stays 0


def test_dark_frames_found_but_not_photobleaching() -> None:
    from exodf.normalize import dark_frames
    from exodf.simulate import preset, simulate

    movie = simulate(preset("control", n_frames=60, height=48, width=48, bleach=(0.5, 0.6)), seed=1).movie
    assert dark_frames(movie).size == 0  # the cell dims by half over the movie: not dark
    dark = movie.astype(np.float32)
    dark[:4] = 100 + np.random.default_rng(0).normal(0, 6, dark[:4].shape)  # a closed shutter: offset + noise
    assert dark_frames(dark).tolist() == [0, 1, 2, 3]


def test_normalized_movie_reads_as_normalize_frames_bit_for_bit() -> None:
    """Training reads patches through NormalizedMovie (no float32 copy of the movie): the same numbers."""
    from exodf.normalize import NormalizedMovie

    rng = np.random.default_rng(0)
    for movie in (rng.integers(0, 4000, (20, 33, 17)).astype(np.uint16),
                  rng.normal(0, 1e-3, (20, 33, 17)).astype(np.float32)):
        movie[3] = 7  # flat frames become 0
        movie[5] = 0
        lazy, full = NormalizedMovie(movie), normalize_frames(movie)
        assert lazy.shape == full.shape and lazy.ndim == 3
        for key in ((slice(None),), (slice(2, 9), slice(3, 20), slice(0, 17)), (4,), (3,),
                    (slice(0, 20, 3), slice(None), slice(1, 5))):
            a, b = lazy[key], full[key]
            assert a.dtype == np.float32 and a.shape == b.shape
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))  # (signed zeros too)
        np.testing.assert_array_equal(np.asarray(lazy), full)


def test_uniform_frames_are_found() -> None:
    from exodf.normalize import uniform_frames

    movie = np.random.default_rng(0).normal(100, 5, (6, 16, 16)).astype(np.float32)
    movie[2] = 4095.0  # saturated
    movie[4] = 0.0
    assert uniform_frames(movie).tolist() == [2, 4]
    sparse = np.zeros((4, 64, 64), np.uint16)  # a few bright pixels on zeros: flat in a 1-in-16 sample only
    sparse[:, 1:7, 1:7] = 500
    sparse[:, 33:39, 41:47] = 300
    sparse[1] = 700
    assert uniform_frames(sparse).tolist() == [1]


def test_static_outliers_are_hot_or_saturated_pixels_only() -> None:
    """Pixels far brighter than the cell in every frame (hot, saturated, debris); not the cell's spots and
    puffs, not a saturated flash, not a bright half of the frame."""
    from exodf.normalize import static_outliers
    from exodf.simulate import preset, simulate

    movie = simulate(preset("control", n_frames=40, height=64, width=64), seed=0).movie
    assert static_outliers(movie) is None
    debris = movie.copy()
    debris[:, 40:46, 10:15] = 6000  # 30 px of debris, not saturated
    o = static_outliers(debris)
    assert o is not None and o.sum() == 30
    hot = movie.copy()
    hot[:, 5, 7] = 3000  # an sCMOS hot pixel (10x the background)
    hot[:, 40, 20] = 65535
    o = static_outliers(hot)
    assert o is not None and sorted(zip(*np.nonzero(o))) == [(5, 7), (40, 20)]
    sat = movie.copy()
    sat[:, 10:24, 30:44] = 65535  # 4.8 % of the frame: the frame's p99 lies inside it
    o = static_outliers(sat)
    assert o is not None and o.sum() == 196 and o[10:24, 30:44].all()
    flash = movie.copy()
    flash[20:23, 28:33, 28:33] = 65535  # saturated for 3 frames: an event, not an outlier
    assert static_outliers(flash) is None
    large = movie.copy()
    large[:, :20, :20] = 65535  # 10 % of the frame: no camera defect; fed as it is
    assert static_outliers(large) is None


def test_a_small_cell_in_a_large_frame_and_bright_clusters_are_no_outliers() -> None:
    """A cell filling under 1 % of the frame lies far above the frame's p99 (the background's): never
    clipped (it erased the small cell), nor its vesicles; hot pixels and a bead beside them are. In a cell,
    clusters a few times its brightness or larger than a bead are kept; far brighter small ones are
    clipped, as they would blind the network around them."""
    from exodf.normalize import static_outliers

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:512, :512]
    movie = 100 + 5 * rng.standard_normal((16, 512, 512))
    cell = (yy - 256) ** 2 + (xx - 256) ** 2 < 25 ** 2  # 0.75 % of the frame
    movie[:, cell] += 300
    for y, x in ((250, 250), (262, 258)):  # docked vesicles, far above the background's range
        movie[:, y - 1: y + 2, x - 1: x + 2] += 400
    assert static_outliers(movie.astype(np.uint16)) is None
    movie[:, 40, 60] = 3000  # a hot pixel
    movie[:, 400:403, 100:103] += 2000  # a bead on the background
    o = static_outliers(movie.astype(np.uint16))
    assert o is not None and sorted(zip(*np.nonzero(o))) == [(40, 60)] + [(y, x) for y in range(400, 403)
                                                                          for x in range(100, 103)]
    big = 100 + 5 * rng.standard_normal((16, 256, 256))
    big[:, :, :100] += 300  # a cell over 40 % of the frame, with three 7 x 7 clusters 2.5x as bright
    for y, x in ((50, 30), (120, 60), (200, 80)):
        big[:, y: y + 7, x: x + 7] += 600
    big[:, 150:164, 20:34] += 3000  # a large bright region (14 x 14 px): part of the cell, not a bead
    assert static_outliers(big.astype(np.uint16)) is None
    big[:, 50: 57, 30: 37] += 3000  # a cluster 9x as bright as the cell: as a hot spot, clipped
    o = static_outliers(big.astype(np.uint16))
    assert o is not None and o.sum() == 49 and o[50:57, 30:37].all()


def test_outliers_are_left_out_of_the_range_and_clipped() -> None:
    from exodf.normalize import NormalizedMovie, static_outliers

    rng = np.random.default_rng(1)
    movie = rng.poisson(200, (6, 40, 48)).astype(np.uint16)
    movie[:, 3, 4] = 60000
    movie[:, 30:33, 10:13] = 65535
    o = static_outliers(movie)
    assert o is not None and o.sum() == 10
    got = normalize_frames(movie, outliers=o)
    for t in range(6):
        lo, hi = np.percentile(movie[t][~o].astype(np.float32), [1, 99])
        want = (np.where(o, np.minimum(movie[t], hi), movie[t]).astype(np.float32) - lo) / (hi - lo)
        np.testing.assert_allclose(got[t], want, rtol=1e-6, atol=1e-6)
    assert got[:, o].max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(normalize_frames(movie, outliers=None), normalize_frames(movie))  # as before
    lazy = NormalizedMovie(movie, outliers=o)  # training reads patches so: the same numbers
    for key in ((slice(None),), (slice(1, 4), slice(2, 35), slice(5, 20)), (2,)):
        np.testing.assert_array_equal(lazy[key], got[key])


def test_with_a_cell_mask_a_brighter_neighbour_is_clipped() -> None:
    from exodf.normalize import bright_outside, clipped_pixels

    rng = np.random.default_rng(4)
    movie = rng.poisson(200, (10, 40, 60)).astype(np.float64)
    mask = np.zeros((40, 60), bool)
    mask[:, :30] = True  # the cell: the left half
    assert bright_outside(movie.astype(np.uint16), mask) is None  # the outside is no brighter: as before
    assert clipped_pixels(movie.astype(np.uint16), mask) is None
    movie[:, :, 40:] *= 5  # a neighbouring cell five times brighter
    movie[:, 5, 10] = 60000  # and a hot pixel in the cell
    movie = movie.astype(np.uint16)
    out = bright_outside(movie, mask)
    assert out is not None and out[:, 40:].all() and not out[:, :30].any()
    both = clipped_pixels(movie, mask)
    assert both is not None and both[5, 10] and both[:, 40:].all() and both.sum() == out.sum() + 1
    assert clipped_pixels(movie) is not None and clipped_pixels(movie).sum() == 1  # without the mask: the hot pixel
    with pytest.raises(ValueError, match="mask shape"):
        bright_outside(movie, mask[:, :20])
