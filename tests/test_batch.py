"""``exodf detect --batch``: a corrupt movie is reported and the others are finished."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from exodf.events import read_events

pytestmark = pytest.mark.weights


def test_batch_with_one_corrupt_movie(tmp_path: Path, weights_path: Path) -> None:
    rng = np.random.default_rng(0)
    movies = tmp_path / "movies"
    movies.mkdir()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(movies / name, rng.poisson(300, (20, 32, 32)).astype(np.uint16))
    (movies / "c_corrupt.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "exodf", "detect", "--batch", str(movies), "-o", str(out),
                        "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "3 movies: 2 done, 1 failed" in r.stdout
    assert "c_corrupt.tif: FAILED:" in r.stderr and "re-save it" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a_events.csv", "b_events.csv"]
    for name in ("a_events.csv", "b_events.csv"):
        read_events(out / name)  # complete, readable tables


def test_batch_library_results_in_input_order(tmp_path: Path, weights_path: Path) -> None:
    from exodf.batch import detect_batch
    from exodf.jobs import DetectRequest

    rng = np.random.default_rng(1)
    paths = []
    for name in ("x.tif", "missing.tif", "y.tif"):
        p = tmp_path / name
        if name != "missing.tif":
            tifffile.imwrite(p, rng.poisson(200, (12, 16, 16)).astype(np.uint16))
        paths.append(p)
    seen: list[int] = []
    res = detect_batch(paths, [tmp_path / f"{p.stem}.csv" for p in paths], DetectRequest(), workers=1,
                       progress=lambda r, done, total: seen.append(done))
    assert [r.movie.name for r in res] == ["x.tif", "missing.tif", "y.tif"]
    assert [r.ok for r in res] == [True, False, True]
    assert "movie not found" in (res[1].error or "")
    assert seen == [1, 2, 3]
    assert res[0].n_frames == 12
