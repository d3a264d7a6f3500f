"""File-level jobs and their commands: simulate, evaluate, rates, measure, report (network-free)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from exodf.cli import app
from exodf.evaluate import match_events
from exodf.events import EventTable, read_events, write_events
from exodf.io import read_mask, read_movie
from exodf.report import COLOURS, overlay_movie, report_figure, write_overlay, write_report

runner = CliRunner()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "cell1"
    res = runner.invoke(app, ["simulate", str(out), "--frames", "40", "--size", "64", "--seed", "5",
                              "--set", "events_per_frame=0.3", "--set", "fold=1.5,2.5"])
    assert res.exit_code == 0, res.output
    return out


def test_simulate_command_writes_movie_truth_mask(sim: Path) -> None:
    movie = read_movie(sim / "movie.tif")
    assert movie.shape == (40, 64, 64) and movie.dtype == np.uint16
    truth = read_events(sim / "ground_truth.csv")
    meta = json.loads((sim / "simulation.json").read_text())
    assert len(truth) == meta["n_events"] and meta["params"]["fold"] == [1.5, 2.5]
    assert np.all((truth.columns["fold"] >= 1.5) & (truth.columns["fold"] <= 2.5))
    assert read_mask(sim / "cell_mask.tif", (64, 64)).any()


def test_bad_override_is_one_clear_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["simulate", str(tmp_path / "x"), "--set", "folds=1,2"])
    assert res.exit_code != 0 and "known:" in str(res.exception)
    assert not (tmp_path / "x").exists()
    for args, msg in ((["--frames", "30", "--set", "n_frames=10"], "--set n_frames=10 and --frames 30 disagree"),
                      (["--size", "32", "--set", "width=24"], "--set width=24 and --size 32 disagree"),
                      (["--frame-interval", "0.2", "--set", "frame_interval_s=1"], "frame_interval_s=1.0 and")):
        res = runner.invoke(app, ["simulate", str(tmp_path / "x")] + args)
        assert res.exit_code != 0 and msg in str(res.exception), res.output
    assert not (tmp_path / "x").exists()


def test_simulated_movie_is_calibrated_in_space_and_time(sim: Path) -> None:
    import tifffile

    with tifffile.TiffFile(sim / "movie.tif") as tif:
        md = tif.imagej_metadata
        assert md is not None and md["finterval"] == 0.4 and md["unit"] == "um"  # Fiji: Image > Properties
        x_res = tif.pages[0].tags["XResolution"].value
        assert x_res[1] / x_res[0] == pytest.approx(0.16, rel=1e-6)


def test_evaluate_folders_paired_by_name_json(sim: Path, tmp_path: Path) -> None:
    truth = read_events(sim / "ground_truth.csv")
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    write_events(truth, gt_dir / "a_gt.csv")
    write_events(truth.select(np.arange(len(truth)) % 2 == 0), pred_dir / "a_events.csv")
    write_events(truth, gt_dir / "b_gt.csv")
    shifted = EventTable(truth.x + 10, truth.y, truth.frame)  # all misses
    write_events(shifted, pred_dir / "b_events.xml", fmt="xml")
    res = runner.invoke(app, ["evaluate", str(pred_dir), str(gt_dir), "--frames", "40", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    a, b = out["movies"]
    n = len(truth)
    assert (a["movie"], a["tp"], a["fp"], a["fn"]) == ("a", (n + 1) // 2, 0, n // 2)
    assert (b["tp"], b["fp"], b["fn"]) == (0, n, n)
    assert out["pooled"]["tp"] == (n + 1) // 2 and out["pooled"]["f1_sd"] > 0
    assert a["rate_gt"] == pytest.approx(n / 40)


def test_rates_command_paired_cohens_d(tmp_path: Path) -> None:
    for i, (nb, na) in enumerate([(2, 4), (3, 4), (5, 8)]):
        write_events(EventTable(np.arange(nb), np.zeros(nb), np.full(nb, 10.0)), tmp_path / "b" / f"c{i}.csv")
        write_events(EventTable(np.arange(na), np.zeros(na), np.full(na, 10.0)), tmp_path / "a" / f"c{i}.csv")
    res = runner.invoke(app, ["rates", str(tmp_path / "b"), str(tmp_path / "a"), "--frames", "100", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    # per-frame differences 0.02, 0.01, 0.03: mean 0.02, SD 0.01
    assert out["cohens_d"] == pytest.approx(2.0)
    res = runner.invoke(app, ["rates", str(tmp_path / "b"), str(tmp_path / "a"), "--frames", "100"])
    # n, four significant digits (3 decimals were one digit of a per-µm² rate), and which d
    assert "3 cells: before 0.03333 ± 0.01528, after 0.05333 ± 0.02309 events/frame (mean ± SD); Cohen's d_z " \
        "(paired: mean change / SD of the changes) 2.000" in res.output, res.output
    for args, says in ((["--frames", "10"], "c0.csv: 2 event(s) at or after Slice 11 (up to Slice 11), beyond "
                                             "--frames 10: give the movies' length"),
                       (["--frames", "100", "--frame-interval", "0.4"], "missing --area (or --mask), --pixel-size"),
                       (["--frames", "100", "--area", "300", "--pixel-size", "0.16"], "missing --frame-interval")):
        res = runner.invoke(app, ["rates", str(tmp_path / "b"), str(tmp_path / "a"), *args])
        assert res.exit_code == 1 and says in str(res.exception), res.output
    res = runner.invoke(app, ["rates", str(tmp_path / "b"), str(tmp_path / "a"), "--frames", "100", "--area", "300",
                              "--pixel-size", "0.16", "--frame-interval", "0.4", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["unit"] == "events/µm²/s"
    # each cell's own mask: its own area, events outside it left out (one --area for all cells before)
    from exodf.io import write_tiff

    for i, (h, w) in enumerate(((5, 8), (10, 3), (10, 8))):  # 40, 30, 80 px
        m = np.zeros((16, 16), np.uint8)
        m[:h, :w] = 1  # events lie at y 0, x 0..n-1: c1's after-table has one at x 3, outside
        write_tiff(tmp_path / "masks" / f"c{i}_mask.tif", m, axes="YX")
    res = runner.invoke(app, ["rates", str(tmp_path / "b"), str(tmp_path / "a"), "--frames", "100", "--mask",
                              str(tmp_path / "masks"), "--pixel-size", "0.5", "--frame-interval", "2", "--json"])
    assert res.exit_code == 0, res.output
    cells = json.loads(res.output)["cells"]
    assert [c["area_px"] for c in cells] == [40, 30, 80]
    # c0 before: 2 events / 100 frames / (40 px * 0.25 µm²) / 2 s; c1 after: 3 of its 4 events inside
    assert cells[0]["before"] == pytest.approx(2 / 100 / 10 / 2)
    assert cells[1]["after"] == pytest.approx(3 / 100 / 7.5 / 2)
    # the same tables in µm (as detect --pixel-size 0.5 writes them): --calibrated reads them in pixels
    for side in ("b", "a"):
        for f in (tmp_path / side).glob("c*.csv"):
            write_events(read_events(f), tmp_path / f"{side}_um" / f.name, pixel_size=0.5)
    res = runner.invoke(app, ["rates", str(tmp_path / "b_um"), str(tmp_path / "a_um"), "--frames", "100", "--mask",
                              str(tmp_path / "masks"), "--pixel-size", "0.5", "--frame-interval", "2", "--calibrated",
                              "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["cells"] == cells, res.output
    # µm tables and masks without --frame-interval: events/frame inside each cell, as for the pixel tables (the
    # pixel size only reads them; it asked for --frame-interval and --area before)
    plain = runner.invoke(app, ["rates", str(tmp_path / "b"), str(tmp_path / "a"), "--frames", "100", "--mask",
                                str(tmp_path / "masks"), "--json"])
    res = runner.invoke(app, ["rates", str(tmp_path / "b_um"), str(tmp_path / "a_um"), "--frames", "100", "--mask",
                              str(tmp_path / "masks"), "--pixel-size", "0.5", "--calibrated", "--json"])
    assert res.exit_code == plain.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got == json.loads(plain.stdout) and got["unit"] == "events/frame"
    assert got["cells"][1]["after"] == pytest.approx(3 / 100)  # its event outside the mask left out
    assert "the cells' masks differ in area" in res.stderr  # (events/frame: said, as for the pixel tables)
    res = runner.invoke(app, ["rates", str(tmp_path / "b_um"), str(tmp_path / "a_um"), "--frames", "100",
                              "--calibrated"])
    assert res.exit_code == 1 and "--calibrated tables (X/Y in µm) need --pixel-size" in str(res.exception)
    res = runner.invoke(app, ["rates", str(tmp_path / "b"), str(tmp_path / "a"), "--frames", "100", "--mask",
                              str(tmp_path / "masks"), "--area", "30"])
    assert res.exit_code == 1 and "--area (one area for every cell) or --mask" in str(res.exception)
    write_events(EventTable([1.0], [2.0], [3.0]), tmp_path / "a" / "c9.csv")
    res = runner.invoke(app, ["rates", str(tmp_path / "b"), str(tmp_path / "a"), "--frames", "100"])
    assert res.exit_code == 1 and "no partner for c9.csv; name each cell's tables before and after alike" in \
        str(res.exception)


def test_measure_command(sim: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["measure", str(sim / "movie.tif"), str(sim / "ground_truth.csv"), "-o",
                              str(tmp_path / "m.csv"), "--frame-interval", "0.4", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    m = read_events(tmp_path / "m.csv")
    # every time in the file says its unit: the measured decay in s (--frame-interval), the drawn Tau too
    header = (tmp_path / "m.csv").read_text().splitlines()[0].split(",")
    assert {"Decay_tau (s)", "Half_life (s)", "Tau (s)", "Fold_given", "Peak_slice"} <= set(header), header
    assert m.units["half_life"] == "s" and "half_life" in m.columns
    ok = np.isfinite(m.columns["fold"])
    assert summary["n_events"] == len(m) and ok.sum() >= 5
    # dense events in a small cell overlap now and then: the median, not every event, is within 5 %
    assert np.median(m.columns["fold"][ok] / m.columns["fold_given"][ok]) == pytest.approx(1.0, abs=0.05)
    assert "F0 <= 0" not in res.output
    # a background-subtracted movie: F0 <= 0, F/F0 undefined, and said so (it was NaN without a word)
    import tifffile

    movie = tifffile.imread(sim / "movie.tif").astype(np.int32)
    tifffile.imwrite(tmp_path / "sub.tif", (movie - int(np.percentile(movie, 99.9))).astype(np.int16))
    res = runner.invoke(app, ["measure", str(tmp_path / "sub.tif"), str(sim / "ground_truth.csv"), "-o",
                              str(tmp_path / "s.csv")])
    assert res.exit_code == 0 and "events have F0 <= 0 (a background-subtracted or offset movie?)" in res.output


def test_overlay_colours_and_report(sim: Path, tmp_path: Path) -> None:
    movie = np.asarray(read_movie(sim / "movie.tif"))
    truth = read_events(sim / "ground_truth.csv")
    pred = EventTable.concat([truth.select(np.arange(len(truth)) > 0),
                              EventTable([5.0], [5.0], [20.0], {k: [1.0] for k in truth.columns})])
    m = match_events(pred, truth)
    rgb = overlay_movie(movie, matching=m)
    assert rgb.shape == (40, 64, 64, 3) and rgb.dtype == np.uint8
    f = int(pred.frame[-1])
    assert (rgb[f] == COLOURS["fp"]).all(axis=-1).sum() > 10  # red circle around the false positive
    missed = truth.select(np.array([0]))
    assert (rgb[int(missed.frame[0])] == COLOURS["fn"]).all(axis=-1).sum() > 10
    path = write_overlay(tmp_path / "o.tif", rgb)
    import tifffile

    assert tifffile.imread(path).shape == (40, 64, 64, 3)
    fig = report_figure(pred, 40, movie.mean(axis=0), m, "t", {"F1": m.f1})
    png = write_report(tmp_path / "r.png", fig)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.axes[1].get_xlabel() == "frame (from 0; ImageJ's Slice = frame + 1)"


def test_scores_by_brightness_bin() -> None:
    """A bin without detections has no precision (nor F1) and is left out of the lines, instead of breaking
    them; a bin whose detections and true events all fail scores F1 0."""
    from exodf.report import _bins_scores

    edges = np.array([1.0, 2.0, 3.0, 4.0])
    gt, hit = [1.5, 1.6, 2.5, 3.5], [True, False, False, True]
    pred, tp = [1.5, 2.2, 3.5], [True, False, True]
    prec, rec, f1 = _bins_scores(gt, hit, pred, tp, edges)
    assert prec == [1.0, 0.0, 1.0] and rec == [0.5, 0.0, 1.0]
    assert f1 == pytest.approx([2 / 3, 0.0, 1.0])
    prec, rec, f1 = _bins_scores([1.5, 2.5], [True, False], [1.5], [True], edges)
    assert rec[1] == 0.0 and np.isnan(prec[1]) and np.isnan(f1[1]) and np.isnan(rec[2])


@pytest.mark.slow
@pytest.mark.weights
def test_demo_end_to_end(weights_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "-o", str(out), "--frames", "64", "--size", "64", "--seed", "2",
                              "--exclude-edges", "5", "--weights", str(weights_path)])
    assert res.exit_code == 0, res.output
    assert "F1" in res.output and str(out / "report.png") in res.output
    # the scored range in ImageJ's numbering, as the tables it writes (it said 'frames 5..58', 0-based)
    assert "true events (Slices 6..59, 5 frames left out at each end)" in res.output, res.output
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_gt"] >= 5 and scores["f1"] is not None and scores["f1"] >= 0.6
    for name in ("movie.tif", "ground_truth.csv", "cell_mask.tif", "detections.csv", "overlay.tif", "report.png"):
        assert (out / name).is_file()
    assert "fold" in read_events(out / "detections.csv").columns
    assert scores["cell"]["time_unit"] == "s" and "edge_split_fp" in scores
    import tifffile

    with tifffile.TiffFile(out / "overlay.tif") as t:  # calibrated as the movie (it had lost µm and s)
        assert t.imagej_metadata["unit"] == "um" and t.imagej_metadata["finterval"] == pytest.approx(0.4)
        x_res = t.pages[0].tags["XResolution"].value
        assert x_res[1] / x_res[0] == pytest.approx(0.16, rel=1e-3)
    # a second demo whose detection fails leaves the first one's movie and results together, nothing else
    before = {f.name: f.read_bytes() for f in out.iterdir()}

    def fails(*args: object) -> None:
        raise ExodfError("detection failed")

    import exodf.workflows
    from exodf.errors import ExodfError

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exodf.workflows, "_detect", fails)
        again = runner.invoke(app, ["demo", "-o", str(out), "--frames", "64", "--size", "64", "--seed", "3",
                                    "--exclude-edges", "5", "--weights", str(weights_path)])
    assert isinstance(again.exception, ExodfError) and "detection failed" in str(again.exception), again.output
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_simulate_replaces_all_its_files_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file was atomic but not the set: interrupted at the ground truth, a new movie stood beside the
    older ground truth and a simulation.json that still named the older seed."""
    import exodf.workflows
    from exodf.simulate import preset
    from exodf.workflows import simulate_files

    params = preset("control", n_frames=20, height=32, width=32)
    simulate_files(tmp_path / "sim", params, seed=0)
    before = {f.name: f.read_bytes() for f in (tmp_path / "sim").iterdir()}
    assert sorted(before) == ["cell_mask.tif", "ground_truth.csv", "movie.tif", "simulation.json"]

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(exodf.workflows, "write_events", interrupted)
    with pytest.raises(KeyboardInterrupt):
        simulate_files(tmp_path / "sim", params, seed=1)
    assert {f.name: f.read_bytes() for f in (tmp_path / "sim").iterdir()} == before  # no .part file either


