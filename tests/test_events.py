"""Event tables: every reader and writer, against files in the formats ImageJ and the original write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exodf.errors import ExodfError
from exodf.events import EventTable, format_imagej, read_events, write_events

# Saved by ImageJ 1.53t (File > Save As in a Results window) for a table with X, Y, Slice:
IMAGEJ_CSV = " ,X,Y,Slice\n1,137.529,115.256,106\n2,150.453,39.155,181\n3,116.291,28.451,1\n"
# ImageJ's .xls/.txt Results export (tab-separated, row numbers, extra column):
IMAGEJ_TXT = " \tX\tY\tSlice\tMean\n1\t10.5\t20.25\t3\t101.7\n2\t11\t21\t4\t99\n"
# the original's detections (edf_generate_annotation): exocytosis written as class_label 1
ORIGINAL_XML = """<objlist>
  <object class_label="1" x="77.692" y="114.589" z="17.953" cluster_size="154"/>
  <object class_label="1" x="166.889" y="118.869" z="20.646" cluster_size="99"/>
</objlist>
"""
ORIGINAL_CSV = "tomo_idx,class_label,x,y,z\n0,1,12.5,13.5,4.0\n0,1,20,30,0\n"
# the original's training annotations (merged_annotation.xml): the network's classes, 1 bright spot, 2 exocytosis
ANNOTATION_XML = """<objlist>
  <object tomo_idx="0" class_label="1" x="5" y="6" z="7"/>
  <object tomo_idx="0" class_label="2" x="77.692" y="114.589" z="17.953"/>
  <object tomo_idx="0" class_label="1" x="8" y="9" z="10"/>
  <object tomo_idx="0" class_label="2" x="166.889" y="118.869" z="20.646"/>
</objlist>
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode())
    return p


def test_read_imagej_csv_slice_is_one_based(tmp_path: Path) -> None:
    t = read_events(_write(tmp_path, "r.csv", IMAGEJ_CSV))
    assert len(t) == 3
    np.testing.assert_allclose(t.x, [137.529, 150.453, 116.291])
    np.testing.assert_allclose(t.y, [115.256, 39.155, 28.451])
    np.testing.assert_allclose(t.frame, [105, 180, 0])
    np.testing.assert_array_equal(t.slice, [106, 181, 1])


def test_lower_case_frame_is_exodf_s_0_based_frame(tmp_path: Path) -> None:
    """A table saved from a script with EventTable's own names (x, y, frame) came back a frame early."""
    t = read_events(_write(tmp_path, "s.csv", "x,y,frame\n1,2,0\n3,4,7.5\n"))
    np.testing.assert_array_equal(t.frame, [0, 7.5])
    assert read_events(_write(tmp_path, "ij.csv", "X,Y,Frame\n1,2,1\n")).frame.tolist() == [0]  # ImageJ's
    assert read_events(_write(tmp_path, "sl.csv", "x,y,slice\n1,2,1\n")).frame.tolist() == [0]
    with pytest.raises(ExodfError, match=r"line 2: frame -2, but frames .* start at 0"):
        read_events(_write(tmp_path, "bad.csv", "x,y,frame\n1,2,-2\n"))


def test_read_imagej_tab_with_extra_column_and_crlf(tmp_path: Path) -> None:
    t = read_events(_write(tmp_path, "r.txt", IMAGEJ_TXT.replace("\n", "\r\n")))
    np.testing.assert_allclose(t.x, [10.5, 11])
    np.testing.assert_allclose(t.frame, [2, 3])
    np.testing.assert_allclose(t.columns["mean"], [101.7, 99])


