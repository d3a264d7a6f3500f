"""The simulator's statistics: sizes, event counts, drawn parameters, noise model, determinism."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from exodf.measure import MeasureConfig, measure_events
from exodf.errors import ExodfError
from exodf.simulate import PRESETS, SimParams, check_memory, memory_needed, preset, simulate, window_mean

SMALL = dict(n_frames=60, height=96, width=96)


@pytest.fixture(scope="module")
def default_sim():
    return simulate(seed=1, keep_clean=True)


def test_default_movie_shape_levels_and_truth(default_sim) -> None:
    s = default_sim
    assert s.movie.shape == (200, 200, 200) and s.movie.dtype == np.uint16
    assert s.mask.shape == (200, 200) and 0.35 < s.mask.mean() < 0.75
    # membrane ~ offset + 120 ADU, glass ~ offset + 13 ADU (the reference movie's levels)
    inside = float(np.median(s.movie[0][s.mask]))
    outside = float(np.median(s.movie[0][~s.mask]))
    assert 180 < inside < 260 and 105 < outside < 125
    t = s.truth
    assert set(t.columns) == {"fold", "tau", "sigma", "diffusion", "onset", "amplitude", "inside"}
    assert t.units == {"tau": "s", "sigma": "px", "diffusion": "um^2/s"}
    assert np.all(np.diff(t.frame) >= 0)
    assert np.all((t.columns["fold"] >= 1.2) & (t.columns["fold"] <= 2.2))
    assert np.all((t.columns["tau"] >= 0.4) & (t.columns["tau"] <= 2.0))
    assert np.all((t.columns["sigma"] >= 1.0) & (t.columns["sigma"] <= 1.5))
    assert np.all((t.columns["diffusion"] >= 0.05) & (t.columns["diffusion"] <= 0.5))
    # the peak frame is the onset frame or the next one (exposure-integrated sub-frame onset)
    lag = t.frame - np.floor(t.columns["onset"])
    assert np.all((lag >= 0) & (lag <= 1))
    assert t.columns["inside"].mean() > 0.85
    assert 0.1 <= s.bleach <= 0.3


def test_bleaching_matches_the_drawn_fraction(default_sim) -> None:
    s = default_sim
    bg = s.clean[:, s.mask]
    lost = 1 - float(np.median(bg[-1])) / float(np.median(bg[0]))
    assert lost == pytest.approx(s.bleach, abs=0.03)


def test_event_count_follows_the_rate() -> None:
    rate = 0.2
    counts = [len(simulate(SimParams(events_per_frame=rate, **SMALL), seed=k).truth) for k in range(8)]
    expected = rate * SMALL["n_frames"]  # Poisson mean 12 per movie
    assert np.mean(counts) == pytest.approx(expected, rel=0.25)
    assert len(simulate(preset("histamine", **SMALL), seed=0).truth) > len(simulate(
        preset("bafilomycin", **SMALL), seed=0).truth)


def test_fold_on_the_noise_free_movie_is_exact(default_sim) -> None:
    s = default_sim
    t = s.truth
    for i in range(len(t)):
        k = int(t.frame[i])
        if k < 5:
            continue
        f = window_mean(s.clean[k], t.x[i], t.y[i]) + s.params.offset
        f0 = window_mean(s.clean[k - 5], t.x[i], t.y[i]) + s.params.offset
        # later events may overlap an earlier one's window by chance: allow 3 %
        assert f / f0 == pytest.approx(t.columns["fold"][i], rel=0.03)


def test_emccd_noise_variance(default_sim) -> None:
    s = default_sim
    p = s.params
    # temporal variance of a pixel = read noise² + 2·gain·signal (excess noise factor √2)
    diff = np.diff(s.movie[50:90].astype(np.float64), axis=0)
    clean = s.clean[50:90].mean(axis=0)
    for lo, hi in ((8, 18), (60, 120), (150, 300)):
        sel = (clean >= lo) & (clean < hi)
        assert sel.sum() > 200
        var = float(diff[:, sel].var()) / 2
        expected = p.read_noise ** 2 + 2 * p.em_gain * float(clean[sel].mean())
        assert var == pytest.approx(expected, rel=0.15), (lo, hi)


def test_determinism_by_seed() -> None:
    p = SimParams(**SMALL)
    a, b, c = simulate(p, seed=7), simulate(p, seed=7), simulate(p, seed=8)
    assert np.array_equal(a.movie, b.movie) and a.truth == b.truth and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.movie, c.movie)


def test_presets_and_overrides() -> None:
    assert set(PRESETS) >= {"control", "control-low", "control-high", "hela", "cd63", "bafilomycin",
                            "histamine"}
    p = preset("cd63", n_frames=10)
    assert p.fold == (2.0, 4.0) and p.n_frames == 10
    for name in PRESETS:
        s = simulate(preset(name, n_frames=12, height=48, width=48), seed=0)
        assert s.movie.shape == (12, 48, 48)
    # each preset simulates what it says: its F/F0 range in the truth and in the movie's pixels, its rate
    sims = {name: simulate(preset(name, n_frames=120, height=64, width=64), seed=0) for name in PRESETS}
    measured = {}
    for name, s in sims.items():
        lo, hi = s.params.fold
        assert (lo <= s.truth.columns["fold"]).all() and (s.truth.columns["fold"] <= hi).all(), name
        measured[name] = np.nanmedian(measure_events(s.movie, s.truth, MeasureConfig(peak_search=0)).columns["fold"])
    assert measured["control-low"] < measured["control"] < measured["control-high"] < measured["cd63"], measured
    assert abs(measured["control-low"] - 1.3) < 0.15 and abs(measured["control-high"] - 2.4) < 0.3, measured
    assert len(sims["histamine"].truth) > 1.5 * len(sims["control"].truth)
    assert sims["cd63"].truth.columns["tau"].max() <= 0.9 < sims["control"].truth.columns["tau"].max()
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nope")
    with pytest.raises(ValueError, match="unknown simulator parameter"):
        preset("control", fol=(1, 2))
    with pytest.raises(ValueError, match="SimParams.fold"):
        SimParams(fold=(0.5, 2.0))
    with pytest.raises(ValueError, match="SimParams.n_frames"):
        SimParams(n_frames=0)
    with pytest.raises(ValueError, match="SimParams.bleach"):
        SimParams(bleach=(0.1, 1.2))


def test_bafilomycin_has_many_more_bright_foci() -> None:
    def foci(name: str) -> int:
        s = simulate(preset(name, events_per_frame=0.0, **SMALL), seed=3, keep_clean=True)
        from scipy import ndimage as ndi

        n = 0
        for frame in s.clean[10::10]:  # foci visible in single frames (bafilomycin's come and go)
            resid = frame - ndi.median_filter(frame, 15)
            n += int(((resid == ndi.maximum_filter(resid, 5)) & (resid > 0.4 * s.params.cell_level)).sum())
        return n

    assert foci("bafilomycin") > 2 * foci("control")


def test_an_event_begun_before_the_movie_draws_nothing_at_its_end() -> None:
    """Onsets are drawn from [-1, T-1): frame -1 of such an event wrapped round to the movie's last frame."""
    from exodf.simulate import _render_event

    p = SimParams(n_frames=30, height=32, width=32)
    frames = _render_event(p, 10.0, 12.0, onset=-0.7, tau_f=2.0, sigma0=1.2, d_px2=0.05)
    assert frames and min(k for k, _, _ in frames) == 0 and max(k for k, _, _ in frames) < 20
    sim = simulate(SimParams(n_frames=30, height=64, width=64, events_per_frame=0.5), seed=0)
    assert (sim.truth.frame >= 0).all()  # the brightest frame drawn is in the movie