def test_measure_file_reads_calibrated_tables(tmp_path) -> None:
    from exodf.events import read_events, write_events
    from exodf.simulate import preset
    from exodf.workflows import measure_file, simulate_files

    files = simulate_files(tmp_path / "sim", preset("control", n_frames=40, height=64, width=64,
                                                    events_per_frame=0.5), seed=2)
    truth = read_events(files.truth)
    assert len(truth) >= 5
    write_events(truth, tmp_path / "um.csv", pixel_size=0.16)
    px = measure_file(files.movie, files.truth, tmp_path / "px_measured.csv")
    um = measure_file(files.movie, tmp_path / "um.csv", tmp_path / "um_measured.csv", pixel_size=0.16)
    assert px["warnings"] == [] and um["warnings"] == []
    assert um["fold_mean"] == pytest.approx(px["fold_mean"])
    back = read_events(tmp_path / "um_measured.csv", pixel_size=0.16)  # written in the table's unit
    np.testing.assert_allclose(back.x, truth.x, atol=1e-3)
    wrong = measure_file(files.movie, tmp_path / "um.csv", tmp_path / "wrong.csv")  # µm read as pixels
    assert "top-left quarter" in wrong["warnings"][0]


def test_evaluate_finds_the_movie_of_a_pair_by_name(sim: Path, tmp_path: Path) -> None:
    """A folder of movies: the pair 'cell1' is scored against cell1.tif, not the folder's first file."""
    truth = read_events(sim / "ground_truth.csv")
    movies = tmp_path / "movies"
    movies.mkdir()
    (movies / "a_short.tif").write_bytes(b"not read")  # sorts first: was taken for any single pair
    (movies / "cell1.tif").write_bytes((sim / "movie.tif").read_bytes())
    write_events(truth, tmp_path / "cell1_events.csv")
    res = runner.invoke(app, ["evaluate", str(tmp_path / "cell1_events.csv"), str(sim / "ground_truth.csv"),
                              "--movie", str(movies), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["movies"][0]["rate_gt"] == pytest.approx(len(truth) / 40)
    masks = tmp_path / "masks"
    for name in ("cell2_mask.tif", "cell3_mask.tif"):
        masks.mkdir(exist_ok=True)
        (masks / name).write_bytes(b"not read")
    res = runner.invoke(app, ["evaluate", str(tmp_path / "cell1_events.csv"), str(sim / "ground_truth.csv"),
                              "--movie", str(movies), "--mask", str(masks)])
    assert res.exit_code == 1 and "no mask named like 'cell1' (found cell2, cell3)" in str(res.exception)


def test_evaluate_reads_movies_as_detect_does_and_checks_frames(sim: Path, tmp_path: Path) -> None:
    """--movie with a folder of per-frame TIFFs took each frame for a movie, and .hdf5 movies were not found;
    events after --frames were counted in silence (rates refused them); calibrated without a pixel size
    was refused by the command only."""
    import h5py
    import tifffile

    from exodf.workflows import EvaluateRequest

    movie = tifffile.imread(sim / "movie.tif")
    frames = tmp_path / "cell1"
    frames.mkdir()
    for t, frame in enumerate(movie):
        tifffile.imwrite(frames / f"img_{t:03d}.tif", frame)
    shutil.copy(sim / "ground_truth.csv", tmp_path / "cell1_events.csv")  # (the truth as perfect predictions)
    args = ["evaluate", str(tmp_path / "cell1_events.csv"), str(sim / "ground_truth.csv"), "--json"]
    res = runner.invoke(app, [*args, "--movie", str(frames)])
    assert res.exit_code == 0, (res.output, res.exception)
    truth = read_events(sim / "ground_truth.csv")
    assert json.loads(res.output)["movies"][0]["rate_gt"] == pytest.approx(len(truth) / 40)
    h5 = tmp_path / "h5"
    h5.mkdir()
    with h5py.File(h5 / "ground_truth.hdf5", "w") as f:
        f["dataset"] = movie
    res = runner.invoke(app, [*args, "--movie", str(h5)])
    assert res.exit_code == 0, (res.output, res.exception)
    last = int(truth.slice.max())
    res = runner.invoke(app, [*args, "--frames", str(last - 1)])
    assert res.exit_code == 1 and f"beyond --frames {last - 1}: give the movies' length" in str(res.exception)
    with pytest.raises(ValueError, match="--calibrated needs --pixel-size"):
        EvaluateRequest(calibrated=True)
    # a two-channel hyperstack: its size is all evaluate needs (it asked for a --channel it does not have)
    tifffile.imwrite(tmp_path / "hyper.tif", np.stack([movie, movie], axis=1), imagej=True,
                     metadata={"axes": "TCYX"})
    res = runner.invoke(app, [*args, "--movie", str(tmp_path / "hyper.tif")])
    assert res.exit_code == 0, (res.output, res.exception)


def test_two_tables_for_one_name_are_refused(tmp_path: Path) -> None:
    t = EventTable(np.array([1.0]), np.array([2.0]), np.array([3.0]))
    for name in ("pred/cell1.csv", "pred/cell1_events.csv", "gt/cell1_gt.csv"):
        write_events(t, tmp_path / name)
    res = runner.invoke(app, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt")])
    assert res.exit_code == 1 and "cell1.csv and cell1_events.csv both stand for 'cell1'" in str(res.exception)


def test_benchmark_reuses_only_what_the_same_options_made(tmp_path: Path) -> None:
    """A rerun resumes from stored movies and detections, but changed options re-simulate (the movie and
    its detections were silently reused before)."""
    out = tmp_path / "bm"
    args = ["benchmark", "-o", str(out), "--presets", "control", "-n", "1", "--methods", "adae-like",
            "--exclude-edges", "5", "--seed", "3"]
    res = runner.invoke(app, [*args[:-5], "adae-like,exoj-like", *args[-4:], "--frames", "30", "--size", "48"])
    assert res.exit_code == 0, res.output
    folder = out / "control" / "seed_3"
    assert (folder / "exoj-like_events.csv").is_file()
    first = {f: (folder / f).stat().st_mtime_ns for f in ("movie.tif", "adae-like_events.csv")}
    assert json.loads((folder / "detections.json").read_text())["adae-like"].startswith("adae-like")
    res = runner.invoke(app, [*args, "--frames", "30", "--size", "48", "--json"])
    assert res.exit_code == 0, res.output
    assert {f: (folder / f).stat().st_mtime_ns for f in first} == first  # resumed: nothing redone
    res = runner.invoke(app, [*args, "--frames", "40", "--size", "56", "--json"])
    assert res.exit_code == 0, res.output
    assert read_movie(folder / "movie.tif").shape == (40, 56, 56)
    assert (folder / "adae-like_events.csv").stat().st_mtime_ns != first["adae-like_events.csv"]
    assert not (folder / "exoj-like_events.csv").exists()  # the old movie's table does not stay beside the new one
    assert set(json.loads((folder / "detections.json").read_text())) == {"adae-like"}
    row = json.loads((out / "benchmark.json").read_text())[0]
    assert row["n_movies"] == 1 and (row["frames"], row["height"], row["exclude_edges"]) == (40, 56, 5)  # provenance
    assert row["rule"]["max_distance"] == 4.5 and row["method_identity"].startswith("adae-like (exodf ")


def test_measure_command_options(sim: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["measure", str(sim / "movie.tif"), str(sim / "ground_truth.csv"), "-o",
                              str(tmp_path / "m.csv"), "--n-fit", "2"])
    assert res.exit_code == 1 and "--n-fit must be >= 4" in str(res.exception)
    res = runner.invoke(app, ["measure", str(sim / "movie.tif"), str(sim / "ground_truth.csv"), "-o",
                              str(tmp_path / "m.csv"), "--peak-search", "0"])
    assert res.exit_code == 0, res.output
    m = read_events(tmp_path / "m.csv")
    np.testing.assert_array_equal(m.columns["peak_frame"], np.floor(m.frame + 0.5))  # measured where given
    assert " events with an F0; half-life mean " in res.output and " frames over " in res.output, res.output
    res = runner.invoke(app, ["measure", str(sim / "movie.tif"), str(sim / "ground_truth.csv"), "-o",
                              str(tmp_path / "m.csv"), "--frame-interval", "0.4", "--json"])
    summary = json.loads(res.output)
    assert summary["time_unit"] == "s" and summary["n_fold"] <= summary["n_events"], res.output
    res = runner.invoke(app, ["measure", str(sim / "movie.tif"), str(sim / "ground_truth.csv"), "-o",
                              str(tmp_path / "w.csv"), "--window", "201"])
    assert res.exit_code == 1 and "the 201-px window is larger than its 64 x 64-px frames" in str(res.exception)
    assert not (tmp_path / "w.csv").exists()
    for name in ("m.xlsx", "m"):  # comma-separated text in a .xlsx is a file Excel refuses
        res = runner.invoke(app, ["measure", str(sim / "movie.tif"), str(sim / "ground_truth.csv"), "-o",
                                  str(tmp_path / name)])
        assert res.exit_code == 1 and "event tables are written as .csv" in str(res.exception), res.output
        assert not (tmp_path / name).exists()


def test_write_events_refuses_a_suffix_it_cannot_write(tmp_path: Path) -> None:
    from exodf.errors import ExodfError

    with pytest.raises(ExodfError, match=r"events\.xlsx: event tables are written as .csv.* not \.xlsx"):
        write_events(EventTable([1.0], [2.0], [3.0]), tmp_path / "events.xlsx")
    assert not list(tmp_path.iterdir())


def test_report_precision_by_fold_counts_dim_false_positives() -> None:
    """An FP dimmer than every true event (F/F0 0.9) counts in the first bin's precision (it was dropped)."""
    gt = EventTable(np.array([10.0, 30.0]), np.array([10.0, 30.0]), np.array([5.0, 8.0]),
                    {"fold": np.array([1.2, 2.0])})
    pred = EventTable(np.array([10.0, 50.0]), np.array([10.0, 50.0]), np.array([5.0, 9.0]),
                      {"fold": np.array([1.25, 0.9])})
    fig = report_figure(pred, 20, matching=match_events(pred, gt))
    precision = fig.axes[3].lines[0].get_ydata()
    assert precision[0] == pytest.approx(0.5)  # the TP at 1.2 and the FP at 0.9 share the first bin


def test_evaluate_takes_the_mask_from_a_simulation_folder(sim: Path, tmp_path: Path) -> None:
    """sim/cell1/ holds movie.tif and cell_mask.tif: --mask sim/cell1/ is the mask, not the movie."""
    truth = read_events(sim / "ground_truth.csv")
    write_events(truth, tmp_path / "pred.csv")
    res = runner.invoke(app, ["evaluate", str(tmp_path / "pred.csv"), str(sim / "ground_truth.csv"),
                              "--movie", str(sim), "--mask", str(sim), "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    row = json.loads(res.output)["movies"][0]
    inside = read_mask(sim / "cell_mask.tif").astype(bool)
    n_inside = int(sum(inside[int(round(y)), int(round(x))] for x, y in zip(truth.x, truth.y)))
    assert row["n_gt"] == n_inside


def test_a_mask_smaller_than_the_events_reach_is_named_without_the_movie(sim: Path, tmp_path: Path) -> None:
    import tifffile

    truth = read_events(sim / "ground_truth.csv")
    small = tmp_path / "small_mask.tif"
    tifffile.imwrite(small, np.full((32, 32), 255, np.uint8))  # a 64 x 64 movie's events reach beyond it
    n_out = int(((truth.x >= 31.5) | (truth.y >= 31.5)).sum())
    assert n_out > 0
    shutil.copy(sim / "ground_truth.csv", tmp_path / "events.csv")  # (the truth as perfect predictions)
    res = runner.invoke(app, ["evaluate", str(tmp_path / "events.csv"), str(sim / "ground_truth.csv"),
                              "--mask", str(small)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert f"{n_out} of the {len(truth)} events of {sim / 'ground_truth.csv'} lie outside the mask's 32 x 32" \
        in res.output.replace("\n", " ")


def test_unpaired_tables_are_named_as_the_files_are(tmp_path: Path) -> None:
    from exodf.errors import ExodfError
    from exodf.workflows import pair_tables

    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    t = EventTable([1.0], [2.0], [3.0])
    for f in ("pred/Cell1_events.csv", "pred/CellX_events.csv", "gt/cell1_gt.csv", "gt/Cell 2_gt.csv"):
        write_events(t, tmp_path / f)
    with pytest.raises(ExodfError, match="no partner for Cell 2_gt.csv, CellX_events.csv; name each"):
        pair_tables(tmp_path / "pred", tmp_path / "gt")
    (tmp_path / "pred/CellX_events.csv").unlink()
    (tmp_path / "gt/Cell 2_gt.csv").unlink()
    assert [(k, p.name, g.name) for k, p, g in pair_tables(tmp_path / "pred", tmp_path / "gt")] == [
        ("Cell1", "Cell1_events.csv", "cell1_gt.csv")]  # named as the prediction is


def test_spots_and_measure_choose_a_channel_as_detect_does(sim: Path, tmp_path: Path) -> None:
    import tifffile

    movie = read_movie(sim / "movie.tif")
    hyper = np.stack([np.zeros_like(movie), movie], axis=1)  # T, C, Y, X: the movie is channel 1 (ImageJ C=2)
    tifffile.imwrite(tmp_path / "hyper.tif", hyper, imagej=True, metadata={"axes": "TCYX"})
    res = runner.invoke(app, ["measure", str(tmp_path / "hyper.tif"), str(sim / "ground_truth.csv"), "-o",
                              str(tmp_path / "m.csv")])
    assert res.exit_code == 1 and "choose one with --channel N (0..1)" in str(res.exception)
    res = runner.invoke(app, ["measure", str(tmp_path / "hyper.tif"), str(sim / "ground_truth.csv"), "-o",
                              str(tmp_path / "m.csv"), "--channel", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["measure", str(sim / "movie.tif"), str(sim / "ground_truth.csv"), "-o",
                              str(tmp_path / "ref.csv")])
    assert (tmp_path / "m.csv").read_text() == (tmp_path / "ref.csv").read_text()
    for args in ([], ["--channel", "1"]):
        res = runner.invoke(app, ["spots", str(tmp_path / "hyper.tif"), "-o", str(tmp_path / "s.csv"), "-q", *args])
        if not args:
            assert res.exit_code == 1 and "choose one with --channel" in str(res.exception)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["spots", str(sim / "movie.tif"), "-o", str(tmp_path / "ref_s.csv"), "-q"])
    assert (tmp_path / "s.csv").read_text() == (tmp_path / "ref_s.csv").read_text()


def test_exoj_default_export_names_pair_with_their_tables_and_masks(tmp_path: Path) -> None:
    """ExoJ names its export cellA.tif_secretions.csv.csv; evaluate and rates pair it with cellA.csv/.tif,
    and name the cell as the files do (cellA, not cella)."""
    from exodf.exoj import parse_exoj
    from exodf.io import write_tiff
    from test_exoj import exoj_bytes

    (tmp_path / "exoj").mkdir()
    (tmp_path / "exoj" / "cellA.tif_secretions.csv.csv").write_bytes(exoj_bytes())
    ev = parse_exoj(exoj_bytes())
    write_events(ev, tmp_path / "gt" / "cellA.csv")
    res = runner.invoke(app, ["evaluate", str(tmp_path / "exoj"), str(tmp_path / "gt"), "--frames", "200", "--json"])
    assert res.exit_code == 0, res.output
    row, = json.loads(res.stdout)["movies"]
    assert (row["movie"], row["tp"], row["fp"], row["fn"]) == ("cellA", 3, 0, 0)
    # an export that does not fit its movie: advice that fits ExoJ (no --pixel-size changes an export's unit)
    from exodf.exoj import EXPORT_UNITS_HINT

    write_tiff(tmp_path / "movies" / "cellA.tif", np.zeros((200, 64, 64), np.uint16))
    res = runner.invoke(app, ["evaluate", str(tmp_path / "exoj"), str(tmp_path / "gt"), "--movie",
                              str(tmp_path / "movies"), "--json"])
    assert res.exit_code == 0, res.output
    said = json.loads(res.stdout)["movies"][0]["warnings"]
    assert any("cellA.tif_secretions.csv.csv lie outside" in w and w.endswith(EXPORT_UNITS_HINT) for w in said), said
    assert any("gt/cellA.csv lie outside" in w and "--pixel-size" in w for w in said), said
    # rates: ExoJ's exports before and after, each cell's mask named after its movie
    (tmp_path / "after").mkdir()
    (tmp_path / "after" / "cellA.tif_secretions.csv.csv").write_bytes(exoj_bytes(rows=exoj_rows()[:1]))
    (tmp_path / "exoj" / "cellB.tif_secretions.csv.csv").write_bytes(exoj_bytes())
    (tmp_path / "after" / "cellB.tif_secretions.csv.csv").write_bytes(exoj_bytes())
    for name, side in (("cellA", 200), ("cellB", 100)):
        write_tiff(tmp_path / "masks" / f"{name}.tif", np.ones((side, side), np.uint8), axes="YX")
    res = runner.invoke(app, ["rates", str(tmp_path / "exoj"), str(tmp_path / "after"), "--frames", "200",
                              "--mask", str(tmp_path / "masks"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [(c["cell"], c["area_px"]) for c in out["cells"]] == [("cellA", 40000), ("cellB", 10000)]
    # events/frame from cells of different areas: said, with the options that make it per area
    mask_b = tmp_path / "masks" / "cellB.tif"
    assert out["warnings"] == [
        *(f"2 of the 3 events of {tmp_path / side / 'cellB.tif_secretions.csv.csv'} lie outside the mask's 100 x 100 "
          f"pixels ({mask_b}): they count as outside the cell; is it this movie's mask?"
          for side in ("exoj", "after")),
        f"{tmp_path / 'masks'}: the cells' masks differ in area (10000 to 40000 px) but the rates are events/frame, "
        "not per area: give --pixel-size and --frame-interval for events/µm²/s"]
    assert "warning: " in res.stderr


def exoj_rows() -> list[list[str]]:
    from test_exoj import ROWS

    return [r[:] for r in ROWS]


def test_a_truth_folder_for_more_movies_scores_the_predicted_ones(tmp_path: Path) -> None:
    """One truth folder for several runs: truths without a prediction are named, not scored, not refused;
    a prediction without truth still is."""
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    t = EventTable([10.0, 30.0], [12.0, 40.0], [3.0, 9.0])
    write_events(t, tmp_path / "pred/cell1_events.csv")
    for name in ("cell1_gt.csv", "cell2_gt.csv", "cell3_gt.csv"):
        write_events(t, tmp_path / "gt" / name)
    res = runner.invoke(app, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--json"])
    assert res.exit_code == 0, res.output
    assert "note: 2 ground truth table(s) of" in res.output and "cell2_gt.csv, cell3_gt.csv" in res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r["movie"] for r in out["movies"]] == ["cell1"] and out["pooled"]["tp"] == 2
    assert [Path(f).name for f in out["unscored_truth"]] == ["cell2_gt.csv", "cell3_gt.csv"]
    write_events(t, tmp_path / "pred/cell9_events.csv")  # no truth for it: refused
    res = runner.invoke(app, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt")])
    assert res.exit_code == 1 and "no partner for cell9_events.csv" in str(res.exception), res.output


def test_rates_say_when_most_events_fall_outside_the_cell(tmp_path: Path) -> None:
    """A table in µm read as pixels (no --calibrated) lands in the mask's top-left corner, outside the cell: the
    rate would silently be 0; another cell's mask loses most events too. Both are said; a neighbour's few are not."""
    from exodf.io import write_tiff
    from exodf.workflows import rates_files

    rng = np.random.default_rng(1)
    x, y = rng.uniform(30, 60, 8), rng.uniform(30, 60, 8)
    mask = np.zeros((64, 64), np.uint8)
    mask[25:64, 25:64] = 1
    write_tiff(tmp_path / "mask.tif", mask, axes="YX")
    for side in ("", "_after"):  # (the same events before and after)
        write_events(EventTable(x, y, np.full(8, 5.0)), tmp_path / f"px{side}" / "c.csv")
        write_events(EventTable(x, y, np.full(8, 5.0)), tmp_path / f"um{side}" / "c.csv", pixel_size=0.16)
    px = rates_files(tmp_path / "px", tmp_path / "px_after", 20, masks=tmp_path / "mask.tif")
    assert px["warnings"] == [] and px["cells"][0]["before"] == pytest.approx(8 / 20)
    um = rates_files(tmp_path / "um", tmp_path / "um_after", 20, masks=tmp_path / "mask.tif")
    assert um["cells"][0]["before"] == 0
    assert um["warnings"][0] == (f"8 of the 8 events of {tmp_path / 'um' / 'c.csv'} lie outside the cell of "
                                 f"{tmp_path / 'mask.tif'} and are left out of its rate - all in the frame's top-left "
                                 "corner, as X/Y in µm read as pixels would be: give --calibrated --pixel-size")
    ok = rates_files(tmp_path / "um", tmp_path / "um_after", 20, masks=tmp_path / "mask.tif", calibrated=True,
                     pixel_size_um=0.16)
    assert ok["warnings"] == [] and ok["cells"][0]["before"] == pytest.approx(8 / 20)
    other = np.zeros((64, 64), np.uint8)
    other[:20, :20] = 1  # another cell's mask
    write_tiff(tmp_path / "other.tif", other, axes="YX")
    res = rates_files(tmp_path / "px", tmp_path / "px_after", 20, masks=tmp_path / "other.tif")
    assert res["warnings"][0].endswith("are left out of its rate: is it this cell's mask?")
    few = EventTable(np.r_[x, 5.0], np.r_[y, 5.0], np.full(9, 5.0))  # one event on a neighbour: nothing said
    write_events(few, tmp_path / "nb" / "c.csv")
    assert rates_files(tmp_path / "nb", tmp_path / "px", 20, masks=tmp_path / "mask.tif")["warnings"] == []


def test_the_same_table_or_folder_twice_is_refused(tmp_path: Path) -> None:
    """`evaluate ev.csv ev.csv` scored F1 1.000 and `rates d d` a change of 0: a slip of the shell's history."""
    write_events(EventTable([10.0, 20.0], [10.0, 20.0], [3.0, 8.0]), tmp_path / "d" / "c1.csv")
    ev = tmp_path / "d" / "c1.csv"
    for args, says in (
            (["evaluate", str(ev), str(ev), "--frames", "40"],
             f"{ev} and {ev} are the same file: each table would be compared with itself; give the predictions first "
             "and their ground truth second"),
            (["evaluate", str(tmp_path / "d"), str(tmp_path / "d" / ".." / "d"), "--frames", "40"],
             "are the same folder"),
            (["rates", str(tmp_path / "d"), str(tmp_path / "d"), "--frames", "40"],
             "give the tables before the treatment first and those after it second")):
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and says in str(res.exception), res.output
