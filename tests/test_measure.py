"""F/F0 and decay as the paper defines them, checked against the simulator's drawn values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exodf.events import EventTable
from exodf.measure import MeasureConfig, fit_decay, measure_events, summarize_cell, window_trace
from exodf.simulate import preset, simulate


def test_window_trace_and_fold_on_a_hand_made_movie() -> None:
    movie = np.full((20, 30, 30), 100.0)
    movie[10, 12:19, 12:19] = 250.0  # 7x7 box around (15, 15) at frame 10
    ev = EventTable([15.2], [14.8], [10.0])
    m = measure_events(movie, ev)
    assert m.columns["f0"][0] == 100.0 and m.columns["f"][0] == 250.0
    assert m.columns["fold"][0] == pytest.approx(2.5)
    assert window_trace(movie, 0, 0, np.array([0, -1, 25])).tolist()[1:] == [None] * 2 or \
        np.isnan(window_trace(movie, 0, 0, np.array([0, -1, 25]))[1:]).all()
    early = measure_events(movie, EventTable([15], [15], [3]))
    assert math.isnan(early.columns["fold"][0])  # 5 frames before is outside the movie


def test_fit_decay_recovers_tau() -> None:
    t = np.arange(16)
    a, tau, b = fit_decay(80 * np.exp(-t / 3.0) + 200)
    assert (a, tau, b) == (pytest.approx(80), pytest.approx(3.0), pytest.approx(200))
    assert fit_decay(np.full(16, 5.0)) is None
    assert fit_decay(np.array([1.0, np.nan, 2.0])) is None


def test_half_life_in_seconds_and_cell_summary() -> None:
    movie = np.full((40, 20, 20), 100.0)
    t = np.arange(40) - 10.0
    movie[10:, 7:14, 7:14] += (60 * np.exp(-t[10:] / 4.0))[:, None, None]
    m = measure_events(movie, EventTable([10], [10], [10]), MeasureConfig(frame_interval_s=0.5))
    assert m.columns["decay_tau"][0] == pytest.approx(2.0, rel=1e-3)
    assert m.columns["half_life"][0] == pytest.approx(2.0 * math.log(2), rel=1e-3)
    s = summarize_cell(m)
    assert s.n_events == 1 and s.n_fitted == 1 and s.n_fold == 1 and s.fold_mean == pytest.approx(1.6)


def test_no_decay_fit_on_the_last_frames_and_the_summary_counts_what_it_averages() -> None:
    """An event 2 frames before the movie's end got a τ fitted to 3-4 frames, and the summary said '9 events:
    F/F0 mean ...' over the 7 with an F0."""
    movie = np.full((40, 40, 40), 100.0)
    t = np.arange(40, dtype=float)
    for x, start in ((10, 10), (30, 33), (20, 2)):  # a full decay, one cut by the movie's end, one too early
        movie[start:, x - 3:x + 4, 17:24] += (60 * np.exp(-(t[start:] - start) / 2.0))[:, None, None]
    m = measure_events(movie, EventTable([20, 20, 20], [10, 30, 20], [10, 33, 2]))
    tau = m.columns["decay_tau"]
    assert tau[0] == pytest.approx(2.0, rel=1e-3) and np.isnan(tau[1])  # 7 frames left < 16 // 2
    assert np.isnan(m.columns["fold"][2])  # F0 would be 5 frames before the movie's start
    s = summarize_cell(m)
    assert (s.n_events, s.n_fold, s.n_fitted) == (3, 2, 2)
    assert not np.isnan(measure_events(movie, EventTable([20], [30], [33]), MeasureConfig(n_fit=12))
                        .columns["decay_tau"][0])  # 7 frames are enough for a 12-frame fit


def test_measure_recovers_simulated_fold_within_10_percent() -> None:
    s = simulate(preset("control"), seed=1)
    ok = s.truth.frame >= 5
    m = measure_events(s.movie, s.truth.select(ok))
    ratio = m.columns["fold"] / s.truth.select(ok).columns["fold"]
    assert len(ratio) >= 20
    assert np.all(np.abs(ratio - 1) <= 0.10)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)


