"""``exodf bench`` end to end on a small simulated movie: figures as JSON, the movie reused, clear errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from clirun import exodf_in_process

pytestmark = pytest.mark.weights


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``exodf bench --work tmp_path/work ARGS`` (in this process: bench times detect in a child of its own)."""
    return exodf_in_process("bench", "--work", tmp_path / "work", *args, cwd=tmp_path.parent)


def test_bench_json_figures_and_agreement(tmp_path: Path, weights_path: Path) -> None:
    res = _bench(tmp_path, "--frames", "40", "--size", "64", "--seed", "1", "--json")
    assert res.returncode == 0, res.stderr
    fig = json.loads(res.stdout.strip().splitlines()[-1])
    assert fig["frames"] == 40 and fig["size"] == 64 and fig["tiling"] == "context"
    assert fig["seconds"] > 0 and fig["frames_per_second"] == pytest.approx(40 / fig["seconds"], rel=0.01)
    assert 0.2 < fig["peak_rss_gb"] < 8  # the child's own peak: TensorFlow alone is a few hundred MB
    assert fig["events"] >= 2 and fig["events"] == fig["reference_events"]
    assert fig["agreement_f1"] == 1.0  # the streamed pass finds what the whole-volume reference finds
    assert fig["f1_vs_truth"] is not None and fig["f1_vs_truth"] >= 0.5
    assert fig["truth_exclude_edges"] == 0  # (40 frames: none left out; the printed line says which)
    movies = sorted((tmp_path / "work").glob("*.tif"))
    assert [m.name for m in movies] == ["control_40x64x64_seed1.tif"]
    again = _bench(tmp_path, "--frames", "40", "--size", "64", "--seed", "1", "--no-reference", "-q")
    assert again.returncode == 0, again.stderr
    assert "agreement        not computed" in again.stdout and "peak RSS" in again.stdout
    assert "start-up and network loading included" in again.stdout and ", all frames)" in again.stdout
    assert sorted((tmp_path / "work").glob("*.tif")) == movies  # the simulated movie is reused


@pytest.mark.parametrize("args, says", [(["--frames", "0"], "--frames must be >= 2 (a movie)"),
                                        (["--frames", "1"], "--frames must be >= 2 (a movie)"),
                                        (["--seed", "-1"], "Invalid value for '--seed'"),
                                        (["--weights", "nope.h5"], "nope.h5: weights file not found")])
def test_bench_refuses_bad_options_before_simulating(tmp_path: Path, args: list[str], says: str) -> None:
    res = _bench(tmp_path, *args, "--no-reference")
    assert res.returncode == (2 if says.startswith("Invalid value") else 1), res.stderr  # typer's usage errors: 2
    assert says in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not list((tmp_path / "work").glob("*.tif"))  # nothing simulated


def test_a_damaged_cached_movie_is_simulated_again(tmp_path: Path) -> None:
    from exodf.bench import _simulated_movie
    from exodf.io import read_movie

    work = tmp_path / "work"
    work.mkdir()
    movie, truth = _simulated_movie(work, 20, 32, 0)
    whole = movie.read_bytes()
    movie.write_bytes(whole[: len(whole) // 2])  # an interrupted earlier run
    again, _ = _simulated_movie(work, 20, 32, 0)
    assert again == movie and movie.read_bytes() == whole and read_movie(movie).shape == (20, 32, 32)


def test_bench_times_a_dtype(tmp_path: Path, weights_path: Path) -> None:
    # float16: emulated where the CPU lacks it, as bfloat16 is, but 3x cheaper on an AVX2-only EPYC
    res = _bench(tmp_path, "--frames", "30", "--size", "48", "--dtype", "float16", "--json")
    assert res.returncode == 0, res.stderr
    fig = json.loads(res.stdout.strip().splitlines()[-1])
    assert fig["dtype"] == "float16" and fig["tiling"] == "context"
    assert fig["agreement_f1"] is not None and fig["agreement_f1"] >= 0.99  # against the float32 reference
    assert (tmp_path / "work" / "control_30x48x48_seed0_events_context_float16.csv").is_file()
    bad = _bench(tmp_path / "b", "--dtype", "int8", "--no-reference")
    assert bad.returncode != 0 and "--dtype 'int8'" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "b").exists()


def test_bench_candidates_tiling(tmp_path: Path, weights_path: Path) -> None:
    from exodf.candidates import FALLBACK, candidate_boxes, work_fraction
    from exodf.io import read_movie
    from exodf.model import load_network

    res = _bench(tmp_path, "--frames", "100", "--size", "128", "--seed", "1", "--tiling", "candidates", "--json")
    assert res.returncode == 0, res.stderr
    fig = json.loads(res.stdout.strip().splitlines()[-1])
    assert fig["tiling"] == "candidates" and fig["events"] >= 10
    assert fig["agreement_f1"] >= 0.95  # an approximation of the whole-volume pass, measured here
    # this movie runs the boxes, not the whole-volume fallback
    movie = read_movie(tmp_path / "work" / "control_100x128x128_seed1.tif")
    boxes, _, _ = candidate_boxes(movie)
    assert work_fraction(boxes, movie.shape, load_network(weights_path)) < FALLBACK
