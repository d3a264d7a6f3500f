"""The ATLAS-like bright-spot detector: recall and precision on spots added to simulated TIRF movies."""

from __future__ import annotations

import numpy as np
import pytest

from exodf.evaluate import match_events
from exodf.events import EventTable
from exodf.simulate import _camera, _gauss_patch, preset, simulate
from exodf.spots import SpotConfig, spot_labels, spot_response, spot_table


def _movie_with_spots(seed: int) -> tuple[np.ndarray, EventTable]:
    """A simulated cell (texture, bleaching, EMCCD noise; no events or vesicles of its own) with isolated
    Gaussian spots (σ 1–1.6 px, 1–2× the membrane level) 10 px apart, jittered in every frame."""
    p = preset("control", n_frames=16, height=64, width=64, events_per_frame=0.0, docked_density=0.0)
    sim = simulate(p, seed=seed, keep_clean=True)
    assert sim.clean is not None
    scene = sim.clean.copy()
    rng = np.random.default_rng(seed)
    grid = np.array([(y, x) for y in range(12, 56, 10) for x in range(12, 56, 10)], dtype=float)
    grid = grid[sim.mask[grid[:, 0].astype(int), grid[:, 1].astype(int)]]
    xs, ys, fs = [], [], []
    for t in range(p.n_frames):
        for y, x in grid + rng.uniform(-1.5, 1.5, grid.shape):
            _gauss_patch(64, 64, y, x, rng.uniform(1.0, 1.6), rng.uniform(1.0, 2.0) * p.cell_level, scene[t])
            xs.append(x), ys.append(y), fs.append(t)
    return _camera(np.random.default_rng(seed + 100), p, scene), EventTable(xs, ys, fs)


@pytest.mark.parametrize("seed", [0, 1])
def test_spot_recall_precision_on_simulated_spots(seed: int) -> None:
    movie, truth = _movie_with_spots(seed)
    labels = spot_labels(movie)
    assert labels.shape == movie.shape and labels.dtype == np.int32
    found = spot_table(labels)
    assert found.units == {"area": "px"}
    m = match_events(found, truth, max_distance=2.0, dt_min=0, dt_max=0, one_to_one=True)
    # measured: precision 1.000 / 1.000, recall 0.957 / 0.929 (seeds 0 / 1)
    assert m.precision is not None and m.precision >= 0.97
    assert m.recall is not None and m.recall >= 0.88
    assert found.columns["area"].min() >= 3


def test_no_spots_in_pure_noise_beyond_pfa() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(100, 10, (8, 64, 64)).astype(np.float32)
    # one scale: the per-pixel test passes the fraction pfa of pure-noise pixels (measured 0.00104)
    one = spot_response(noise, SpotConfig(scales=(1.5,), robust_passes=0))
    assert 0.0005 < float((one > SpotConfig().threshold).mean()) < 0.002
    # the maximum over three scales passes more (measured 0.0062), but the 3-px area filter removes them all
    z = spot_response(noise)
    assert float((z > SpotConfig().threshold).mean()) < 0.01
    assert len(spot_table(spot_labels(noise))) == 0
    assert spot_table(spot_labels(noise)).units == {"area": "px"}  # (the unit even when empty)


def test_labels_unique_over_movie_and_min_area() -> None:
    movie = np.full((3, 32, 32), 100.0, dtype=np.float32)
    movie[0, 10, 10] += 400  # one bright pixel in frame 0
    yy, xx = np.mgrid[0:32, 0:32]
    movie[1] += 300 * np.exp(-((yy - 20) ** 2 + (xx - 8) ** 2) / (2 * 1.5 ** 2))
    movie[2] += 300 * np.exp(-((yy - 20) ** 2 + (xx - 8) ** 2) / (2 * 1.5 ** 2))
    movie += np.random.default_rng(1).normal(0, 2, movie.shape)
    labels = spot_labels(movie, SpotConfig(min_area=3))
    table = spot_table(labels)
    assert sorted(np.unique(labels[labels > 0]).tolist()) == list(range(1, len(table) + 1))
    # the Gaussian spot is found in frames 1 and 2 at (8, 20)
    near = (np.abs(table.x - 8) < 1) & (np.abs(table.y - 20) < 1)
    assert sorted(table.frame[near].tolist()) == [1.0, 2.0]


def test_config_checked() -> None:
    with pytest.raises(ValueError, match="SpotConfig.pfa"):
        SpotConfig(pfa=0.0)
    with pytest.raises(ValueError, match="SpotConfig.scales"):
        SpotConfig(scales=())
    assert abs(SpotConfig().threshold - 3.0902) < 1e-3


def test_spots_file_refuses_an_unknown_output_before_reading_the_movie(tmp_path) -> None:
    from exodf.errors import ExodfError
    from exodf.training_files import spots_file

    with pytest.raises(ExodfError, match="spots.png: write the spots as a label map"):
        spots_file(tmp_path / "never-read.tif", tmp_path / "spots.png")