def test_measure_recovers_simulated_tau() -> None:
    # with negligible diffusion the 7x7 window holds the whole spot, so its decay is the drawn τ
    p = preset("control", diffusion=(0.001, 0.001), tau_s=(0.8, 3.0), n_frames=150)
    s = simulate(p, seed=3)
    t = s.truth.select(s.truth.frame < 150 - 16)
    m = measure_events(s.movie, t, MeasureConfig(frame_interval_s=p.frame_interval_s))
    ratio = m.columns["decay_tau"] / t.columns["tau"]
    assert np.nanmedian(ratio) == pytest.approx(1.0, abs=0.1)
    assert np.mean(np.abs(ratio - 1) < 0.2) >= 0.8


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="MeasureConfig.window"):
        MeasureConfig(window=6)
    with pytest.raises(ValueError, match="MeasureConfig.frame_interval_s"):
        MeasureConfig(frame_interval_s=0)


def test_peak_search_finds_the_peak_of_a_late_detection() -> None:
    movie = np.full((30, 20, 20), 100.0)
    movie[12, 7:14, 7:14] = 300.0
    movie[13, 7:14, 7:14] = 200.0
    late = EventTable([10], [10], [14])
    assert measure_events(movie, late, MeasureConfig(peak_search=0)).columns["fold"][0] == pytest.approx(1.0)
    m = measure_events(movie, late)  # by default, the peak within 2 frames
    assert m.columns["peak_frame"][0] == 12 and m.columns["fold"][0] == pytest.approx(3.0)
    kept = measure_events(movie, EventTable([10], [10], [12], {"fold": [2.5]}))
    assert kept.columns["fold_given"][0] == 2.5 and kept.columns["fold"][0] == pytest.approx(3.0)


def test_a_given_peak_frame_is_kept_1_based_in_imagej_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An ExoJ list's Peak Frame (1-based 14 = frame 13) stays 14 when exodf measure writes it beside its own."""
    from exodf.events import read_events, write_events

    movie = np.full((30, 20, 20), 100.0)
    movie[12, 7:14, 7:14] = 300.0
    m = measure_events(movie, EventTable([10], [10], [13], {"peak_frame": [13.0]}))
    assert m.columns["peak_frame_given"][0] == 13 and m.columns["peak_frame"][0] == 12
    out = write_events(m, tmp_path / "measured.csv")
    header, row = out.read_text().splitlines()[:2]
    cells = dict(zip(header.split(","), row.split(",")))
    assert cells["Peak_slice_given"] == "14" and cells["Peak_slice"] == "13" and cells["Slice"] == "14"
    back = read_events(out)
    assert back.columns["peak_frame_given"][0] == 13 and back.columns["peak_frame"][0] == 12


def test_events_outside_the_movie_measure_nothing() -> None:
    movie = np.full((20, 16, 16), 100.0)
    m = measure_events(movie, EventTable([8.0, 8.0], [8.0, 8.0], [-1.0, 25.0]))
    for name in ("f0", "f", "fold", "decay_tau", "half_life"):
        assert np.isnan(m.columns[name]).all(), name


def test_noise_has_no_decay_but_noisy_events_do() -> None:
    """Flat noisy traces used to give a τ at a bound (0.05 or 1000 frames) every time, which then dominated a
    cell's mean half-life; an event of modest amplitude in the same noise is still fitted."""
    rng = np.random.default_rng(0)
    t = np.arange(16)
    flat = [fit_decay(200 + rng.normal(0, 3, 16)) for _ in range(200)]
    assert sum(f is not None for f in flat) <= 10
    events = [fit_decay(200 + 30 * np.exp(-t / 2.5) + rng.normal(0, 3, 16)) for _ in range(100)]
    fitted = [f[1] for f in events if f is not None]
    assert len(fitted) >= 90 and abs(np.median(fitted) - 2.5) < 0.3
    assert fit_decay(200 + 400 * (t == 0)) is None  # a one-frame spike has no τ
    assert fit_decay(200 + 30 * np.exp(-t / 80.0)) is None  # no decay within the 16 frames
