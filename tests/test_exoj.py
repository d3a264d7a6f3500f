"""ExoJ's "Exocytosis List" export: written here byte for byte as ExoJ's SaveUtils writes it."""

from __future__ import annotations

import numpy as np
import pytest

from exodf.errors import ExodfError
from exodf.events import read_events, write_events
from exodf.exoj import looks_like_exoj, parse_exoj

TITLES = ["Ref", "Property", "Begin Frame", "Duration", "Peak Frame", "Position (x)", "Position (y)",
          "Max. Displacement (pixels)", "Tau (sec)", "R Square for Decay Est.", "dF/Sigma (MAD)",
          "Decay Function", "F0", "Delta F", "R Square Gaussian fit", "Est. Size (FWHM \u00b5m)"]
# what Java's String.valueOf gives for ints and doubles (note "12.0", "NaN", "1.0E-4")
ROWS = [
    ["0", "Secretion", "12", "9", "14", "101", "57", "1.4142135623730951", "2.35", "0.9312", "7.25",
     "y=412.5+1803.25*exp(-x/2.35)", "398.0", "1817.75", "0.88", "0.3012"],
    ["3", "Secretion", "1", "6", "2", "5", "190", "0.0", "NaN", "-1.0", "4.1",
     "y=0.0+0.0*exp(-x/0.0)", "250.5", "1.0E-4", "0.71", "0.25"],
    ["7", "Secretion", "180", "20", "185", "44", "0", "2.0", "11.0", "0.81", "3.9",
     "y=100.0+-5.5*exp(-x/11.0)", "1000.0", "640.0", "0.99", "0.5"],
]


def exoj_bytes(titles: list[str] = TITLES, rows: list[list[str]] = ROWS) -> bytes:
    """Java: OutputStreamWriter(..., "unicode"); title+sep for every title; "\\r\\n"; rows joined by sep."""
    text = "".join(t + "," for t in titles) + "\r\n"
    text += "".join(",".join(r) + "\r\n" for r in rows)
    return b"\xfe\xff" + text.encode("utf-16-be")


def test_bytes_are_exojs_layout() -> None:
    raw = exoj_bytes()
    assert raw[:4] == b"\xfe\xff\x00R"  # BOM, then big-endian 'R'
    assert raw.count("\r\n".encode("utf-16-be")) == 4
    assert ",\r\n".encode("utf-16-be") in raw  # the header's trailing comma


def test_parse_exoj_values() -> None:
    raw = exoj_bytes()
    assert looks_like_exoj(raw)
    t = parse_exoj(raw, "list.csv")
    assert len(t) == 3
    np.testing.assert_array_equal(t.x, [101, 5, 44])
    np.testing.assert_array_equal(t.y, [57, 190, 0])
    np.testing.assert_array_equal(t.frame, [13, 1, 184])  # Peak Frame, 1-based -> 0-based
    np.testing.assert_array_equal(t.columns["begin_frame"], [11, 0, 179])
    np.testing.assert_array_equal(t.columns["peak_frame"], t.frame)
    np.testing.assert_array_equal(t.columns["duration"], [9, 6, 20])
    np.testing.assert_array_equal(t.columns["ref"], [0, 3, 7])
    np.testing.assert_allclose(t.columns["max_displacement"], [2 ** 0.5, 0, 2])
    assert np.isnan(t.columns["tau"][1]) and t.columns["tau"][0] == 2.35
    np.testing.assert_array_equal(t.columns["decay_r2"], [0.9312, -1.0, 0.81])
    np.testing.assert_array_equal(t.columns["df_sigma"], [7.25, 4.1, 3.9])
    np.testing.assert_array_equal(t.columns["decay_offset"], [412.5, 0.0, 100.0])
    np.testing.assert_array_equal(t.columns["decay_amplitude"], [1803.25, 0.0, -5.5])
    np.testing.assert_array_equal(t.columns["f0"], [398.0, 250.5, 1000.0])
    np.testing.assert_array_equal(t.columns["delta_f"], [1817.75, 1e-4, 640.0])
    np.testing.assert_array_equal(t.columns["gaussian_r2"], [0.88, 0.71, 0.99])
    np.testing.assert_array_equal(t.columns["size_fwhm"], [0.3012, 0.25, 0.5])
    assert "property" not in t.columns
    # units as exodf writes them into headings: ExoJ's "sec", "pixels", "FWHM µm"
    assert t.units == {"tau": "s", "max_displacement": "px", "size_fwhm": "\u00b5m"}
    begin = parse_exoj(raw, "list.csv", frame="begin")
    np.testing.assert_array_equal(begin.frame, [11, 0, 179])