def test_units_are_written_into_headings_and_read_back(tmp_path: Path) -> None:
    t = EventTable([1.0, 2.0], [3.0, 4.0], [0.0, 5.0], {"half_life": [1.5, 2.0], "f0": [10, 20]},
                   {"Half_life": "s"})
    assert t.units == {"half_life": "s"}
    p = write_events(t, tmp_path / "m.csv")
    assert p.read_text().splitlines()[0] == " ,X,Y,Slice,F0,Half_life (s)"
    back = read_events(p)
    assert back == t and back.units == {"half_life": "s"}
    assert back.select([1]).units == {"half_life": "s"}
    assert EventTable.concat([back, EventTable([0.0], [0.0], [0.0])]).units == {"half_life": "s"}
    frames = EventTable([0.0], [0.0], [0.0], {"half_life": [3.0]}, {"half_life": "frames"})
    assert EventTable.concat([back, frames]).units == {}  # s and frames in one column: no unit to give
    # columns renamed on reading (1-based Onset_slice -> onset, Cluster_size -> size) keep their unit
    t = EventTable([1.0], [2.0], [3.0], {"onset": [2.5]}, {"onset": "frames"})
    back = read_events(write_events(t, tmp_path / "o.csv"))
    assert back.columns["onset"][0] == 2.5 and back.units == {"onset": "frames"}
    t = read_events(_write(tmp_path, "c.csv", "X,Y,Slice,Cluster_size (voxels),Peak_slice (frames)\n1,2,3,4,5\n"))
    assert t.columns["size"][0] == 4 and t.columns["peak_frame"][0] == 4
    assert t.units == {"size": "voxels", "peak_frame": "frames"}
    # a unit beside the same name without it (or with another unit): the headings stay apart, as written
    t = read_events(_write(tmp_path, "two.csv", "X,Y,Slice,Tau,Tau (s),Mean [gray],Area [px]\n1,2,3,4,5,6,7\n"))
    assert t.columns["tau"][0] == 4 and t.columns["tau (s)"][0] == 5 and t.columns["mean"][0] == 6
    assert t.units == {"mean": "gray", "area": "px"}
    with pytest.raises(ValueError, match=r"units \['tau'\] name no column"):
        EventTable([1.0], [2.0], [3.0], {}, {"tau": "s"})


def test_read_without_row_numbers_and_calibrated(tmp_path: Path) -> None:
    t = read_events(_write(tmp_path, "r.csv", "X,Y,Slice\n1.6,3.2,5\n"), pixel_size=0.16)
    np.testing.assert_allclose([t.x[0], t.y[0], t.frame[0]], [10, 20, 4])


def test_read_original_xml_keeps_exocytosis_class(tmp_path: Path) -> None:
    t = read_events(_write(tmp_path, "a.xml", ORIGINAL_XML))
    assert len(t) == 2
    np.testing.assert_allclose(t.x, [77.692, 166.889])
    np.testing.assert_allclose(t.frame, [17.953, 20.646])  # z is the 0-based frame
    np.testing.assert_array_equal(t.columns["size"], [154, 99])


def test_read_original_training_annotations_keeps_class_2(tmp_path: Path) -> None:
    """In a training annotation class 1 is the bright spots: reading it as detections swapped the classes."""
    t = read_events(_write(tmp_path, "merged_annotation.xml", ANNOTATION_XML))
    np.testing.assert_allclose(t.x, [77.692, 166.889])
    spots = read_events(_write(tmp_path, "m.xml", ANNOTATION_XML), exocytosis_label=1)
    np.testing.assert_allclose(spots.x, [5, 8])
    csv = "tomo_idx,class_label,x,y,z\n0,1,1,1,1\n0,2,12.5,13.5,4.0\n"
    np.testing.assert_allclose(read_events(_write(tmp_path, "a.csv", csv)).coords(), [[4.0, 13.5, 12.5]])


def test_read_original_csv(tmp_path: Path) -> None:
    t = read_events(_write(tmp_path, "a.csv", ORIGINAL_CSV))
    np.testing.assert_allclose(t.coords(), [[4.0, 13.5, 12.5], [0, 30, 20]])
    with pytest.raises(ExodfError, match="line 3: '0,,20,30,0' has no number in class_label; fix"):
        read_events(_write(tmp_path, "b.csv", ORIGINAL_CSV.replace("0,1,20", "0,,20")))
    for huge in ("inf", "1e400"):  # not a class (and no int): the same one line, not an OverflowError
        with pytest.raises(ExodfError, match=f"line 3: '0,{huge},20,30,0' has no number in class_label; fix"):
            read_events(_write(tmp_path, "c.csv", ORIGINAL_CSV.replace("0,1,20", f"0,{huge},20")))


def test_reference_files_read(reference_dir: Path) -> None:
    gt = read_events(reference_dir / "ground_truth.csv")
    orig = read_events(reference_dir / "original_events.xml")
    assert len(gt) == 32 and len(orig) == 67
    assert gt.frame.min() >= 0 and gt.frame.max() < 200