@pytest.mark.parametrize("override, says", [
    ({"events_per_frame": float("inf")}, "must be finite"), ({"fold": (1.0, float("nan"))}, "must be finite"),
    ({"docked_density": 1e12}, "docked_density must be <= 100"), ({"offset": 70000.0}, "16-bit range"),
    ({"n_frames": 1}, "n_frames must be >= 2"),
])
def test_parameters_that_cannot_make_a_movie_are_refused(override: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        SimParams(**override)


def test_memory_needed_bounds_what_the_simulator_holds() -> None:
    """The figure the memory check compares with what is available is at least the simulator's real peak."""
    import tracemalloc

    p = preset("control", n_frames=60, height=96, width=128)
    tracemalloc.start()
    try:
        simulate(p, 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0.8 * memory_needed(p) <= peak <= memory_needed(p), (peak, memory_needed(p))


def test_a_movie_larger_than_memory_is_refused_before_any_work(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`exodf simulate --size 50000` ended in a MemoryError traceback (or the system killing the program)."""
    from clirun import exodf_in_process

    r = exodf_in_process("simulate", tmp_path / "sim", "--size", "50000", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("exodf: error: simulating a 200x50000x50000 movie needs about 5 TB of memory")
    assert "--size" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "sim").exists()

    small = preset("control", n_frames=20, height=32, width=32)
    with pytest.raises(ExodfError, match=r"20x32x32 movie needs about 0\.305 MB .* has 0\.1 MB available"):
        check_memory(small, available=100_000)
    check_memory(small, available=memory_needed(small))
    monkeypatch.setattr(sys.modules["exodf.simulate"], "memory_available", lambda: 100_000)
    with pytest.raises(ExodfError, match="simulate fewer or smaller frames"):
        simulate(small)


def test_memory_available_respects_a_container_or_job_limit(tmp_path) -> None:
    """A container's or a cluster job's memory limit (cgroup) is below the machine's MemAvailable: the check
    must use it, or the system kills the simulation part-way."""
    from exodf.simulate import memory_available

    machine = memory_available(str(tmp_path / "none"))
    assert machine is not None and machine > 0
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "memory.max").write_text("1000000\n")
    (tmp_path / "v2" / "memory.current").write_text("400000\n")
    assert memory_available(str(tmp_path / "v2")) == 600_000
    (tmp_path / "v2" / "memory.max").write_text("max\n")
    assert abs(memory_available(str(tmp_path / "v2")) - machine) < 0.5 * machine  # no limit: the machine's
    (tmp_path / "v1" / "memory").mkdir(parents=True)
    (tmp_path / "v1" / "memory" / "memory.limit_in_bytes").write_text("2000000\n")
    (tmp_path / "v1" / "memory" / "memory.usage_in_bytes").write_text("500000\n")
    assert memory_available(str(tmp_path / "v1")) == 1_500_000

    small = preset("control", n_frames=20, height=32, width=32)
    check_memory(small, available=memory_needed(small))
    with pytest.raises(ExodfError, match="0.387 MB"):  # the noise-free movie kept too: 4 bytes per voxel more
        check_memory(small, available=memory_needed(small), keep_clean=True)


def test_a_cluster_jobs_own_cgroup_limit_is_found(tmp_path) -> None:
    """On a host, a job's limit sits on its own group (cgroup v2: /proc/self/cgroup says which) or above it."""
    from exodf.simulate import _cgroup_folders, memory_available

    me = tmp_path / "self"
    me.write_text("0::/system.slice/job_7/step_0\n")
    root = str(tmp_path / "cg")
    assert _cgroup_folders(root, str(me)) == [root, *(f"{root}/system.slice/job_7/step_0"[:i] for i in (
        len(f"{root}/system.slice/job_7/step_0"), len(f"{root}/system.slice/job_7"), len(f"{root}/system.slice")))]
    job = tmp_path / "cg" / "system.slice" / "job_7"
    job.mkdir(parents=True)
    (job / "memory.max").write_text("3000000\n")
    (job / "memory.current").write_text("1000000\n")
    assert memory_available(root, str(me)) == 2_000_000


@pytest.mark.parametrize("args, says", [
    (["--frames", "0"], "--frames must be >= 2 (a movie), got 0"),  # (said ">= 1", then 1 was refused)
    (["--frames", "1"], "--frames must be >= 2 (a movie), got 1"),
    (["--size", "0"], "--size must be >= 1, got 0"),
    (["--set", "fold=0.5,1"], "--set fold must be >= 1 (F/F0 of a brightening), got (0.5, 1.0)"),
])
def test_simulation_parameters_are_named_as_given(tmp_path, args: list[str], says: str) -> None:
    """The errors named the library's fields (SimParams.n_frames, SimParams.height), not the options."""
    from clirun import exodf_in_process

    r = exodf_in_process("simulate", tmp_path / "sim", *args, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr == f"exodf: error: invalid simulation parameters: {says}\n", r.stderr
    assert not (tmp_path / "sim").exists()