def test_read_events_dispatches_to_exoj(tmp_path) -> None:
    f = tmp_path / "cell 1_secretions.csv"
    f.write_bytes(exoj_bytes())
    t = read_events(f)
    np.testing.assert_array_equal(t.frame, [13, 1, 184])
    # and the table written as an ImageJ Results table keeps positions, slices and measurements
    out = write_events(t, tmp_path / "as_imagej.csv")
    back = read_events(out)
    np.testing.assert_array_equal(back.slice, [14, 2, 185])
    np.testing.assert_array_equal(back.x, t.x)
    np.testing.assert_array_equal(back.columns["df_sigma"], [7.25, 4.1, 3.9])


def test_little_endian_and_utf8_resaves() -> None:
    text = "".join(t + "," for t in TITLES) + "\r\n" + "".join(",".join(r) + "\r\n" for r in ROWS)
    for raw in (b"\xff\xfe" + text.encode("utf-16-le"), text.encode("utf-8")):
        assert looks_like_exoj(raw)
        np.testing.assert_array_equal(parse_exoj(raw).x, [101, 5, 44])


def test_older_exoj_columns() -> None:
    titles = [" Ref", "Property", "Begin Frame", "End frame", "Peak Frame", "Position (x)", "Position (y)",
              "Max. Displacement (pixels)", "Est. Radius (um)", "R Square for Est. radius", "Tau (sec)",
              "R Square for Decay Est.", "dF/Sigma (MAD)", "Decay Function", "F0", "Delta F"]
    rows = [["1", "Secretion", "4", "10", "6", "12", "13", "0.0", "0.2", "0.8", "3.0", "0.95", "5.0",
             "y=1.0+2.0*exp(-x/3.0)", "10.0", "20.0"]]
    t = parse_exoj(exoj_bytes(titles, rows))
    assert (t.x[0], t.y[0], t.frame[0]) == (12, 13, 5)
    assert t.columns["end_frame"][0] == 9 and t.columns["radius"][0] == 0.2
    assert t.columns["gaussian_r2"][0] == 0.8 and t.columns["ref"][0] == 1


def test_not_exoj_and_damaged(tmp_path) -> None:
    assert not looks_like_exoj(b" ,X,Y,Slice\n1,2,3,4\n")
    assert not looks_like_exoj(b"\x00\x01\x02\xff" * 10)
    cut = exoj_bytes(rows=[ROWS[0][:7]])
    with pytest.raises(ExodfError, match=r"line 2: 7 fields but the header has 16"):
        parse_exoj(cut, tmp_path / "cut.csv")
    bad = [r[:] for r in ROWS]
    bad[1][5] = "abc"
    with pytest.raises(ExodfError, match=r"line 3: 'Position \(x\)' is 'abc'"):
        parse_exoj(exoj_bytes(rows=bad), "bad.csv")
    with pytest.raises(ExodfError, match="not an ExoJ"):
        parse_exoj(b"X,Y\n1,2\n", "plain.csv")
    # two titles for one of ExoJ's values (an older and a newer name, or a column pasted twice)
    twice = TITLES[:9] + ["Tau (sec)"] + TITLES[10:]
    with pytest.raises(ExodfError, match=r"twice.csv: the columns 'Tau \(sec\)' and 'Tau \(sec\)' both hold "
                       r"ExoJ's 'tau'; delete one"):
        parse_exoj(exoj_bytes(twice), "twice.csv")
    older = TITLES + ["R Square for Est. radius"]
    with pytest.raises(ExodfError, match=r"'R Square Gaussian fit' and 'R Square for Est. radius' both hold"):
        read_events(_write(tmp_path / "older.csv", exoj_bytes(older)))
    # untitled columns (a spreadsheet's): passed over, not refused as "'' and '' both hold ExoJ's ''"
    blank = exoj_bytes(TITLES[:3] + ["", " "] + TITLES[3:], [r[:3] + ["1", ""] + r[3:] for r in ROWS])
    assert parse_exoj(blank, "blank.csv") == parse_exoj(exoj_bytes(), "plain.csv")


