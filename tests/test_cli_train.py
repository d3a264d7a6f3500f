"""``exodf spots`` and ``exodf train`` from files, and the trained weights in ``exodf detect``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from exodf.cli import app
from exodf.errors import ExodfError
from exodf.events import EventTable, read_events, write_events
from exodf.io import write_tiff
from exodf.simulate import preset, simulate


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("sims")
    files = []
    for seed in (0, 1):
        sim = simulate(preset("control", n_frames=24, height=32, width=32, events_per_frame=1.0,
                              docked_density=6.0), seed=seed)
        movie, table = root / f"movie{seed}.tif", root / f"movie{seed}_events.csv"
        write_tiff(movie, sim.movie)
        write_events(sim.truth, table)
        files.append((movie, table))
    return files


def test_spots_writes_labels_and_table(sim_files: list[tuple[Path, Path]], tmp_path: Path) -> None:
    movie = sim_files[0][0]
    res = CliRunner().invoke(app, ["spots", str(movie), "-o", str(tmp_path / "spots.tif"), "-q"])
    assert res.exit_code == 0, res.output
    labels = tifffile.imread(tmp_path / "spots.tif")
    assert labels.shape == (24, 32, 32)
    n = int(labels.max())
    assert n > 0 and f"{n} bright spots" in res.output
    res = CliRunner().invoke(app, ["spots", str(movie), "-o", str(tmp_path / "spots.csv"), "-q"])
    assert res.exit_code == 0, res.output
    table = read_events(tmp_path / "spots.csv")
    assert len(table) == n and table.frame.min() >= 0 and table.frame.max() <= 23


def test_train_then_detect_with_the_weights(sim_files: list[tuple[Path, Path]], tmp_path: Path) -> None:
    (m0, e0), (m1, e1) = sim_files
    out = tmp_path / "model"
    args = ["train", str(m0), str(m1), "-e", str(e0), "-e", str(e1), "-o", str(out), "--init", "scratch",
            "--patch-sizes", "8,16", "--batch-sizes", "4,2", "--shifts", "2,4", "--epochs", "1",
            "--steps", "2", "--val-batches", "1", "-q"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    assert "step      2  patch  8" in res.output and "step      4  patch 16" in res.output
    assert (out / "model.weights.h5").is_file() and (out / "training_curves.png").is_file()
    assert f"lowest validation loss of the last stage: the last epoch, {out / 'best.weights.h5'}" in res.output
    assert (out / "best.weights.h5").is_file()
    import json

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train_movies"] == [str(m0)] and cfg["validation_movies"] == [str(m1)]
    assert cfg["spots"] == "built-in detector"
    # starting over in a folder that holds a checkpoint is refused (it asks for --resume)
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and "--resume" in str(res.exception)
    res = CliRunner().invoke(app, ["detect", str(m0), "--weights", str(out / "model.weights.h5"),
                                   "-o", str(tmp_path / "found.csv"), "-q"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert (tmp_path / "found.csv").is_file()
    # ... and the bioimage.io package of the trained weights, every weight format checked against Keras
    res = CliRunner().invoke(app, ["package", "--weights", str(out / "model.weights.h5"), "--root",
                                   str(tmp_path / "pkg")])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "wrote" in res.output and res.output.count("max |difference| to Keras") == 4
    import yaml

    rdf = yaml.safe_load((tmp_path / "pkg" / "rdf.yaml").read_text())
    assert rdf["name"] == "ExoDeepFinder (retrained with exodf)"  # not described as the published weights
    import datetime  # ... nor dated as they are: the trained weights' own time (UTC)

    made = datetime.datetime.fromtimestamp((out / "model.weights.h5").stat().st_mtime, datetime.timezone.utc)
    assert rdf["timestamp"] == made.strftime("%Y-%m-%dT%H:%M:%S")
    doc = tmp_path / "pkg" / rdf["documentation"]["source"]
    assert doc.name == "README.retrained.md" and "These are not the published weights" in doc.read_text()
    keras_entry = next(v for k, v in rdf["weights"].items() if k.startswith("keras"))
    packaged = tmp_path / "pkg" / keras_entry["source"]
    from exodf.model import load_network

    trained, again = load_network(out / "model.weights.h5"), load_network(packaged)
    for a, b in zip(trained.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)  # the package carries the trained weights, not the published ones


def test_train_with_user_spots_table(sim_files: list[tuple[Path, Path]], tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    from exodf.training_files import read_spots

    (m0, e0), _ = sim_files
    spots = tmp_path / "spots.csv"
    write_events(read_events(e0).select(np.arange(3)), spots)
    mask = read_spots(spots, (24, 32, 32))
    assert int(mask.sum()) <= 3 * 13 and int(mask.sum()) >= 13  # disks of radius 2 (13 px), clipped at edges
    with pytest.raises(Exception, match="spot map has shape"):
        write_tiff(tmp_path / "bad.tif", np.zeros((24, 32, 33), dtype=np.uint8))
        read_spots(tmp_path / "bad.tif", (24, 32, 32))
    # another movie's spot table: points outside this movie are said, none inside is an error (it was silent)
    write_events(EventTable([5.0, 40.0, 6.0], [5.0, 5.0, 6.0], [3.0, 3.0, 30.0]), spots)
    assert int(read_spots(spots, (24, 32, 32)).sum()) == 13
    assert "spots.csv: 2 of its 3 spots lie outside the movie (shape (24, 32, 32)) and are not used" in caplog.text
    write_events(EventTable([40.0], [5.0], [3.0]), spots)
    with pytest.raises(ExodfError, match="spots.csv: none of its 1 spots lies inside the movie"):
        read_spots(spots, (24, 32, 32))


def test_one_line_error_for_missing_tables(sim_files: list[tuple[Path, Path]], tmp_path: Path) -> None:
    (m0, e0), (m1, _) = sim_files
    proc = subprocess.run([sys.executable, "-m", "exodf", "train", str(m0), str(m1), "-e", str(e0),
                           "-o", str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("exodf: error: --events: give one event table per movie")
    assert not (tmp_path / "x").exists()


def test_training_inputs_are_checked_before_training(sim_files: list[tuple[Path, Path]], tmp_path: Path) -> None:
    (m0, e0), (m1, e1) = sim_files
    small = ["--init", "scratch", "--patch-sizes", "8", "--batch-sizes", "2", "--epochs", "1", "--steps", "1",
             "--val-batches", "1", "-q"]
    # a table of another (larger) movie: none of its events inside this one
    far = tmp_path / "far.csv"
    write_events(EventTable([300.0, 310.0], [300.0, 305.0], [3.0, 9.0]), far)
    res = CliRunner().invoke(app, ["train", str(m0), str(m1), "-e", str(far), "-e", str(e1), "-o",
                                   str(tmp_path / "a"), *small])
    assert res.exit_code != 0 and "none of its 2 events can be used inside" in str(res.exception)
    assert not (tmp_path / "a").exists()
    # a table in µm read as pixels: refused before hours of training on it (it was a warning)
    t = read_events(e0)
    um = tmp_path / "um.csv"
    write_events(EventTable(t.x * 0.16, t.y * 0.16, t.frame), um)
    assert len(t) >= 5
    res = CliRunner().invoke(app, ["train", str(m0), "-e", str(um), "-o", str(tmp_path / "a"), *small])
    assert res.exit_code != 0 and f"lie in the top-left quarter of {m0}" in str(res.exception) and \
        "--pixel-size 1 if the table is in pixels" in str(res.exception), res.exception
    assert not (tmp_path / "a").exists()
    # the tables swapped: each is named after the other movie (it trained on the wrong labels silently)
    res = CliRunner().invoke(app, ["train", str(m0), str(m1), "-e", str(e1), "-e", str(e0), "-o",
                                   str(tmp_path / "a"), *small])
    assert res.exit_code != 0 and f"--events: {e1} is given for {m0} but named after {m1}; give --events once " \
        "per movie, in the movies' order" in str(res.exception), res.exception
    assert not (tmp_path / "a").exists()
    res = CliRunner().invoke(app, ["train", str(m0), str(m1), "-e", str(e0), "-e", str(e1), "-o",
                                   str(tmp_path / "b"), *small[2:], "--init", str(tmp_path / "nope.h5")])
    assert res.exit_code != 0 and "--init" in str(res.exception) and "no such weights file" in str(res.exception)
    # an empty table saved by mistake for every training movie: nothing to learn exocytosis from
    empty = tmp_path / "empty.csv"
    write_events(EventTable.empty(), empty)
    res = CliRunner().invoke(app, ["train", str(m0), str(m1), "-e", str(empty), "-e", str(e1), "-o",
                                   str(tmp_path / "e"), *small])
    assert res.exit_code == 1 and str(res.exception).startswith(f"{empty}: no event in the training movies' "
                                                                "tables"), res.exception
    assert not (tmp_path / "e").exists()
    res = CliRunner().invoke(app, ["train", str(m0), str(m1), "-e", str(e0), "-e", str(e1), "-o",
                                   str(tmp_path / "c"), *small[:2], "--patch-sizes", "64", *small[4:]])
    assert res.exit_code != 0 and "smaller than the largest patch (64)" in str(res.exception)
    # resuming with the movies swapped (training <-> validation) is refused
    out = tmp_path / "d"
    res = CliRunner().invoke(app, ["train", str(m0), str(m1), "-e", str(e0), "-e", str(e1), "-o", str(out),
                                   *small, "--epochs", "2", "--until-step", "1"])
    assert res.exit_code == 0, (res.output, res.exception)
    res = CliRunner().invoke(app, ["train", str(m1), str(m0), "-e", str(e1), "-e", str(e0), "-o", str(out),
                                   *small, "--epochs", "2", "--resume"])
    assert res.exit_code != 0 and "was trained with other train movies" in str(res.exception)
    # ... and with another bright-spot source or target offset (the loss jumped, config.json hid it)
    for other, says in ((["--no-spots"], "--spots/--no-spots"), (["--target-offset", "0"], "--target-offset")):
        res = CliRunner().invoke(app, ["train", str(m0), str(m1), "-e", str(e0), "-e", str(e1), "-o", str(out),
                                       *small, "--epochs", "2", "--resume", *other])
        assert res.exit_code != 0 and f"was trained with {says}" in str(res.exception), res.exception
    # other settings: the error names what differs (it printed the checkpoint's whole configuration)
    # ... before the movies are read and their spots detected (minutes), and how to train on instead
    from unittest import mock

    with mock.patch("exodf.training_files.read_movie", side_effect=AssertionError("movie read")):
        res = CliRunner().invoke(app, ["train", str(m0), str(m1), "-e", str(e0), "-e", str(e1), "-o", str(out),
                                       *small, "--epochs", "2", "--resume", "--steps", "3"])
    assert res.exit_code != 0 and "other training settings (steps 1 (now 3))" in str(res.exception), res.exception
    assert f"--init {out / 'checkpoint' / 'model.weights.h5'} -o NEW_FOLDER" in str(res.exception)
    res = CliRunner().invoke(app, ["train", str(m0), str(m1), "-e", str(e0), "-e", str(e1), "-o", str(out),
                                   *small, "--epochs", "2", "--resume"])
    assert res.exit_code == 0, (res.output, res.exception)
    import json

    assert json.loads((out / "config.json").read_text())["init"] == "scratch"


def test_targets_are_painted_one_frame_after_the_table_frame_by_default() -> None:
    """As the published network marks events (its detections sit a frame after the brightest frame)."""
    from exodf.targets import EXOCYTOSIS
    from exodf.training_files import TARGET_OFFSET, prepare_movie

    movie = np.random.default_rng(0).normal(100, 5, (12, 24, 24)).astype(np.float32)
    events = EventTable([10.0], [12.0], [4.0])
    m = prepare_movie(movie, events, None)
    frames = np.flatnonzero((m.target == EXOCYTOSIS).any(axis=(1, 2)))
    assert TARGET_OFFSET == 1 and frames.tolist() == [5, 6, 7]
    assert m.target[5, 12, 10] == EXOCYTOSIS and (m.target[5] == EXOCYTOSIS).sum() == 49  # the r=4 disk
    at_frame = prepare_movie(movie, events, None, target_offset=0)
    assert np.flatnonzero((at_frame.target == EXOCYTOSIS).any(axis=(1, 2))).tolist() == [4, 5, 6]


def test_events_in_the_last_frame_are_said_to_be_painted_past_the_end(sim_files: list[tuple[Path, Path]],
                                                                       tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """With --target-offset 1 an event annotated in the last frame has no frame to be painted in."""
    (m0, _), _ = sim_files
    last = tmp_path / "last.csv"
    write_events(EventTable([10.0, 20.0], [12.0, 14.0], [23.0, 23.0]), last)  # frame 23 of 24
    res = CliRunner().invoke(app, ["train", str(m0), "-e", str(last), "-o", str(tmp_path / "a"), "--init",
                                   "scratch", "--patch-sizes", "8", "--batch-sizes", "2", "--epochs", "1",
                                   "--steps", "1", "-q"])
    assert res.exit_code != 0
    assert "2 of them in the last 1 frame(s)" in str(res.exception) and "past the end" in str(res.exception)
    # one event used, one in the last frame, one outside: each said as what it is (the last-frame one was
    # said to "lie outside" the movie)
    write_events(EventTable([10.0, 20.0, 50.0], [12.0, 14.0, 12.0], [10.0, 23.0, 10.0]), last)
    res = CliRunner().invoke(app, ["train", str(m0), "-e", str(last), "-o", str(tmp_path / "b"), "--init",
                                   "scratch", "--patch-sizes", "8", "--batch-sizes", "2", "--epochs", "1",
                                   "--steps", "1", "--no-spots", "-q"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert f"last.csv: 1 of its 3 events lie outside {m0} (shape (24, 32, 32)) and are not used" in caplog.text
    assert f"last.csv: 1 of its 3 events are in the last 1 frame(s) of {m0}, where their target (painted " \
        "--target-offset 1 frame(s) later) would lie past the movie's end: they are not used" in caplog.text


def test_train_picks_a_channel_and_refuses_a_negative_seed(sim_files: list[tuple[Path, Path]],
                                                           tmp_path: Path) -> None:
    (m0, e0), _ = sim_files
    movie = tifffile.imread(m0)
    two = tmp_path / "two_channels.tif"  # (T, C, Y, X): the movie in channel 1, noise in channel 0
    noise = np.random.default_rng(0).integers(0, 50, movie.shape).astype(movie.dtype)
    tifffile.imwrite(two, np.stack([noise, movie], axis=1), imagej=True, metadata={"axes": "TCYX"})
    small = ["--init", "scratch", "--patch-sizes", "8", "--batch-sizes", "2", "--epochs", "1", "--steps", "1",
             "--val-batches", "1", "-q"]
    res = CliRunner().invoke(app, ["train", str(two), "-e", str(e0), "-o", str(tmp_path / "a"), *small])
    assert res.exit_code != 0 and "--channel" in str(res.exception)
    res = CliRunner().invoke(app, ["train", str(two), "-e", str(e0), "-o", str(tmp_path / "b"), *small,
                                   "--channel", "1"])
    assert res.exit_code == 0, (res.output, res.exception)
    import json

    assert json.loads((tmp_path / "b" / "config.json").read_text())["channel"] == 1
    res = CliRunner().invoke(app, ["train", str(m0), "-e", str(e0), "-o", str(tmp_path / "c"), *small,
                                   "--seed", "-1"])
    assert res.exit_code == 2 and not (tmp_path / "c").exists()


def test_the_curriculum_has_one_stage_per_patch_size() -> None:
    from exodf.train import ORIGINAL_CURRICULUM, Stage
    from exodf.training_files import parse_stages

    assert parse_stages() == ORIGINAL_CURRICULUM
    # two patch sizes: two stages, with the original's batch sizes and shifts of the first two stages
    assert parse_stages("8,16") == (Stage(8, 256, 4), Stage(16, 128, 8))
    # shorter lists repeat their last value; six patch sizes repeat the original's last stage settings
    assert parse_stages("8,16,32", "4", epochs="2,3") == (Stage(8, 4, 4, 2), Stage(16, 4, 8, 3), Stage(32, 4, 16, 3))
    assert [s.batch for s in parse_stages("8,12,16,24,32,48")] == [256, 128, 32, 10, 10, 10]
    for option, kw in (("--batch-sizes", {"batch_sizes": "4,4,4"}), ("--shifts", {"shifts": "2,4,8"}),
                       ("--epochs", {"epochs": "1,2,3"})):
        with pytest.raises(ExodfError, match=f"{option} has 3 values for 2 stage\\(s\\) \\(--patch-sizes 8,16\\)"):
            parse_stages("8,16", **kw)  # type: ignore[arg-type]
    with pytest.raises(ExodfError, match="--patch-sizes: give at least one value"):
        parse_stages("")


def test_stopping_and_offset_options_are_checked(sim_files: list[tuple[Path, Path]], tmp_path: Path) -> None:
    """--until-step 0 or --max-minutes 0 stopped after the first epoch; a negative --target-offset painted
    targets before the events and dropped those at Slice 1 as 'outside the movie'."""
    from exodf.training_files import TrainRequest

    (m0, e0), _ = sim_files
    for kw, says in (({"until_step": 0}, "--until-step must be > 0"),
                     ({"max_minutes": 0.0}, "--max-minutes must be > 0"),
                     ({"target_offset": -1}, "--target-offset must be >= 0")):
        with pytest.raises(ExodfError, match=says):
            TrainRequest((m0,), (e0,), tmp_path / "o", **kw)
    res = CliRunner().invoke(app, ["train", str(m0), "-e", str(e0), "-o", str(tmp_path / "o"), "--until-step", "0"])
    assert res.exit_code == 2 and not (tmp_path / "o").exists()


def test_an_interrupted_first_epoch_leaves_no_folder_behind(sim_files: list[tuple[Path, Path]],
                                                            tmp_path: Path) -> None:
    """Interrupted before its first checkpoint, a run leaves no folder holding just config.json (a folder
    that was there before stays)."""
    from unittest import mock

    (m0, e0), _ = sim_files

    def interrupted(net, train, val, config, out, **kw):  # type: ignore[no-untyped-def]
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text("{}\n")
        raise KeyboardInterrupt

    args = ["--init", "scratch", "--patch-sizes", "8", "--batch-sizes", "2", "--no-spots", "-q"]
    with mock.patch("exodf.training_files.train_network", interrupted):
        res = CliRunner().invoke(app, ["train", str(m0), "-e", str(e0), "-o", str(tmp_path / "new"), *args])
        assert res.exit_code == 130 and "no checkpoint was written yet" in res.output
        assert not (tmp_path / "new").exists()
        (tmp_path / "mine").mkdir()
        res = CliRunner().invoke(app, ["train", str(m0), "-e", str(e0), "-o", str(tmp_path / "mine"), *args])
        assert res.exit_code == 130 and (tmp_path / "mine").is_dir()


def test_hot_pixels_are_clipped_in_training_as_in_detection(sim_files: list[tuple[Path, Path]], tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    from exodf.normalize import static_outliers

    (m0, e0), _ = sim_files
    movie = tifffile.imread(m0)
    movie[:, 3, 28] = 65535  # a hot pixel
    hot = tmp_path / "hot.tif"
    write_tiff(hot, movie)
    res = CliRunner().invoke(app, ["train", str(hot), "-e", str(e0), "-o", str(tmp_path / "run"), "--init",
                                   "scratch", "--patch-sizes", "8", "--batch-sizes", "2", "--epochs", "1",
                                   "--steps", "1", "--no-spots", "-q"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert f"{hot}: 1 pixel(s) stay far brighter than the cell all through the movie (hot or saturated camera " \
        "pixels, a bead, debris or a very bright static spot: x 28, y 3): clipped to each frame's 99th " \
        "percentile while training" in caplog.text
    from exodf.training_files import prepare_movie

    m = prepare_movie(movie, read_events(e0))
    o = static_outliers(movie)
    assert o is not None and np.asarray(m.frames)[:, 3, 28].max() <= 1.0  # what the network is shown