@pytest.mark.parametrize("name,fmt,row_numbers", [
    ("e.csv", "imagej", True), ("e.csv", "imagej", False), ("e.txt", "imagej", True),
    ("e.xml", "xml", True), ("e.csv", "original-csv", True)])
def test_round_trip(tmp_path: Path, name: str, fmt: str, row_numbers: bool) -> None:
    t = EventTable([1.25, 100.5], [2.5, 7.125], [0, 41], {"size": [12, 40], "score": [0.5, 0.875]})
    back = read_events(write_events(t, tmp_path / name, fmt=fmt, row_numbers=row_numbers))
    np.testing.assert_allclose(back.coords(), t.coords(), atol=1e-3)
    # ImageJ tables keep every column; the original's XML its cluster size; its CSV coordinates only
    kept = {"imagej": ["score", "size"], "xml": ["size"], "original-csv": []}[fmt]
    assert sorted(back.columns) == kept
    if fmt != "original-csv":
        np.testing.assert_array_equal(back.columns["size"], [12, 40])
    if fmt == "imagej":
        np.testing.assert_allclose(back.columns["score"], [0.5, 0.875])


def test_imagej_text_exactly() -> None:
    t = EventTable([1.25], [2.5], [0.0], {"size": [12]})
    assert format_imagej(t) == " ,X,Y,Slice,Size\n1,1.25,2.5,1,12\n"
    assert format_imagej(t, sep="\t", row_numbers=False, pixel_size=0.16) == "X\tY\tSlice\tSize\n0.2\t0.4\t1\t12\n"


def test_calibrated_round_trip(tmp_path: Path) -> None:
    t = EventTable([10.0, 55.5], [20.0, 3.0], [1, 2])
    back = read_events(write_events(t, tmp_path / "c.csv", pixel_size=0.16), pixel_size=0.16)
    np.testing.assert_allclose(back.coords(), t.coords(), atol=1e-3)


def test_headings_with_a_separator_or_quote_keep_the_table_whole(tmp_path: Path) -> None:
    """A column read from a quoted heading ("Mean, ch2") was written unquoted: read back, the header had one
    column more than the rows and the value landed under 'mean'."""
    t = EventTable(np.array([1.0]), np.array([2.0]), np.array([3.0]),
                   {"mean, ch2": np.array([5.5]), 'a"b': np.array([1.0]), "c\td": np.array([2.0])})
    for name in ("h.csv", "h.tsv"):
        write_events(t, tmp_path / name)
        back = read_events(tmp_path / name)
        assert {k: v.tolist() for k, v in back.columns.items()} == {"mean ch2": [5.5], "a b": [1.0], "c d": [2.0]}
    assert (tmp_path / "h.csv").read_text().splitlines()[0] == " ,X,Y,Slice,A b,C d,Mean ch2"
    # a unit with a separator, names that become one heading (or X, or nothing) once cleaned: no column lost
    t = EventTable(np.array([1.0]), np.array([2.0]), np.array([3.0]),
                   {"mean": np.array([5.5]), "mean, ch2": np.array([6.0]), "mean ch2": np.array([7.0]),
                    ",": np.array([8.0]), "x;": np.array([9.0])}, {"mean": "ADU, bg"})
    write_events(t, tmp_path / "u.csv")
    header = (tmp_path / "u.csv").read_text().splitlines()[0]
    assert header == " ,X,Y,Slice,Column,Mean (ADU bg),Mean ch2,Mean ch2 2,X 2"
    back = read_events(tmp_path / "u.csv")
    assert {k: v.tolist() for k, v in back.columns.items()} == {"column": [8.0], "mean": [5.5], "mean ch2": [7.0],
                                                                 "mean ch2 2": [6.0], "x 2": [9.0]}
    assert back.units == {"mean": "ADU bg"} and (back.x[0], back.y[0], back.frame[0]) == (1.0, 2.0, 3.0)


def test_empty_table_round_trip(tmp_path: Path) -> None:
    back = read_events(write_events(EventTable.empty(), tmp_path / "e.csv"))
    assert len(back) == 0