def _write(path, raw: bytes):  # type: ignore[no-untyped-def]
    path.write_bytes(raw)
    return path


# -- waiting for ExoJ's export in the user's Fiji ----------------------------------------------------
def test_wait_for_export_returns_the_finished_list(tmp_path) -> None:
    from exodf.exoj import folder_state, wait_for_export

    since = folder_state(tmp_path)
    (tmp_path / "notes.txt").write_text("not a list")
    target = tmp_path / "movie.tif_secretions.csv"
    calls: list[float] = []

    def fake_sleep(s: float) -> None:  # ExoJ writes the list while we wait
        calls.append(s)
        if len(calls) == 1:
            target.write_bytes(exoj_bytes())

    assert wait_for_export(tmp_path, since, timeout=30, poll=0.01, settle=0.0, sleep=fake_sleep) == target
    assert len(calls) >= 1
    with pytest.raises(ExodfError, match="no ExoJ exocytosis list appeared within 0 s"):
        wait_for_export(tmp_path, folder_state(tmp_path), timeout=0, poll=0.01, sleep=lambda s: None)
    with pytest.raises(ExodfError, match="does not exist"):
        wait_for_export(tmp_path / "missing", since)


def test_wait_for_export_compares_with_the_folder_before(tmp_path) -> None:
    """An old list already there is not the answer; a new one counts even with an old time stamp."""
    import os

    from exodf.exoj import folder_state, wait_for_export

    old = tmp_path / "last_week.csv"
    old.write_bytes(exoj_bytes())
    before = folder_state(tmp_path)
    with pytest.raises(ExodfError, match="no ExoJ exocytosis list appeared"):
        wait_for_export(tmp_path, before, timeout=0, poll=0.01, settle=0.0, sleep=lambda s: None)
    new = tmp_path / "copied.csv"  # e.g. copied with its attributes from a share whose clock is behind
    new.write_bytes(exoj_bytes())
    os.utime(new, ns=(10**18, 10**18))
    os.utime(old, ns=(2 * 10**18, 2 * 10**18))  # touched but unchanged size: its (size, mtime) differ, it counts
    found = wait_for_export(tmp_path, before, timeout=5, poll=0.01, settle=0.0, sleep=lambda s: None)
    assert found in (new, old)
    os.utime(old, ns=before["last_week.csv"][1:] * 2)
    assert wait_for_export(tmp_path, before, timeout=5, poll=0.01, settle=0.0, sleep=lambda s: None) == new


def test_run_exoj_explains_what_is_missing(tmp_path, monkeypatch) -> None:
    import sys

    from exodf import fiji
    from exodf.exoj import run_exoj

    movie = tmp_path / "m.tif"
    movie.write_bytes(b"II*\x00")
    app = tmp_path / "Fiji.app"
    (app / "jars").mkdir(parents=True)
    monkeypatch.delenv("EXODF_FIJI", raising=False)
    with pytest.raises(ExodfError, match="needs a Fiji with ExoJ"):
        run_exoj(movie, None)
    with pytest.raises(ExodfError, match="ExoJ is not installed in this Fiji"):
        run_exoj(movie, app)
    (app / "plugins").mkdir()
    (app / "plugins" / "ExocytosisAnalyzer-V1.90.jar").write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "imagej", None)  # pyimagej absent
    monkeypatch.setattr(fiji, "_SESSION", [])
    with pytest.raises(ExodfError, match="pip install pyimagej"):
        run_exoj(movie, app)


