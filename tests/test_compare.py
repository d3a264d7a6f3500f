"""Comparison of methods: parsing, overlap (Venn) counts by hand, tables, figure and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exodf.compare import (MethodSpec, compare_movies, comparison_rows, parse_methods, venn_counts,
                           venn_totals)
from exodf.errors import ExodfError
from exodf.evaluate import match_events
from exodf.events import EventTable, write_events


def test_parse_methods(tmp_path) -> None:
    specs = parse_methods(f"exodf, exoj-like,adae-like,exoj-export={tmp_path}")
    assert specs == [MethodSpec("exodf"), MethodSpec("exoj-like"), MethodSpec("adae-like"),
                     MethodSpec("exoj", tmp_path)]
    with pytest.raises(ExodfError, match="unknown method 'deepfinder'"):
        parse_methods("exodf,deepfinder")
    with pytest.raises(ExodfError, match="each once"):
        parse_methods("exodf,exodf")


def _t(rows: list[tuple[float, float, float]]) -> EventTable:
    a = np.array(rows, dtype=float).reshape(-1, 3)
    return EventTable(a[:, 0], a[:, 1], a[:, 2])


def test_venn_counts_by_hand() -> None:
    gt = _t([(10, 10, 10), (50, 50, 20), (90, 90, 30), (130, 130, 40)])
    a = _t([(10, 11, 10), (50, 50, 21), (200, 200, 5), (300, 300, 50)])   # finds gt 0, 1; FPs at (200,200), (300,300)
    b = _t([(11, 10, 11), (90, 90, 31), (201, 200, 6), (400, 10, 60)])    # finds gt 0, 2; FP (201,200) ~ a's
    m = {"a": match_events(a, gt), "b": match_events(b, gt)}
    v = venn_counts(m)
    assert v["tp"] == {"a&b": 1, "a": 1, "b": 1}
    assert v["fn"] == {"b": 1, "a": 1, "a&b": 1}          # gt1 missed by b, gt2 by a, gt3 by both
    assert v["fp"] == {"a&b": 1, "a": 1, "b": 1}          # the shared FP near (200, 200) counts once


def test_compare_movies_rows_and_seconds() -> None:
    gt = _t([(10, 10, 10), (40, 40, 20)])
    movie = np.zeros((30, 64, 64), np.float32)
    dets = {"perfect": lambda mv: gt, "half": _t([(10, 10, 10), (60, 5, 3)])}
    c = compare_movies([("m1", movie, gt), ("m2", movie, gt)], dets)
    rows = {r["method"]: r for r in comparison_rows(c)}
    assert (rows["perfect"]["tp"], rows["perfect"]["fp"], rows["perfect"]["fn"]) == (4, 0, 0)
    assert rows["perfect"]["f1"] == 1.0 and rows["perfect"]["seconds_per_movie"] >= 0
    assert (rows["half"]["tp"], rows["half"]["fp"], rows["half"]["fn"]) == (2, 2, 2)
    assert rows["half"]["precision"] == 0.5 and rows["half"]["seconds_per_movie"] is None
    assert rows["half"]["pred_rate"] == pytest.approx(4 / 60) and rows["half"]["true_rate"] == pytest.approx(4 / 60)
    assert venn_totals(c)["tp"] == {"perfect&half": 2, "perfect": 2}
    # edges excluded for every method and the ground truth alike
    c2 = compare_movies([("m1", movie, gt)], dets, exclude_edges=5)
    r2 = {r["method"]: r for r in comparison_rows(c2)}
    assert (r2["half"]["tp"], r2["half"]["fp"], r2["half"]["fn"]) == (1, 0, 1)
    assert r2["half"]["true_rate"] == pytest.approx(2 / 20)


def test_cli_compare_with_baselines_and_exoj_export(tmp_path) -> None:
    from typer.testing import CliRunner

    from exodf.cli import app
    from exodf.io import write_tiff
    from test_baselines import puff_movie
    from test_exoj import exoj_bytes

    movie, gt = puff_movie(seed=1)
    write_tiff(tmp_path / "cell1.tif", movie.astype(np.uint16))
    write_events(gt, tmp_path / "cell1_gt.csv")
    # an "ExoJ export" holding the first three ground-truth events (ExoJ's 1-based frames)
    rows = [[str(i), "Secretion", str(int(f) - 1), "8", str(int(f) + 1), str(int(round(x))), str(int(round(y))),
             "0.0", "2.0", "0.9", "5.0", "y=1.0+2.0*exp(-x/2.0)", "10.0", "20.0", "0.8", "0.3"]
            for i, (x, y, f) in enumerate(zip(gt.x[:3], gt.y[:3], gt.frame[:3]))]
    (tmp_path / "exoj").mkdir()
    (tmp_path / "exoj" / "cell1_secretions.csv").write_bytes(exoj_bytes(rows=rows))
    out = tmp_path / "cmp"
    r = CliRunner().invoke(app, ["compare", str(tmp_path / "cell1.tif"), "--gt", str(tmp_path / "cell1_gt.csv"),
                                 "--methods", f"exoj-like,adae-like,exoj-export={tmp_path / 'exoj'}",
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "compare.json").read_text())
    by = {m["method"]: m for m in doc["methods"]}
    assert (by["exoj-like"]["tp"], by["exoj-like"]["fp"], by["exoj-like"]["fn"]) == (6, 0, 0)
    assert (by["exoj"]["tp"], by["exoj"]["fp"], by["exoj"]["fn"]) == (3, 0, 3)
    assert by["exoj"]["seconds_per_movie"] is None and by["adae-like"]["seconds_per_movie"] > 0
    assert doc["overlaps"]["tp"]["exoj-like&adae-like&exoj"] == 3
    assert (out / "compare.png").stat().st_size > 10_000
    assert (out / "compare.csv").read_text().splitlines()[0].startswith("method,n_movies,tp,fp,fn")
    assert "true events found by: exoj-like&adae-like 3, exoj-like&adae-like&exoj 3\n" in r.output
    assert "false positives made by: adae-like 20\n" in r.output
    assert f"-> {out / 'compare.csv'}, {out / 'compare.json'}, {out / 'compare.png'}" in r.output


def test_find_export_by_movie_name_or_by_folder_name(tmp_path) -> None:
    from exodf.compare import find_export
    from exodf.errors import ExodfError
    from test_exoj import exoj_bytes

    exports = tmp_path / "exoj"
    exports.mkdir()
    for name in ("cell1.tif_secretions.csv", "cell10.tif_secretions.csv", "2024.05.01_cell1.tif_secretions.csv",
                 "movie_tr1.csv", "movie_tr2.csv", "tr10.csv"):
        (exports / name).write_bytes(exoj_bytes())
    # beside the movies, as ExoJ saves by default: the movie, a ground truth, ExoJ's tracking list
    (exports / "cell1.tif").write_bytes(b"II*\x00" + bytes(100))
    (exports / "cell1_gt.csv").write_text("X,Y,Slice\n1,2,3\n")
    (exports / "cell1_tracking.csv").write_bytes(exoj_bytes(["Ref", "Begin Frame", "Position (x)", "Position (y)"],
                                                            [["1", "3", "4", "5"]]))
    assert find_export(exports, tmp_path / "cell1.tif", 3).name == "cell1.tif_secretions.csv"  # not cell10
    assert find_export(exports, tmp_path / "cell10.tif", 3).name == "cell10.tif_secretions.csv"
    assert find_export(exports, tmp_path / "2024.05.01_cell1.tif", 3).name == "2024.05.01_cell1.tif_secretions.csv"
    # simulated movies all named movie.tif: their folder names the export, as a whole word (tr1 is not tr10)
    assert find_export(exports, tmp_path / "tr1" / "movie.tif", 3, shared_stem=True).name == "movie_tr1.csv"
    assert find_export(exports, tmp_path / "tr10" / "movie.tif", 3, shared_stem=True).name == "tr10.csv"
    with pytest.raises(ExodfError, match="named after its folder 'tr3'\\), found none among 6 ExoJ list"):
        find_export(exports, tmp_path / "tr3" / "movie.tif", 3, shared_stem=True)
    with pytest.raises(ExodfError, match="named movie\\*\\), found movie_tr1.csv, movie_tr2.csv"):
        find_export(exports, tmp_path / "other" / "movie.tif", 3)
    # files named after the movie but passed over: each with its reason
    (exports / "cell2.csv").write_bytes(b"")
    (exports / "cell2.tif_secretions.xlsx").write_bytes(b"PK\x03\x04")
    (exports / "cell2_tracking.csv").write_bytes((exports / "cell1_tracking.csv").read_bytes())
    (exports / "cell2_notes.txt").write_text("Mean,Area\n1,2\n")
    (exports / "cell2_old.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100))  # Excel 97
    with pytest.raises(ExodfError) as e:
        find_export(exports, tmp_path / "cell2.tif", 3)
    workbook = "a workbook: save it as CSV (ExoJ's own export is a .csv)"
    assert (f"found none among 6 ExoJ list(s) there; passed over cell2.csv: empty; cell2.tif_secretions.xlsx: "
            f"{workbook}; cell2_notes.txt: header 'Mean,Area' is not ExoJ's; cell2_old.xls: {workbook}; "
            "cell2_tracking.csv: ExoJ's tracking list (no Peak Frame): export the exocytosis list"
            in str(e.value)), str(e.value)


def test_compare_checks_everything_before_any_detector_runs(tmp_path, monkeypatch) -> None:
    """An output in the way, a ground truth shared by two movies, one export for two movies: refused before
    the (slow) detectors run, and nothing written."""
    import exodf.compare as compare
    from exodf.compare import compare_files
    from exodf.errors import ExodfError
    from exodf.io import write_tiff
    from test_baselines import puff_movie
    from test_exoj import exoj_bytes

    def never(name: str, weights: object) -> None:
        raise AssertionError("a detector was loaded before the inputs were checked")

    monkeypatch.setattr(compare, "_detector", never)
    movie, gt = puff_movie(seed=1)
    movies = []
    for name in ("tr1", "tr2"):  # two movies named movie.tif, as the simulator writes them
        (tmp_path / name).mkdir()
        write_tiff(tmp_path / name / "movie.tif", movie.astype(np.uint16))
        write_events(gt, tmp_path / name / "ground_truth.csv")
        movies.append(tmp_path / name / "movie.tif")
    gts = [m.parent / "ground_truth.csv" for m in movies]
    (tmp_path / "exoj").mkdir()
    (tmp_path / "exoj" / "movie.tif_secretions.csv").write_bytes(exoj_bytes())  # which movie's?
    (tmp_path / "exoj" / "tr2.csv").write_bytes(exoj_bytes())
    exoj = [MethodSpec("exodf"), MethodSpec("exoj", tmp_path / "exoj")]
    (tmp_path / "afile").write_text("in the way")
    with pytest.raises(ExodfError, match="afile is a file"):
        compare_files(movies, gts, [MethodSpec("exodf")], tmp_path / "afile")
    with pytest.raises(ExodfError, match="the ground truth of both"):
        compare_files(movies, [gts[0], gts[0]], [MethodSpec("exodf")], tmp_path / "out")
    with pytest.raises(ExodfError, match="leave none after --exclude-edges 30"):
        compare_files(movies, gts, [MethodSpec("exodf")], tmp_path / "out", exclude_edges=30)
    with pytest.raises(ExodfError, match=r"expected one ExoJ exocytosis list for .*tr1.movie.tif \(named after its "
                                         r"folder 'tr1'\), found none"):
        compare_files(movies, gts, exoj, tmp_path / "out")  # movie.tif_secretions.csv: not tr1's by name
    (tmp_path / "exoj" / "movie.tif_secretions.csv").rename(tmp_path / "exoj" / "tr1_tr2.csv")
    (tmp_path / "exoj" / "tr2.csv").unlink()
    with pytest.raises(ExodfError, match="tr1_tr2.csv would be the export of"):
        compare_files(movies, gts, exoj, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_compare_names_movies_apart_and_records_the_export(tmp_path) -> None:
    from exodf.compare import compare_files
    from exodf.io import write_tiff
    from test_baselines import puff_movie
    from test_exoj import exoj_bytes

    movie, gt = puff_movie(seed=1)
    rows = [[str(i), "Secretion", str(int(f)), "8", str(int(f) + 1), str(x), str(y), "0.0", "2.0", "0.9", "5.0",
             "y=1.0+2.0*exp(-x/2.0)", "10.0", "20.0", "0.8", "0.3"]
            for i, (x, y, f) in enumerate(zip(gt.x, gt.y, gt.frame))]
    movies = []
    (tmp_path / "exoj").mkdir()
    for name in ("tr1", "tr2"):
        (tmp_path / name).mkdir()
        write_tiff(tmp_path / name / "movie.tif", movie.astype(np.uint16))
        write_events(gt, tmp_path / name / "ground_truth.csv")
        (tmp_path / "exoj" / f"{name}.csv").write_bytes(exoj_bytes(rows=rows))
        movies.append(tmp_path / name / "movie.tif")
    compare_files(movies, [m.parent / "ground_truth.csv" for m in movies],
                  [MethodSpec("exoj-like"), MethodSpec("exoj", tmp_path / "exoj")], tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert [m["movie"] for m in doc["movies"]] == ["tr1/movie", "tr2/movie"]
    assert [Path(m["methods"]["exoj"]["export"]).name for m in doc["movies"]] == ["tr1.csv", "tr2.csv"]
    assert doc["methods"][1]["f1"] == 1.0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["compare.csv", "compare.json", "compare.png"]


@pytest.mark.parametrize("args, says", [
    (["--methods", "exoj-like", "--weights", "w.h5"], "--weights is for the exodf method"),
    (["--methods", "exoj-like", "--calibrated"], "--calibrated and --pixel-size go together"),
    (["--methods", "exoj-like,exoj-export="], "exoj-export= needs a path"),
])
def test_cli_compare_refuses_options_it_would_ignore(tmp_path, args: list[str], says: str) -> None:
    from typer.testing import CliRunner

    from exodf.cli import app

    (tmp_path / "w.h5").write_bytes(b"")
    (tmp_path / "m.tif").write_bytes(b"")
    r = CliRunner().invoke(app, ["compare", str(tmp_path / "m.tif"), *[a if a != "w.h5" else str(tmp_path / a)
                                                                     for a in args]])
    assert r.exit_code == 1 and says in str(r.exception), (r.output, r.exception)


def test_exact_export_names_win_and_movie_names_stay_distinct(tmp_path) -> None:
    from exodf.compare import find_export, movie_names
    from test_exoj import exoj_bytes

    for name in ("control.tif_secretions.csv.csv", "control_2.tif_secretions.csv.csv"):  # ExoJ's double .csv
        (tmp_path / name).write_bytes(exoj_bytes())
    assert find_export(tmp_path, tmp_path / "control.tif", 2).name == "control.tif_secretions.csv.csv"
    assert find_export(tmp_path, tmp_path / "control_2.tif", 2).name == "control_2.tif_secretions.csv.csv"
    names = movie_names([Path("a/x/movie.tif"), Path("b/x/movie.tif"), Path("b/y/cell.tif")])
    assert names == ["a/x/movie", "b/x/movie", "cell"]


def test_overlap_counts_say_none_when_empty() -> None:
    from exodf.cli.compare import overlap_counts

    assert overlap_counts({}) == "none"
    assert overlap_counts({"b": 2, "a&b": 3}) == "a&b 3, b 2"


@pytest.mark.weights
def test_cli_compare_runs_exodf_and_records_its_weights(tmp_path, weights_path, published_net) -> None:
    """compare.json did not say which network made the exodf column (--weights left no trace)."""
    from typer.testing import CliRunner

    from exodf.cli import app
    from exodf.detect import detect_events
    from exodf.evaluate import score_events
    from exodf.io import write_tiff
    from test_baselines import puff_movie

    movie, gt = puff_movie(n_frames=40, seed=3)
    write_tiff(tmp_path / "cell1.tif", movie.astype(np.uint16))
    write_events(gt, tmp_path / "cell1_gt.csv")
    out = tmp_path / "cmp"
    r = CliRunner().invoke(app, ["compare", str(tmp_path / "cell1.tif"), "--gt", str(tmp_path / "cell1_gt.csv"),
                                 "--methods", "exodf,exoj-like", "--weights", str(weights_path), "-o", str(out),
                                 "--exclude-edges", "2"])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "compare.json").read_text())
    assert doc["exodf_weights"] == {"path": str(weights_path), "published": True,
                                    "sha256": "2c811b08a11a661a8129e561452acc567cab583bcf7e3aa8a4cb446c5412d4cc"}
    row = next(m for m in doc["methods"] if m["method"] == "exodf")
    want = score_events(detect_events(movie.astype(np.uint16), published_net).events, gt, 40, 2)
    assert (row["tp"], row["fp"], row["fn"]) == (want.tp, want.fp, want.fn) and want.tp > 0