@pytest.mark.parametrize("text,needle", [
    ("", "empty"), ("A,B,C\n1,2,3\n", "lacks the columns X, Y and Slice"),
    ("X,Y\n1,2\n", "lacks the column Slice \\(or Frame\\);"),
    ("X;Slice\n1;2\n", "header 'X;Slice' lacks the column Y;"), (" ,X,Y,Slice\n1,abc,2,3\n", "line 2")])
def test_bad_tables(tmp_path: Path, text: str, needle: str) -> None:
    p = _write(tmp_path, "bad.csv", text)
    with pytest.raises(ExodfError, match=needle) as e:
        read_events(p)
    assert str(p) in str(e.value)


def test_bad_xml_and_missing(tmp_path: Path) -> None:
    with pytest.raises(ExodfError, match="not valid XML"):
        read_events(_write(tmp_path, "bad.xml", "<objlist><object"))
    with pytest.raises(ExodfError, match="not found"):
        read_events(tmp_path / "nope.csv")


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interruption in the middle of writing leaves the old file and no temporary file."""
    target = tmp_path / "e.csv"
    target.write_text("old\n")
    from pathlib import Path as P

    real = P.write_text

    def half_then_interrupt(self: P, text: str, *a: object, **k: object) -> int:
        real(self, text[: len(text) // 2], *a, **k)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(P, "write_text", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_events(EventTable([1, 2], [2, 3], [3, 4]), target)
    monkeypatch.undo()
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["e.csv"]


def test_unreadable_values_in_a_table_are_named(tmp_path) -> None:
    from exodf.errors import ExodfError
    from exodf.events import read_events

    (tmp_path / "nan.csv").write_text(" ,X,Y,Slice\n1,10,10,3\n2,10,nan,4\n")
    with pytest.raises(ExodfError, match=r"nan\.csv, line 3: X, Y or Slice is not a finite number"):
        read_events(tmp_path / "nan.csv")
    (tmp_path / "negative.csv").write_text("X,Y,Slice\n10,10,1\n\n10,10,-3\n")  # a blank line too
    with pytest.raises(ExodfError, match="line 4: Slice -3, but ImageJ slices start at 1"):
        read_events(tmp_path / "negative.csv")
    (tmp_path / "zero.csv").write_text("X,Y,Slice\n10,10,0\n")  # just before the movie (simulated truth)
    assert read_events(tmp_path / "zero.csv").frame[0] == -1
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe" + bytes(range(256)) + b"\x00")
    with pytest.raises(ExodfError, match="binary.csv: starts like utf-16 text but is not"):
        read_events(tmp_path / "binary.csv")


def test_frame_columns_are_1_based_in_imagej_files(tmp_path) -> None:
    from exodf.events import read_events, write_events

    t = EventTable(np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([0.0, 5.0]),
                   {"peak_frame": np.array([0.0, 6.0]), "onset": np.array([-0.3, 4.6]), "fold": np.array([2.0, 3.0])})
    write_events(t, tmp_path / "a.csv")
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == " ,X,Y,Slice,Fold,Onset_slice,Peak_slice"
    assert lines[1] == "1,1,3,1,2,0.7,1"  # Slice, Onset_slice and Peak_slice all count from 1
    back = read_events(tmp_path / "a.csv")
    np.testing.assert_allclose(back.columns["peak_frame"], [0.0, 6.0])
    np.testing.assert_allclose(back.columns["onset"], [-0.3, 4.6])
    # tables written before (0-based Peak_frame) still read as they were meant
    (tmp_path / "old.csv").write_text("X,Y,Slice,Peak_frame\n1,2,3,2\n")
    assert read_events(tmp_path / "old.csv").columns["peak_frame"][0] == 2.0


def test_time_is_the_column_that_varies_when_a_table_has_slice_and_frame(tmp_path) -> None:
    from exodf.errors import ExodfError
    from exodf.events import read_events

    # ImageJ's measurements on a hyperstack: Slice is the z-plane (1), Frame the time point
    (tmp_path / "hyper.csv").write_text(" ,X,Y,Ch,Slice,Frame\n1,5,6,1,1,12\n2,7,8,1,1,30\n")
    np.testing.assert_array_equal(read_events(tmp_path / "hyper.csv").frame, [11, 29])
    (tmp_path / "one.csv").write_text(" ,X,Y,Ch,Slice,Frame\n1,5,6,1,1,12\n")  # one event: Slice 1, Frame 12
    np.testing.assert_array_equal(read_events(tmp_path / "one.csv").frame, [11])
    # a plain stack: time on Slice, Frame constant
    (tmp_path / "stack.csv").write_text(" ,X,Y,Slice,Frame\n1,5,6,4,1\n2,7,8,9,1\n")
    np.testing.assert_array_equal(read_events(tmp_path / "stack.csv").frame, [3, 8])
    (tmp_path / "both.csv").write_text("X,Y,Slice,Frame\n5,6,2,4\n7,8,3,9\n")
    with pytest.raises(ExodfError, match="both Slice and Frame vary"):
        read_events(tmp_path / "both.csv")


def test_european_excel_tables_and_empty_rows(tmp_path) -> None:
    """Excel in a decimal-comma locale saves ';'-separated values with decimal commas, and leaves rows of
    empty cells after the data."""
    t = read_events(_write(tmp_path, "eu.csv", "X;Y;Slice\r\n10,5;20,25;3\r\n;;\r\n"))
    np.testing.assert_allclose([t.x[0], t.y[0], t.frame[0]], [10.5, 20.25, 2])
    t = read_events(_write(tmp_path, "eu.txt", " \tX\tY\tSlice\n1\t1,5\t2\t4\n"))
    np.testing.assert_allclose([t.x[0], t.y[0], t.frame[0]], [1.5, 2, 3])
    t = read_events(_write(tmp_path, "ex.csv", "X,Y,Slice\n10.5,20,3\n,,\n,,\n"))
    assert len(t) == 1
    with pytest.raises(ExodfError, match="decimal commas are read in ';' or tab-separated files only"):
        read_events(_write(tmp_path, "mixed.csv", 'X,Y,Slice\n"10,5",20,3\n'))


def test_units_in_the_header_are_honoured(tmp_path) -> None:
    um = _write(tmp_path, "um.tsv", " \tX (µm)\tY (µm)\tSlice\n1\t1.6\t3.2\t4\n")
    t = read_events(um, pixel_size=0.16)
    np.testing.assert_allclose([t.x[0], t.y[0], t.frame[0]], [10, 20, 3])
    with pytest.raises(ExodfError, match=r"X and Y are in µm .*give the pixel size"):
        read_events(um)
    t = read_events(_write(tmp_path, "px.csv", "X [px],Y [px],Slice\n1.5,3,4\n"), pixel_size=0.16)
    np.testing.assert_allclose([t.x[0], t.y[0]], [1.5, 3])  # said pixels: not divided
    with pytest.raises(ExodfError, match="neither pixels nor µm"):
        read_events(_write(tmp_path, "nm.csv", "X (nm),Y (nm),Slice\n150,300,4\n"))


def test_xml_content_is_read_as_xml_whatever_the_suffix_and_must_be_finite(tmp_path) -> None:
    t = read_events(_write(tmp_path, "d.csv", '<objlist><object class_label="1" x="4" y="5" z="3"/></objlist>'))
    np.testing.assert_allclose([t.x[0], t.y[0], t.frame[0]], [4, 5, 3])
    with pytest.raises(ExodfError, match="not a finite number"):
        read_events(_write(tmp_path, "n.xml", '<objlist><object class_label="1" x="nan" y="5" z="3"/></objlist>'))
    with pytest.raises(ExodfError, match="class_label that is not a number"):
        read_events(_write(tmp_path, "l.xml", '<objlist><object class_label="exo" x="1" y="5" z="3"/></objlist>'))
    with pytest.raises(ExodfError, match="class_label that is not a number"):
        read_events(_write(tmp_path, "i.xml", '<objlist><object class_label="inf" x="1" y="5" z="3"/></objlist>'))


@pytest.mark.parametrize("fmt", ["xml", "original-csv"])
def test_original_formats_keep_sub_frame_precision(tmp_path, fmt: str) -> None:
    """12.4996 is frame 12: written with 3 decimals it read back as 12.500, which rounds to frame 13."""
    t = EventTable(np.array([3.25]), np.array([4.0]), np.array([12.4996]))
    back = read_events(write_events(t, tmp_path / ("e.xml" if fmt == "xml" else "e.csv"), fmt=fmt))
    assert back.slice[0] == t.slice[0] == 13  # Slice = frame 12 + 1
    with pytest.raises(ExodfError, match="calibrates ImageJ tables only"):
        write_events(t, tmp_path / "c.xml", fmt=fmt, pixel_size=0.16)


def test_slice_written_with_decimals_is_still_the_constant_column(tmp_path) -> None:
    t = read_events(_write(tmp_path, "sf.csv", ",X,Y,Slice,Frame\n1,2,3,1.000,5\n"))
    assert t.frame[0] == 4


def test_a_binary_file_is_named_as_such(tmp_path) -> None:
    p = tmp_path / "movie.tif"
    p.write_bytes(b"II*\x00\x08\x00\x00\x00" + bytes(64))
    with pytest.raises(ExodfError, match=r"movie.tif: a binary file \(a TIFF image\?\), not an event table"):
        read_events(p)


def test_ambiguous_commas_units_and_columns(tmp_path) -> None:
    """A comma next to decimal points is a thousands separator, not a decimal: refused, never misread; a
    time column in seconds is refused; a bare X/Y column is preferred to a calibrated one."""
    with pytest.raises(ExodfError, match="has no number"):
        read_events(_write(tmp_path, "th.tsv", "X\tY\tSlice\n10.5\t20.5\t1,234\n"))
    with pytest.raises(ExodfError, match="the time column 'T \\(s\\)' is in 's'"):
        read_events(_write(tmp_path, "ts.csv", "X,Y,T (s)\n1,2,12.4\n"))
    t = read_events(_write(tmp_path, "two.csv", "X (µm),Y (µm),X,Y,Slice\n1.6,3.2,10,20,4\n"))
    np.testing.assert_allclose([t.x[0], t.y[0]], [10, 20])
    with pytest.raises(ExodfError, match="X and Y are in different units"):
        read_events(_write(tmp_path, "mix.csv", "X (µm),Y (px),Slice\n1,2,3\n"))


def test_event_tables_own_their_arrays_and_compare_with_nan() -> None:
    xs = np.array([1.0, 2.0])
    score = np.array([0.5, np.nan])
    t = EventTable(xs, [1, 2], [0, 1], {"Score": score})
    xs[0] = 99.0  # the caller's arrays stay theirs ...
    score[0] = 9.0
    assert t.x[0] == 1.0 and t.columns["score"][0] == 0.5
    with pytest.raises(ValueError, match="read-only"):  # ... and the table does not change
        t.x[0] = 5.0
    assert t == EventTable([1.0, 2.0], [1, 2], [0, 1], {"score": [0.5, np.nan]})  # NaN: unmeasured in both
    assert t != EventTable([1.0, 2.0], [1, 2], [0, 1], {"score": [0.5, 0.7]})
    assert len(t.select([])) == 0 and t.select([]).columns["score"].shape == (0,)
    with pytest.raises(ValueError, match="column 'cond' holds <U4 values .* columns hold numbers"):
        EventTable([1.0], [1.0], [0.0], {"cond": ["ctrl"]})


def test_concat_keeps_every_column() -> None:
    a = EventTable([1.0], [1.0], [0.0], {"score": [0.9]})
    b = EventTable([2.0], [2.0], [3.0], {"onset": [1.0]})
    c = EventTable.concat([a, b])
    assert sorted(c.columns) == ["onset", "score"] and len(c) == 2
    np.testing.assert_array_equal(c.columns["score"], [0.9, np.nan])
    np.testing.assert_array_equal(c.columns["onset"], [np.nan, 1.0])
    assert EventTable.concat([]) == EventTable.empty()


# Results > Summarize in ImageJ appends Mean, SD, Min and Max rows (ij/plugin/filter/Analyzer.summarize)
SUMMARIZED = ("1,29.4324,16.9189,4\n2,20.5294,30.3676,9\nMean,24.9,23.6,6.5\nSD,6.3,9.5,3.5\n"
              "Min,20.5,16.9,4\nMax,29.4,30.3,9\n")


@pytest.mark.parametrize("header,rows", [
    (" ,X,Y,Slice", SUMMARIZED),
    (" ,Label,X,Y,Slice", "".join(f"{k},{lab},{r.split(',', 1)[1]}\n" for k, (lab, r) in enumerate(
        zip(["cell.tif", "cell.tif", "Mean", "SD", "Min", "Max"], SUMMARIZED.splitlines()), start=1)))])
def test_imagej_summary_rows_are_left_out_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          header: str, rows: str) -> None:
    t = read_events(_write(tmp_path, "summ.csv", f"{header}\n{rows}"))
    np.testing.assert_allclose(t.x, [29.4324, 20.5294])
    np.testing.assert_array_equal(t.frame, [3, 8])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{tmp_path / 'summ.csv'}: ImageJ's summary rows (Mean, SD, Min, Max; lines 4-7) are not "
                        "events: left out"]


def test_only_the_trailing_block_of_summary_labels_is_left_out(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    # a cell ROI named 'Max' in the middle is an event; the last row alone is a summary row
    t = read_events(_write(tmp_path, "l.csv", " ,Label,X,Y,Slice\n1,Max,1,2,3\n2,a,4,5,6\n3,Mean,7,8,9\n"))
    np.testing.assert_array_equal(t.x, [1, 4])
    assert "(Mean; line 4)" in caplog.text
    caplog.clear()
    t = read_events(_write(tmp_path, "m.csv", " ,Label,X,Y,Slice\n1,Maximum,1,2,3\n2,max,4,5,6\n"))
    assert len(t) == 2 and not caplog.records  # labels are ImageJ's exactly: no other name is taken


def test_rows_longer_than_the_header_are_refused(tmp_path: Path) -> None:
    euro = _write(tmp_path, "euro.csv", " ,X,Y,Slice\n1,29,4324,16,9189,4\n2,20,5294,30,3676,9\n")
    with pytest.raises(ExodfError) as e:
        read_events(euro)
    assert str(e.value) == (f"{euro}, line 2: 6 fields but the header has 4 (decimal commas in a comma-separated "
                            "file? save it with ';' as the separator, or with decimal points)")
    with pytest.raises(ExodfError, match=r"t\.txt, line 3: 5 fields but the header has 4 \(a value holds the sep"):
        read_events(_write(tmp_path, "t.txt", " \tX\tY\tSlice\n1\t2\t3\t4\n2\t2\t3\t4\t5\n"))
    # empty cells past the header (a trailing comma, Excel's empty cells) are no fields
    t = read_events(_write(tmp_path, "trail.csv", "X,Y,Slice,\n1,2,3,\n4,5,6,,, \n"))
    np.testing.assert_array_equal(t.x, [1, 4])
    t = read_events(_write(tmp_path, "xl.csv", "X;Y;Slice\n1,5;2;3;;\n"))
    assert t.x.tolist() == [1.5]


def test_slice_0_is_read_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Slice 0 is kept (an event just before the first frame), but a table that counts from 0 under the name
    Slice would be read a frame early: say so once per file."""
    p = _write(tmp_path, "t.csv", "X,Y,Slice\n1,2,0\n3,4,5\n5,6,0\n")
    np.testing.assert_array_equal(read_events(p).frame, [-1, 4, -1])
    assert [r.getMessage() for r in caplog.records] == [
        f"{p}: Slice 0 in a 1-based Slice column (ImageJ counts from 1): if this table counts frames from 0, name "
        "the column `frame`"]
    caplog.clear()
    read_events(_write(tmp_path, "f.csv", "x,y,frame\n1,2,0\n"))  # exodf's 0-based frame
    read_events(_write(tmp_path, "s.csv", "X,Y,Slice\n1,2,1\n"))
    assert not caplog.records


def test_exodf_s_own_tables_raise_no_slice_0_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Ground truth peaks at frame 0 or later even for events begun before the movie (their onset < 0 is
    written as Onset_slice, not Slice): reading exodf's tables back warns of nothing."""
    from exodf.simulate import SimParams, simulate

    truth = simulate(SimParams(n_frames=8, height=32, width=32, events_per_frame=4.0), seed=0).truth
    assert (truth.columns["onset"] < 0).any()  # the case that once gave Slice 0
    for name in ("truth.csv", "truth.txt"):
        back = read_events(write_events(truth, tmp_path / name))
        assert len(back) == len(truth) and back.frame.min() >= 0
    assert not caplog.records
