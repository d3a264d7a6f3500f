"""Comparison of methods: parsing, overlap (Venn) counts by hand, tables, figure and the CLI."""

from __future__ import annotations

import json

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


def test_find_export_by_movie_name_or_by_folder_name(tmp_path) -> None:
    from exodf.compare import find_export
    from exodf.errors import ExodfError

    exports = tmp_path / "exoj"
    exports.mkdir()
    for name in ("cell1_secretions.csv", "movie_tr1.csv", "movie_tr2.csv", "tr10.csv"):
        (exports / name).write_text("x")
    assert find_export(exports, tmp_path / "cell1.tif", 3).name == "cell1_secretions.csv"
    # simulated movies all named movie.tif: their folder names the export, as a whole word (tr1 is not tr10)
    assert find_export(exports, tmp_path / "tr1" / "movie.tif", 3).name == "movie_tr1.csv"
    assert find_export(exports, tmp_path / "tr10" / "movie.tif", 3).name == "tr10.csv"
    with pytest.raises(ExodfError, match="named movie\\* or after its folder \\(tr3\\), found 2"):
        find_export(exports, tmp_path / "tr3" / "movie.tif", 3)