def test_the_tracking_list_is_not_taken_for_the_exocytosis_list() -> None:
    """ExoJ's tracking list (every candidate before its exocytosis tests) has a Begin Frame but no Peak Frame."""
    from exodf.exoj import is_exocytosis_list

    tracking = exoj_bytes(["Ref", "Begin Frame", "Duration", "Position (x)", "Position (y)"],
                          [["1", "3", "4", "5", "6"]])
    assert looks_like_exoj(tracking) and not is_exocytosis_list(tracking) and is_exocytosis_list(exoj_bytes())
    with pytest.raises(ExodfError, match="without 'Peak Frame' \\(its tracking list"):
        parse_exoj(tracking, "cell1_tracking.csv")
    assert parse_exoj(tracking, "cell1_tracking.csv", frame="begin").frame[0] == 2


def test_a_windows_resave_is_read() -> None:
    """Excel on Windows re-saves the list in cp1252 (the µ of 'Est. Size (FWHM µm)' is one byte)."""
    text = "".join(t + "," for t in TITLES) + "\r\n" + "".join(",".join(r) + "\r\n" for r in ROWS)
    t = parse_exoj(text.encode("cp1252"), "resaved.csv")
    np.testing.assert_array_equal(t.x, [101, 5, 44])


@pytest.mark.parametrize("sep", [";", "\t"])
def test_an_excel_resave_with_semicolons_or_tabs_and_decimal_commas_is_read(sep: str) -> None:
    rows = [[c.replace(".", ",") for c in r] for r in ROWS]  # Excel in a decimal-comma locale
    text = sep.join(TITLES) + "\r\n" + "".join(sep.join(r) + "\r\n" for r in rows)
    raw = text.encode("cp1252")
    assert looks_like_exoj(raw)
    t = parse_exoj(raw, "resaved.csv")
    ref = parse_exoj(exoj_bytes())
    np.testing.assert_array_equal(t.x, ref.x)
    np.testing.assert_array_equal(t.frame, ref.frame)
    for k in ("max_displacement", "decay_offset", "decay_amplitude", "delta_f", "size_fwhm"):
        np.testing.assert_array_equal(t.columns[k], ref.columns[k])


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
def test_a_position_java_could_not_fit_is_one_error_naming_the_line(value: str, tmp_path) -> None:
    bad = [r[:] for r in ROWS]
    bad[2][5] = value  # Position (x) of the third event: line 4
    with pytest.raises(ExodfError, match=r"cell1\.csv, line 4: an event without a finite position or frame"):
        parse_exoj(exoj_bytes(rows=bad), tmp_path / "cell1.csv")
    f = tmp_path / "cell1.csv"
    f.write_bytes(exoj_bytes(rows=bad))
    with pytest.raises(ExodfError, match="fix or delete that line"):
        read_events(f)


def test_quoted_cells_empty_excel_rows_and_thousands_separators_are_read() -> None:
    """LibreOffice/pandas quote text cells; Excel leaves ';;;;' rows under a table and may group thousands."""
    ref = parse_exoj(exoj_bytes())
    quoted = "".join(f'"{t}",' for t in TITLES) + "\r\n"
    quoted += "".join(",".join(f'"{c}"' if not c[:1].isdigit() else c for c in r) + "\r\n" for r in ROWS)
    t = parse_exoj(quoted.encode("utf-8"), "quoted.csv")
    assert t == ref
    rows = [[c.replace(".", ",") for c in r] for r in ROWS]
    rows[0][12] = "1.398,0"  # F0 with Excel's thousands separator
    text = ";".join(TITLES) + "\r\n" + "".join(";".join(r) + "\r\n" for r in rows) + ";" * 15 + "\r\n" * 2
    t = parse_exoj(text.encode("cp1252"), "excel.csv")
    np.testing.assert_array_equal(t.x, ref.x)
    np.testing.assert_array_equal(t.columns["f0"], [1398.0, 250.5, 1000.0])
    # a damaged line is still named by its line number in the file
    text = ";".join(TITLES) + "\r\n\r\n" + ";".join(rows[0][:5]) + "\r\n"
    with pytest.raises(ExodfError, match="cut.csv, line 3: 5 fields but the header has 16"):
        parse_exoj(text.encode("utf-8"), "cut.csv")
