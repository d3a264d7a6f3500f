"""``exodf detect`` end to end, as a user runs it: files in, tables out, one-line errors, atomic output."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from exodf.errors import ExodfError
from exodf.events import read_events
from clirun import exodf_in_process, exodf_process
from puffs import puff_movie

pytestmark = pytest.mark.weights


# in this process (what a command computes and says); exodf_process where the program itself is tested
_exodf = exodf_in_process


@pytest.fixture(scope="module")
def movies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("movies") / "my movies"  # a space in the path
    d.mkdir()
    tifffile.imwrite(d / "cell 1.tif", puff_movie(0), imagej=True, metadata={"axes": "TYX"})
    tifffile.imwrite(d / "cell2.tif", puff_movie(1, size=60))  # 60 px: not a multiple of 4
    return d


def test_detect_one_movie_with_probabilities(movies: Path, weights_path: Path, tmp_path: Path) -> None:
    out, probs = tmp_path / "ev.csv", tmp_path / "p.tif"
    r = exodf_process("detect", movies / "cell 1.tif", "-o", out, "--probabilities", probs, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = re.search(r"cell 1\.tif: (\d+) events \(([\d.]+) per frame\) in [\d.]+ s -> ", r.stdout)
    assert m, r.stdout
    table = read_events(out)
    assert len(table) == int(m.group(1)) >= 2
    assert out.read_text().startswith(" ,X,Y,Slice,Score,Size\n")
    with tifffile.TiffFile(probs) as t:
        assert t.is_imagej and t.series[0].axes == "TCYX"
        p = t.asarray()
    assert p.shape == (30, 3, 64, 64)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)
    # every event sits on exocytosis voxels of the written probability map
    for x, y, f in zip(table.x, table.y, table.slice - 1):
        assert p[f, 2, int(round(y)), int(round(x))] > 0.2


def test_detect_folder_into_folder(movies: Path, weights_path: Path, tmp_path: Path) -> None:
    r = _exodf("detect", movies, "-o", tmp_path / "out", "--format", "xml", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cell 1_events.xml", "cell2_events.xml"]
    assert len(r.stdout.strip().splitlines()) == 2
    r = _exodf("detect", movies, "-o", tmp_path / "csv", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("cell 1", "cell2"):  # the XML holds the movie's own events, as the CSV does
        xml = read_events(tmp_path / "out" / f"{name}_events.xml")
        csv = read_events(tmp_path / "csv" / f"{name}_events.csv")
        assert len(xml) == len(csv) >= 2
        np.testing.assert_allclose(np.c_[xml.x, xml.y], np.c_[csv.x, csv.y], atol=1e-3)
        np.testing.assert_array_equal(np.floor(xml.frame + 0.5), csv.frame)  # XML keeps the mean-shift frame


def test_filters_and_calibration_keep_exactly_the_events_they_describe(movies: Path, weights_path: Path,
                                                                       tmp_path: Path) -> None:
    """--mask, --exclude-edges, --min-size and --min-score drop the events of the plain table they describe and
    no other; --pixel-size multiplies X and Y."""
    plain_csv = tmp_path / "plain.csv"
    r = _exodf("detect", movies / "cell 1.tif", "-o", plain_csv, "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    plain = read_events(plain_csv)
    assert len(plain) >= 3  # puffs at x 20, 44, 12 (frames 8, 15, 22 of 30)
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255  # the left half: the puff at x 44 lies outside
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    edges = 7  # Slice 1..7 and 24..30 excluded
    out = tmp_path / "filtered.csv"
    r = _exodf("detect", movies / "cell 1.tif", "-o", out, "-q", "--mask", tmp_path / "mask.tif",
               "--exclude-edges", edges, "--pixel-size", 0.16, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    keep = (np.round(plain.x) < 32) & (plain.slice > edges) & (plain.slice <= 30 - edges)
    assert 0 < keep.sum() < len(plain)
    got = read_events(out)
    assert len(got) == keep.sum()
    np.testing.assert_allclose(np.c_[got.x, got.y], 0.16 * np.c_[plain.x, plain.y][keep], atol=1e-3)
    np.testing.assert_array_equal(got.slice, plain.slice[keep])
    # --min-size: events of fewer voxels go, the others stay (and --min-score below every score changes nothing)
    sizes = plain.columns["size"]
    big = tmp_path / "big.csv"
    r = _exodf("detect", movies / "cell 1.tif", "-o", big, "-q", "--min-size", int(sizes.max()), "--min-score", 0.5,
               cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = read_events(big)
    assert plain.columns["score"].min() > 0.5
    np.testing.assert_array_equal(got.slice, plain.slice[sizes == sizes.max()])
    np.testing.assert_array_equal(got.columns["size"], sizes[sizes == sizes.max()])


def test_hot_pixels_are_clipped_and_said(tmp_path: Path, weights_path: Path) -> None:
    """Six hot pixels made the original's normalisation blind the network (0 of 3 puffs); exodf clips them,
    finds the puffs of the clean movie and says where they are; --keep-outliers feeds them as they are."""
    hot = puff_movie(0)
    for y, x in ((5, 5), (33, 30), (58, 40), (10, 30), (45, 58), (25, 50)):
        hot[:, y, x] = 65535
    tifffile.imwrite(tmp_path / "hot.tif", hot)
    r = _exodf("detect", tmp_path / "hot.tif", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "hot.tif: 6 pixel(s) stay far brighter than the cell" in r.stderr and "x 30, y 10" in r.stderr, r.stderr
    assert "clipped to each frame's 99th percentile" in r.stderr
    got = read_events(tmp_path / "hot_events.csv")  # the clean movie's events: its 3 puffs, a frame or two late
    np.testing.assert_allclose(np.c_[got.x, got.y, got.frame], [[20, 20, 9], [44, 40, 16], [12, 30, 23]], atol=0.5)
    r = _exodf("detect", tmp_path / "hot.tif", "-q", "--keep-outliers", "-o", tmp_path / "kept.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "with --keep-outliers they enter the network as they are and can blind it" in r.stderr, r.stderr
    assert len(read_events(tmp_path / "kept.csv")) == 0  # (README: 0 of its 3 puffs)


def test_a_brighter_neighbour_outside_the_mask_is_said(tmp_path: Path, weights_path: Path) -> None:
    movie = puff_movie(0).astype(np.float64)
    movie[:, :, 36:] *= 5  # a neighbouring cell five times brighter
    tifffile.imwrite(tmp_path / "two cells.tif", movie.astype(np.uint16))
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255
    tifffile.imwrite(tmp_path / "cell.tif", mask)
    r = _exodf("detect", tmp_path / "two cells.tif", "--mask", tmp_path / "cell.tif", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"two cells.tif: {64 * 28} pixel(s) outside the cell of --mask {tmp_path / 'cell.tif'} stay brighter " \
        "than the cell (a brighter neighbouring cell?): clipped to each frame's 99th percentile of the rest" \
        in r.stderr, r.stderr
    assert len(read_events(tmp_path / "two cells_events.csv")) == 2


def test_skip_existing_finishes_an_interrupted_folder(movies: Path, weights_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _exodf("detect", movies, "-o", out, "-q", cwd=tmp_path).returncode == 0
    first, second = out / "cell 1_events.csv", out / "cell2_events.csv"
    stamp = first.stat().st_mtime_ns
    second.unlink()  # as if the run had been interrupted before the second movie
    r = _exodf("detect", movies, "-o", out, "-q", "--skip-existing", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"skipped {movies / 'cell 1.tif'}: {first} is already there" in r.stderr
    assert "cell2.tif: " in r.stdout and "cell 1.tif: " not in r.stdout and second.is_file()
    assert first.stat().st_mtime_ns == stamp
    r = _exodf("detect", movies, "-o", out, "-q", "--skip-existing", cwd=tmp_path)
    assert r.returncode == 0 and "nothing to do" in r.stdout, r.stderr
    os.utime(movies / "cell2.tif")  # a movie changed after its table: detected again
    r = _exodf("detect", movies, "-o", out, "-q", "--skip-existing", cwd=tmp_path)
    assert r.returncode == 0 and "cell2.tif: " in r.stdout and "cell 1.tif: " not in r.stdout, r.stderr
    # a second movie that would write a table already there (same name): refused, not written over it
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.tif").write_bytes((movies / "cell2.tif").read_bytes())
    (out / "a_events.csv").write_text("X,Y,Slice\n")
    (other / "a.ome.tif").write_bytes((movies / "cell2.tif").read_bytes())
    r = _exodf("detect", other, "-o", out, "-q", "--skip-existing", cwd=tmp_path)
    assert r.returncode == 1 and "would both write" in r.stderr, r.stderr
    assert (out / "a_events.csv").read_text() == "X,Y,Slice\n"


def test_skip_existing_redoes_a_movie_whose_table_is_an_empty_file(tmp_path: Path) -> None:
    """A 0-byte table (``touch``, another tool's crash) is no table exodf wrote (it always writes a header):
    the movie is detected again. A broken movie shows it without the network: it is read, not skipped."""
    movie, table = tmp_path / "broken.tif", tmp_path / "broken_events.csv"
    movie.write_bytes(b"II*\x00garbage")
    table.write_text(" ,X,Y,Slice\n")  # a table of no event, newer than the movie: done
    stamp = movie.stat().st_mtime
    os.utime(table, (stamp + 10, stamp + 10))
    r = _exodf("detect", movie, "--skip-existing", cwd=tmp_path)
    assert r.returncode == 0 and "nothing to do" in r.stdout, r.stderr
    table.write_bytes(b"")
    os.utime(table, (stamp + 10, stamp + 10))
    r = _exodf("detect", movie, "--skip-existing", cwd=tmp_path)
    assert r.returncode == 1 and "already there" not in r.stderr and "re-save it" in r.stderr, r.stderr


def test_bad_movie_one_line_error_and_no_output(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    r = exodf_process("detect", bad, "-o", tmp_path / "ev.csv", cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "re-save it" in lines[0], r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "ev.csv").exists()


def test_a_bad_movie_among_several_says_what_became_of_the_others(movies: Path, weights_path: Path,
                                                                   tmp_path: Path) -> None:
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    r = _exodf("detect", movies / "cell2.tif", bad, movies / "cell 1.tif", "-o", tmp_path / "out", "-q",
               "--channel", "0", cwd=tmp_path)  # --channel 0: the one channel of each single-channel movie
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "(1 movie(s) done, 1 not started" in lines[0], r.stderr
    assert "rerun with --skip-existing" in lines[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cell2_events.csv"]


def test_several_movies_need_a_folder(movies: Path, tmp_path: Path) -> None:
    r = _exodf("detect", movies / "cell 1.tif", movies / "cell2.tif", "-o", tmp_path / "x.csv", cwd=tmp_path)
    assert r.returncode == 1 and "give -o FOLDER" in r.stderr


def test_interrupted_detection_leaves_no_file(movies: Path, weights_path: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import exodf.jobs as jobs

    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "write_events", interrupted)
    with pytest.raises(KeyboardInterrupt):
        jobs.detect_file(movies / "cell2.tif", tmp_path / "e.csv", probabilities=tmp_path / "p.tif")
    assert list(tmp_path.iterdir()) == []


def test_detect_candidates_tiling_finds_the_default_events(movies: Path, weights_path: Path,
                                                          tmp_path: Path) -> None:
    r = _exodf("detect", movies, "-o", tmp_path / "default", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _exodf("detect", movies, "-o", tmp_path / "fast", "--tiling", "candidates", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("cell 1_events.csv", "cell2_events.csv"):  # cell2: 60 px, not a multiple of 4
        full, fast = read_events(tmp_path / "default" / name), read_events(tmp_path / "fast" / name)
        assert len(full) >= 2
        np.testing.assert_allclose(np.c_[fast.x, fast.y, fast.frame], np.c_[full.x, full.y, full.frame], atol=0.5)


def test_candidates_tiling_needs_the_keras_network(movies: Path, tmp_path: Path) -> None:
    r = _exodf("detect", movies / "cell2.tif", "--tiling", "candidates", "--model", tmp_path / "rdf.yaml",
               "-o", tmp_path / "e.csv", cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "--tiling candidates" in lines[0] and "--model" in lines[0], r.stderr
    assert not (tmp_path / "e.csv").exists()


def test_detect_in_bfloat16_finds_the_float32_events(movies: Path, weights_path: Path, tmp_path: Path) -> None:
    movie = movies / "cell 1.tif"
    r = _exodf("detect", movie, "-o", tmp_path / "f32.csv", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _exodf("detect", movie, "-o", tmp_path / "bf16.csv", "--dtype", "bfloat16", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    full, fast = read_events(tmp_path / "f32.csv"), read_events(tmp_path / "bf16.csv")
    assert len(full) >= 2 and len(fast) == len(full)
    np.testing.assert_allclose(np.c_[fast.x, fast.y, fast.frame], np.c_[full.x, full.y, full.frame], atol=0.5)


@pytest.mark.parametrize("args, says", [
    (["--dtype", "half"], "--dtype 'half': choose float32, bfloat16, float16"),
    (["--dtype", "bfloat16", "--tiling", "original"], "--tiling original reproduces the original, in float32"),
    (["--dtype", "float16", "--model", "rdf.yaml"], "not to a bioimage.io --model"),
])
def test_detect_refuses_a_dtype_it_cannot_honour(movies: Path, tmp_path: Path, args: list[str], says: str) -> None:
    r = _exodf("detect", movies / "cell2.tif", "-o", tmp_path / "e.csv", *args, cwd=tmp_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
    assert not (tmp_path / "e.csv").exists()


@pytest.mark.parametrize("case, says", [
    ("events-is-movie", "m.tif: name the event table .csv, .txt or .xml, or give a folder"),
    ("events-is-tif", "-o e.tif: name the event table .csv"),  # it made a folder 'e.tif'
    ("probabilities-is-movie", "this output is also an input"),
    ("probabilities-not-tif", "--probabilities p.csv: the probabilities are an ImageJ hyperstack TIFF"),
    ("probabilities-is-events", "--probabilities e.csv: the probabilities are an ImageJ hyperstack TIFF"),
    ("under-a-file", "is a file, so no folder can be made there"),
    ("folder", "is a folder; give a file name"),
])
def test_outputs_are_checked_before_any_work(movies: Path, tmp_path: Path, case: str, says: str) -> None:
    movie = tmp_path / "m.tif"
    movie.write_bytes((movies / "cell2.tif").read_bytes())
    before = movie.read_bytes()
    (tmp_path / "m_events.csv").mkdir()  # a folder where the default event table would go
    args = {"events-is-movie": ["-o", movie], "events-is-tif": ["-o", "e.tif"],
            "probabilities-is-movie": ["-o", tmp_path / "e.csv", "--probabilities", movie],
            "probabilities-not-tif": ["-o", tmp_path / "e.csv", "--probabilities", "p.csv"],
            "probabilities-is-events": ["-o", "e.csv", "--probabilities", "e.csv"],
            "under-a-file": ["-o", movie / "e.csv"], "folder": []}[case]
    r = _exodf("detect", movie, *args, "--weights", tmp_path / "never-loaded.h5", cwd=tmp_path)
    assert r.returncode == 1 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert movie.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif", "m_events.csv"]


@pytest.mark.parametrize("args, says", [
    (["-o", "e.xml"], "add --format xml"),
    (["-o", "e.csv", "--format", "xml"], "name the output .xml"),
    (["-o", "e.txt", "--format", "original-csv"], "name the output .csv"),
    (["-o", "e.xml", "--format", "xml", "--pixel-size", "0.16"], "--pixel-size calibrates ImageJ tables"),
    (["-o", "e.csv", "--model", "m.zip", "--weights", "w.h5"], "give --model or --weights, not both"),
    (["-o", "e.csv", "--min-score", "2"], "invalid option: --min-score must be within [0, 1], got 2"),
    (["-o", "e.csv", "--tiling", "original", "--patch-size", "30"], "invalid option: --patch-size must be"),
    # options that did nothing with the tiling chosen
    (["-o", "e.csv", "--patch-size", "64"], "--patch-size sets the original's patches, for --tiling original only"),
    (["-o", "e.csv", "--tiling", "original", "--tile", "2,64,64"], "--tiling original takes --patch-size"),
])
def test_output_format_and_name_agree(movies: Path, tmp_path: Path, args: list[str], says: str) -> None:
    r = _exodf("detect", movies / "cell2.tif", *args, "--weights", tmp_path / "never-loaded.h5", cwd=tmp_path)
    assert r.returncode == 1 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_small_original_patches_are_said_to_cost_more(movies: Path, tmp_path: Path) -> None:
    r = _exodf("detect", movies / "cell2.tif", "-o", "e.csv", "--tiling", "original", "--patch-size", "64",
               "--weights", tmp_path / "never-loaded.h5", cwd=tmp_path)
    assert r.returncode == 1 and "note: --patch-size 64 makes the network do about 76x the work of the original's " \
        "160" in r.stderr, r.stderr
    from exodf.jobs import DetectRequest

    with pytest.raises(ExodfError, match="a bioimage.io --model runs on receptive-field tiles of its own: drop --tile"):
        DetectRequest(model=tmp_path / "m.zip", tile=(2, 64, 64)).config()
    assert DetectRequest().config().inference.patch == 160  # the defaults stand when no option is given


def test_dark_frames_are_warned_and_edges_must_leave_frames(weights_path: Path, tmp_path: Path) -> None:
    movie = puff_movie(2)
    movie[:3] = np.random.default_rng(0).poisson(100, movie[:3].shape)  # shutter still closed
    tifffile.imwrite(tmp_path / "m.tif", movie)
    r = _exodf("detect", tmp_path / "m.tif", "-o", tmp_path / "e.csv", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "3 frame(s) far darker than the others (Slice 1-3): events on them are lost, and the frames just " \
           "after can show false events (every spot seems to appear; Slice 4-6)" in r.stderr, r.stderr
    assert "uniform" not in r.stderr
    flash = puff_movie(2)
    flash[20] = 65535  # a saturated frame becomes 0 when normalised, as a dark one does: said as well
    tifffile.imwrite(tmp_path / "flash.tif", flash)
    r = _exodf("detect", tmp_path / "flash.tif", "-o", tmp_path / "g.csv", "-q", cwd=tmp_path)
    assert r.returncode == 0 and "1 frame(s) uniform (no contrast: saturated or constant) (Slice 21)" in r.stderr, \
        r.stderr
    assert "Slice 22-24)" in r.stderr
    r = _exodf("detect", tmp_path / "m.tif", "-o", tmp_path / "f.csv", "--exclude-edges", "15", cwd=tmp_path)
    assert r.returncode == 1 and "--exclude-edges 15 leaves none of its 30 frames" in r.stderr
    assert not (tmp_path / "f.csv").exists()


def test_an_interrupt_among_several_movies_says_what_is_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after the first of three movies said only 'no partial output was written', although one table
    was written and complete: it now says how many are done and how to do the rest."""
    from typer.testing import CliRunner

    import exodf.jobs as jobs
    from exodf.cli import app
    from exodf.io import write_tiff

    for name in ("a", "b", "c"):
        write_tiff(tmp_path / f"{name}.tif", np.zeros((4, 16, 16), np.uint16))

    def detect_file(movie: Path, target: Path, *a: object, **k: object) -> tuple[int, int]:
        if movie.name != "a.tif":
            raise KeyboardInterrupt
        target.parent.mkdir(exist_ok=True)
        target.write_text("X,Y,Slice\n")
        return 0, 4

    monkeypatch.setattr(jobs, "detect_file", detect_file)
    r = CliRunner().invoke(app, ["detect", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), str(tmp_path / "c.tif"),
                                 "-o", str(tmp_path / "out"), "-q"])
    assert r.exit_code == 130, r.output
    assert "exodf: 1 of 3 movies done (their tables are complete); rerun the same command with --skip-existing" \
        in r.output, r.output


def test_an_interrupted_batch_says_what_is_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import exodf.batch as batch
    from exodf.cli import app
    from exodf.io import write_tiff

    for name in ("a", "b", "c"):
        write_tiff(tmp_path / "in" / f"{name}.tif", np.zeros((4, 16, 16), np.uint16))

    def detect_batch(paths, outputs, req, scheduler, workers, report):  # type: ignore[no-untyped-def]
        report(batch.BatchResult(paths[0], outputs[0], n_frames=4), 1, 3)
        report(batch.BatchResult(paths[1], outputs[1], error="broken"), 2, 3)
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "detect_batch", detect_batch)
    r = CliRunner().invoke(app, ["detect", "--batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q"])
    assert r.exit_code == 130 and "exodf: 1 of 3 movies done" in r.output and "--skip-existing" in r.output, r.output
