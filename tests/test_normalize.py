from __future__ import annotations

import numpy as np

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
