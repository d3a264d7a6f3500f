"""The Fiji bridge against real ImageJ 1.x (Debian's imagej package: /usr/share/java/ij.jar + xvfb).

Tests marked ``fiji`` skip when Java, ij.jar, scyjava or xvfb-run is missing here; CI installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exodf import fiji
from exodf.errors import ExodfError
from exodf.events import EventTable, format_imagej, read_events
from exodf.io import write_tiff

REPO = Path(__file__).resolve().parents[1]


def _missing() -> str | None:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (apt-get install default-jre-headless)"
    try:
        fiji.find_ij_jar()
    except ExodfError:
        return "no ij.jar (apt-get install imagej)"
    try:
        import scyjava  # noqa: F401
    except ImportError:
        return "scyjava is not installed (pip install scyjava)"
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run") is None:
        return "no display and no xvfb-run (apt-get install xvfb)"
    return None


def assert_same(a: EventTable, b: EventTable) -> None:
    """Identical values (NaN equal to NaN), same columns."""
    assert len(a) == len(b) and set(a.columns) == set(b.columns)
    for name in ("x", "y", "frame"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for k in a.columns:
        np.testing.assert_array_equal(a.columns[k], b.columns[k])


needs_imagej = pytest.mark.skipif(_missing() is not None, reason=f"ImageJ unavailable: {_missing()}")


# -- errors and macro text (no Java needed) -------------------------------------------------------------
def test_clear_errors_when_imagej_is_missing(tmp_path, monkeypatch) -> None:
    with pytest.raises(ExodfError, match="apt-get install imagej"):
        fiji.find_ij_jar(tmp_path / "nope" / "ij.jar")
    with pytest.raises(ExodfError, match="not a Fiji installation"):
        fiji.find_fiji(tmp_path)
    monkeypatch.setenv("EXODF_FIJI", str(tmp_path / "Fiji.app"))
    with pytest.raises(ExodfError, match="Fiji.app folder"):
        fiji.find_fiji()
    monkeypatch.delenv("EXODF_FIJI")
    assert fiji.find_fiji() is None
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExodfError, match="default-jre-headless"):
        fiji.find_java()


def test_fiji_path_needs_pyimagej(tmp_path, monkeypatch) -> None:
    app = tmp_path / "Fiji.app"
    (app / "jars").mkdir(parents=True)
    monkeypatch.setitem(__import__("sys").modules, "imagej", None)  # as if pyimagej were not installed
    monkeypatch.setattr(fiji, "_SESSION", [])
    with pytest.raises(ExodfError, match="pip install pyimagej"):
        fiji.start_imagej(fiji=app)


def test_macro_text_and_install(tmp_path) -> None:
    cmd = ["C:\\Program Files\\Python\\python.exe", "-m", "exodf"]
    text = fiji.macro_text("exodf_batch.ijm", cmd)
    assert 'var exodfCommand = "C:\\\\Program Files\\\\Python\\\\python.exe\\n-m\\nexodf";' in text
    assert "function exodfExec(a)" in text and "exodfDetect(movie, events, options)" in text
    assert "var exodfRadius = 4.5;" in text and "var exodfAfter = 5;" in text
    with pytest.raises(ExodfError, match="no macros/ folder"):
        fiji.install_macros(tmp_path)
    (tmp_path / "macros").mkdir()
    files = fiji.install_macros(tmp_path, ["/opt/my env/bin/python", "-m", "exodf"])
    assert files == [tmp_path / "macros" / "toolsets" / "exodf.ijm", tmp_path / "macros" / "exodf_batch.ijm"]
    tool = files[0].read_text()
    assert tool.index("var exodfCommand") < tool.index('macro "exodf Detect Action Tool')
    assert '"/opt/my env/bin/python\\n-m\\nexodf"' in tool


# -- real ImageJ -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ij() -> fiji.ImageJ:
    if _missing():
        pytest.skip(f"ImageJ unavailable: {_missing()}")
    return fiji.start_imagej()


@needs_imagej
@pytest.mark.fiji
def test_results_table_round_trip(ij) -> None:
    assert ij.version == "1.53t" or ij.version >= "1.53"
    t = EventTable([10.25, 0.0, 63.123456789], [5.5, 1.0 / 3.0, 2.0], [0.0, 7.0, 39.0],
                   {"score": [0.9, 1.0, np.nan], "size": [12, 7, 300]})
    rt = fiji.events_to_results_table(t, ij)
    assert int(rt.size()) == 3
    assert [str(h) for h in rt.getHeadings()] == ["X", "Y", "Slice", "Score", "Size"]
    assert rt.getValue("Slice", 2) == 40.0 and rt.getValue("Y", 1) == 1.0 / 3.0
    back = fiji.results_table_to_events(rt)
    assert_same(back, t)  # identical values, NaN included
    assert len(fiji.results_table_to_events(fiji.events_to_results_table(EventTable.empty(), ij))) == 0
    # frame columns (exodf measure's peak, a truth's onset) count from 1 like Slice, as in exodf's files
    m = EventTable([4.0], [5.0], [6.0], {"peak_frame": [4.0], "onset": [5.0]})
    mrt = fiji.events_to_results_table(m, ij)
    assert [str(h) for h in mrt.getHeadings()] == ["X", "Y", "Slice", "Onset_slice", "Peak_slice"]
    assert (mrt.getValue("Slice", 0), mrt.getValue("Peak_slice", 0), mrt.getValue("Onset_slice", 0)) == (7, 5, 6)
    assert_same(fiji.results_table_to_events(mrt), m)
    assert format_imagej(m).splitlines()[0] == " ,X,Y,Slice,Onset_slice,Peak_slice"
    bad = ij.jclass("ij.measure.ResultsTable")()
    bad.incrementCounter()
    bad.addValue("Area", 3.0)
    with pytest.raises(ExodfError, match="ImageJ Results table: .* lacks the columns X, Y and Slice"):
        fiji.results_table_to_events(bad)
    # measured calibrated (µm: the table does not say so), and on a hyperstack (Slice = z, Frame = time)
    um = fiji.events_to_results_table(t, ij, pixel_size=0.16)
    assert rt.getValue("X", 0) == 10.25 and um.getValue("X", 0) == pytest.approx(10.25 * 0.16)
    np.testing.assert_allclose(fiji.results_table_to_events(um, pixel_size=0.16).x, t.x, rtol=1e-12)
    hyper = ij.jclass("ij.measure.ResultsTable")()
    for x, frame in ((3.0, 5), (8.0, 9)):
        hyper.incrementCounter()
        hyper.addLabel('"movie"\t.tif:1')  # a quote and a tab in the label (csv quoting)
        for k, v in (("X", x), ("Y", 4.0), ("Slice", 1), ("Frame", frame)):
            hyper.addValue(k, float(v))
    got = fiji.results_table_to_events(hyper)
    assert got.frame.tolist() == [4.0, 8.0] and got.x.tolist() == [3.0, 8.0]
    assert ij.run_macro('return "" + (1 + 2) + getArgument();', "x") == "3x"


@needs_imagej
@pytest.mark.fiji
def test_overlay_saved_and_reopened_in_imagej(ij, tmp_path) -> None:
    movie = tmp_path / "a movie.tif"
    write_tiff(movie, np.arange(10 * 32 * 32, dtype=np.uint16).reshape(10, 32, 32) % 200)
    imp = ij.open_movie(movie)
    # slices 2, 9, 5: frames slice-2..slice+5 clipped to 1..10 -> 7 + 4 + 8 = 19 event-frames
    t = EventTable([3.0, 20.5, 30.0], [4.0, 10.0, 1.0], [1.0, 8.0, 4.0])
    ov = fiji.add_overlay(imp, t, ij=ij)
    assert int(ov.size()) == 19
    first = ov.get(0)
    assert str(first.getName()) == "0001-0004-0003"
    b = first.getFloatBounds()
    assert (b.x, b.y, b.width) == (3.5 - 4.5, 4.5 - 4.5, 9.0)
    tif = fiji.save_overlay(imp, tmp_path / "with overlay.tif", ij=ij)
    zipf = fiji.save_overlay(imp, tmp_path / "rois.zip", ij=ij)
    again = ij.open_movie(tif)
    assert int(again.getOverlay().size()) == 19
    positions = sorted(int(r.getPosition()) for r in again.getOverlay().toArray())
    assert positions == sorted(list(range(1, 8)) + list(range(7, 11)) + list(range(3, 11)))
    macro = tmp_path / "count.ijm"
    macro.write_text('a = split(getArgument(), "\\n");\nopen(a[0]);\nprint("overlay " + Overlay.size);\n'
                     'roiManager("open", a[1]);\nprint("rois " + roiManager("count"));\n')
    p = fiji.run_batch_macro(macro, f"{tif}\n{zipf}", timeout=120)
    assert "overlay 19" in p.stdout and "rois 19" in p.stdout, p.stdout + p.stderr
    with pytest.raises(ExodfError, match=r"\.zip \(ROI set\) or \.tif"):
        fiji.save_overlay(imp, tmp_path / "x.png", ij=ij)
    assert not (tmp_path / "x.png").exists()


@needs_imagej
@pytest.mark.fiji
def test_macro_functions_draw_calibrated_tables_and_save_empty_ones(tmp_path) -> None:
    from importlib import resources

    from exodf.events import write_events

    movie = tmp_path / "a movie.tif"
    write_tiff(movie, np.zeros((10, 32, 32), np.uint16), resolution_um=0.5)
    table = tmp_path / "calibrated.csv"  # as `exodf detect --pixel-size 0.5` writes it: X/Y in µm
    write_events(EventTable([20.0], [10.0], [4.0]), table, pixel_size=0.5)
    empty, saved = tmp_path / "empty.csv", tmp_path / "saved back.csv"
    write_events(EventTable.empty(), empty)
    body = (
        'a = split(getArgument(), "\\n");\nopen(a[0]);\n'
        'exodfLoadResults(a[1]);\n'
        'n = exodfDrawOverlay(exodfTableScale("--quiet\\n--pixel-size\\n0.5"));\n'
        'Overlay.activateSelection(0);\ngetSelectionBounds(x, y, w, h);\n'
        'print("circles " + n + " first at " + x + "," + y + " size " + w);\n'
        'exodfLoadResults(a[2]);\nexodfSaveResults(a[3]);\nprint("rows " + nResults);\n')
    functions = (resources.files("exodf") / "fiji_macros" / "exodf_functions.ijm").read_text()
    macro = tmp_path / "calibrated.ijm"
    macro.write_text("var exodfRadius = 4.5;\nvar exodfBefore = 2;\nvar exodfAfter = 5;\n" + body + functions)
    p = fiji.run_batch_macro(macro, "\n".join(map(str, (movie, table, empty, saved))), timeout=120)
    # (20, 10) px (the table's 10, 5 µm), slice 5: circles on frames 3..10; the oval's bounds start at
    # x + 0.5 - 4.5 (read as pixels they would start at 6, 1)
    assert "circles 8 first at 16,6 size 9" in p.stdout, p.stdout + p.stderr
    assert "rows 0" in p.stdout, p.stdout
    assert len(read_events(saved)) == 0  # the header line alone, readable


@needs_imagej
@pytest.mark.fiji
def test_macro_tables_read_as_exodf_reads_them_and_roi_sets_saved(tmp_path) -> None:
    """The macros' table reader put X on the row numbers of a tab table with an empty first heading, read
    nothing from a table with a byte-order mark, Frame or ';', and drew nothing without a word for a table
    without Slice; the Save command wrote nothing to a name without .zip and emptied the ROI Manager."""
    import re
    from importlib import resources

    movie = tmp_path / "m.tif"
    write_tiff(movie, np.zeros((10, 32, 32), np.uint16))
    tables = {"tab.txt": " \tX\tY\tSlice\tScore\n1\t20\t10\t5\t0.9\n", "bom.csv": "\ufeffX,Y,Slice\n20,10,5\n",
              "frame.csv": "X,Y,Frame\n20,10,5\n", "exodf_frame.csv": "x,y,frame\n20,10,4\n",
              "semicolon.csv": "X;Y;Slice\n20,0;10,0;5\n", "quoted.csv": '"X","Y","Slice"\n20,10,5\n',
              "empty_cell.txt": "X\tY\tLabel\tSlice\n20\t10\t\t5\n",
              # measured on a hyperstack: Slice is the z-plane, Frame the time (drawn on Slice 1 before)
              "hyperstack.csv": " ,Label,X,Y,Slice,Frame\n1,cell 1,20,10,1,5\n",
              "frame_first.csv": "X,Y,Frame,Slice\n20,10,5,1\n"}  # (the z-plane Slice overwrote the time)
    for name, text in tables.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert read_events(tmp_path / name).coords().tolist() == [[4.0, 10.0, 20.0]], name  # what exodf reads
    toolset = (resources.files("exodf") / "fiji_macros" / "exodf_toolset.ijm").read_text()
    save = re.search(r'macro "exodf: Save the overlay as a ROI set" \{(.*?)\n\}', toolset, re.S).group(1)
    save = save.replace('File.saveDialog("ROI set (.zip)")', "a[a.length - 1]")
    body = ('a = split(getArgument(), "|");\nopen(a[0]);\n'
            'for (k = 1; k < a.length - 1; k++) {\n exodfLoadResults(a[k]);\n n = exodfDrawOverlay(1);\n'
            ' Overlay.activateSelection(0);\n getSelectionBounds(x, y, w, h);\n'
            ' print(File.getName(a[k]) + ": " + nResults + " rows, " + n + " circles at " + x + "," + y);\n}\n'
            + save + '\nprint("manager " + roiManager("count") + ", overlay " + Overlay.size);\n')
    functions = (resources.files("exodf") / "fiji_macros" / "exodf_functions.ijm").read_text()
    macro = tmp_path / "tables.ijm"
    macro.write_text("var exodfRadius = 4.5;\nvar exodfBefore = 2;\nvar exodfAfter = 5;\n" + body + functions)
    paths = [movie] + [tmp_path / n for n in tables] + [tmp_path / "rois"]
    p = fiji.run_batch_macro(macro, "|".join(map(str, paths)), timeout=120)
    for name in tables:  # (20, 10) px, Slice 5: circles on frames 3..10, the first at 20 + 0.5 - 4.5 = 16
        assert f"{name}: 1 rows, 8 circles at 16,6" in p.stdout, p.stdout + p.stderr
    assert "manager 0, overlay 8" in p.stdout and (tmp_path / "rois.zip").stat().st_size > 0, p.stdout
    (tmp_path / "abc.csv").write_text("a,b,c\n1,2,3\n")
    p = fiji.run_batch_macro(macro, "|".join(map(str, [movie, tmp_path / "abc.csv", tmp_path / "x"])), timeout=120)
    assert "abc.csv lacks the columns X, Y and Slice (or Frame)" in p.stdout, p.stdout
    (tmp_path / "zt.csv").write_text("X,Y,Slice,Frame\n1,2,1,5\n1,2,2,6\n")  # exodf refuses it too
    p = fiji.run_batch_macro(macro, "|".join(map(str, [movie, tmp_path / "zt.csv", tmp_path / "x"])), timeout=120)
    assert "both Slice and Frame vary in" in p.stdout and "which counts time" in p.stdout, p.stdout


@needs_imagej
@pytest.mark.fiji
def test_macro_tables_keep_text_columns(tmp_path) -> None:
    """A Label column was read as numbers and saved back as NaN."""
    from importlib import resources

    table, saved = tmp_path / "labelled.csv", tmp_path / "saved.csv"
    table.write_text(' ,Label,X,Y,Slice,Frame,Mean\n1,cell 1,20,10,1,5,3.5\n2,"cell, 2",8,9,1,9,NaN\n')
    body = 'a = split(getArgument(), "\\n");\nexodfLoadResults(a[0]);\nexodfSaveResults(a[1]);\n'
    functions = (resources.files("exodf") / "fiji_macros" / "exodf_functions.ijm").read_text()
    macro = tmp_path / "labels.ijm"
    macro.write_text(body + functions)
    p = fiji.run_batch_macro(macro, f"{table}\n{saved}", timeout=120)
    lines = saved.read_text().splitlines()
    assert lines[0] == " ,Label,X,Y,Slice,Mean", p.stdout + p.stderr
    assert lines[1].startswith("1,cell 1,20.000000000,10.000000000,5.000000000,3.5") and \
        lines[2].startswith('2,"cell, 2",8.000000000,9.000000000,9.000000000,NaN'), lines
    assert read_events(saved).coords().tolist() == read_events(table).coords().tolist() == [[4, 10, 20], [8, 9, 8]]


@needs_imagej
@pytest.mark.fiji
def test_toolset_detect_removes_its_copy_and_says_where_the_table_is(tmp_path) -> None:
    """The toolset's Detect left a copy of every unsaved or changed movie in the temporary folder; it deletes
    it, says where the table is and how to keep it, and writes nothing beside the user's movie."""
    import re
    from importlib import resources

    fake = tmp_path / "fake exodf.py"  # stands for exodf detect: writes one event to the -o path
    fake.write_text("import sys\na = sys.argv\nopen(a[a.index('-o') + 1], 'w').write('X,Y,Slice\\n20,10,5\\n')\n"
                    "print('fake detect of', a[a.index('detect') + 1])\n")
    folder = tmp_path / "my data"
    folder.mkdir()
    movie = folder / "cell 1.tif"
    write_tiff(movie, np.zeros((10, 32, 32), np.uint16))
    toolset = (resources.files("exodf") / "fiji_macros" / "exodf_toolset.ijm").read_text()
    functions = toolset[toolset.index("function exodfDetectCurrent"):]
    head = fiji.macro_text("exodf_batch.ijm", [sys.executable, str(fake)])
    head = head[:head.index("\n\n") + 2]  # the settings lines (exodfCommand, radius...)
    body = ('open(getArgument());\nmakeOval(3, 4, 20, 10);\nexodfDetectCurrent();\n'
            'print("rows " + nResults + ", circles " + Overlay.size);\n'
            'getSelectionBounds(x, y, w, h);\nprint("selection " + selectionType() + " " + x + "," + y + "," + w);\n'
            'run("Add...", "value=1 stack");\nexodfDetectCurrent();\n'
            'print("copy left: " + File.exists(getDirectory("temp") + "exodf_cell_1.tif"));\n')
    macro = tmp_path / "detect.ijm"
    macro.write_text(head + body + functions + (resources.files("exodf") / "fiji_macros" /
                                                "exodf_functions.ijm").read_text())
    p = fiji.run_batch_macro(macro, str(movie), timeout=120)
    out = p.stdout + p.stderr
    first = re.search(r"exodf: 1 events in cell 1.tif -> (.*cell 1_exodf_events\.csv)", out)
    assert first is not None and "rows 1, circles 8" in out, out
    assert "selection 1 3,4,20" in out, out  # the user's oval is back (the circles dropped it)
    assert read_events(first.group(1)).coords().tolist() == [[4, 10, 20]]
    assert "X/Y in pixels" in out and "fake detect of" in out and "File > Save As" in out
    assert sorted(p.name for p in folder.iterdir()) == ["cell 1.tif"]  # nothing written beside the movie
    temp = re.search(r"exodf: 1 events in cell 1.tif -> (.*exodf_cell_1_exodf_events\.csv)", out)
    assert temp is not None and "copy left: 0" in out, out


def _small_simulation(folder: Path) -> tuple[Path, EventTable]:
    from exodf.simulate import preset, simulate

    sim = simulate(preset("control", n_frames=40, height=64, width=64), seed=3)
    movie = folder / "small movie.tif"
    write_tiff(movie, sim.movie)
    return movie, sim.truth


@needs_imagej
@pytest.mark.fiji
@pytest.mark.slow
@pytest.mark.weights
def test_batch_macro_runs_exodf_through_exec(tmp_path, weights_path) -> None:
    folder = tmp_path / "dir with spaces"
    folder.mkdir()
    movie, _ = _small_simulation(folder)
    macro = folder / "exodf batch.ijm"
    macro.write_text(fiji.macro_text("exodf_batch.ijm"))
    events, results, overlay = folder / "events.csv", folder / "results back.csv", folder / "overlay.tif"
    arg = "\n".join([f"movie={movie}", f"events={events}", f"results={results}", f"overlay={overlay}",
                     "option=--weights", f"option={weights_path}"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    p = fiji.run_batch_macro(macro, arg, timeout=600, env=env)
    assert p.returncode == 0 and events.is_file(), p.stdout + p.stderr
    written = read_events(events)  # what exodf detect wrote
    back = read_events(results)    # what the macro's Results table held
    assert len(written) > 0
    assert_same(back, written)
    # the overlay: one circle per event and frame (slice-2 .. slice+5 within 1..40)
    expected = sum(len([f for f in range(s - 2, s + 6) if 1 <= f <= 40]) for s in written.slice)
    assert f"exodf_batch: done, {len(written)} events, {expected} overlay circles" in p.stdout
    ij = fiji.start_imagej()
    assert int(ij.open_movie(overlay).getOverlay().size()) == expected


def test_cli_install(tmp_path) -> None:
    from typer.testing import CliRunner

    from exodf.cli import app

    (tmp_path / "Fiji.app" / "jars").mkdir(parents=True)
    (tmp_path / "Fiji.app" / "macros").mkdir()
    r = CliRunner().invoke(app, ["fiji", "install", "--fiji", str(tmp_path / "Fiji.app"),
                                 "--exodf-command", "/no/such/python|-m|exodf"])
    assert r.exit_code == 1 and "'/no/such/python' is not a program here" in str(r.exception)
    assert not (tmp_path / "Fiji.app" / "macros" / "toolsets").exists()
    program = tmp_path / "bin" / "exodf"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    r = CliRunner().invoke(app, ["fiji", "install", "--fiji", str(tmp_path / "Fiji.app"),
                                 "--exodf-command", str(program)])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "Fiji.app" / "macros" / "toolsets" / "exodf.ijm").read_text()
    assert f'var exodfCommand = "{program}";' in text
    # where to find what was installed (it said "Plugins > Macros > Install...", the help "toolbar")
    batch = tmp_path / "Fiji.app" / "macros" / "exodf_batch.ijm"
    assert "choose 'exodf' in the toolbar's >> menu" in r.output and f"exodf fiji macro {batch}" in r.output
    assert 'macro "exodf: Open an event table and draw it"' in text and batch.is_file()


@pytest.mark.fiji
@pytest.mark.skipif(not sys.platform.startswith("linux") or None in map(shutil.which, ("xvfb-run", "xwininfo",
                                                                                        "xdpyinfo")),
                    reason="no xvfb-run or x11-utils (apt-get install xvfb x11-utils)")
def test_the_virtual_screen_takes_a_client_while_the_dialog_watcher_comes_and_goes() -> None:
    """The X server reset each time its last client (the dialog watcher's xwininfo) left, and refused a client
    connecting meanwhile: ImageJ's first dialog failed in CI with "Can't connect to X11 window server"."""
    script = ('while :; do xwininfo -root -tree >/dev/null 2>&1; done & w=$!; refused=0; '
              'for i in $(seq 1000); do xdpyinfo >/dev/null 2>&1 || refused=$((refused + 1)); done; '
              'kill $w; echo "refused $refused of 1000"')
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    p = subprocess.run(fiji.on_virtual_screen(["sh", "-c", script]), capture_output=True, text=True, timeout=300,
                       env=env)
    assert "refused 0 of 1000" in p.stdout, p.stdout + p.stderr  # without -noreset: 0-30 of 1000


@needs_imagej
@pytest.mark.fiji
@pytest.mark.skipif(shutil.which("xwininfo") is None, reason="no xwininfo (apt-get install x11-utils)")
def test_a_macro_error_under_xvfb_is_an_error_at_once(tmp_path, monkeypatch) -> None:
    """ImageJ shows macro errors in a dialog, unseen on the virtual screen: it was a wait for the timeout."""
    import time

    monkeypatch.delenv("DISPLAY", raising=False)
    macro = tmp_path / "bad macro.ijm"
    macro.write_text('print("reached line 1");\nx = noSuchFunction(3);\nprint("never");\n')
    t0 = time.perf_counter()
    with pytest.raises(ExodfError, match=r"bad macro\.ijm: ImageJ stopped the macro with an error dialog .*"
                                         r"last output: reached line 1; run the macro in Fiji"):
        fiji.run_batch_macro(macro, timeout=120)
    assert time.perf_counter() - t0 < 60


@needs_imagej
@pytest.mark.fiji
def test_cli_overlay(ij, tmp_path) -> None:
    from typer.testing import CliRunner

    from exodf.cli import app
    from exodf.events import write_events

    movie = tmp_path / "m.tif"
    write_tiff(movie, np.zeros((6, 16, 16), np.uint16))
    ev = write_events(EventTable([2.0, 8.0], [3.0, 9.0], [0.0, 5.0]), tmp_path / "ev.csv")
    r = CliRunner().invoke(app, ["fiji", "overlay", str(movie), str(ev), "-o", str(tmp_path / "o.zip"),
                                 "--before", "0", "--after", "1"])
    assert r.exit_code == 0, r.output
    assert "2 events, 3 ROIs" in r.output  # frame 1-2 for the first, frame 6 for the second
    import zipfile

    assert sorted(zipfile.ZipFile(tmp_path / "o.zip").namelist()) == [
        "0001-0003-0002.roi", "0002-0003-0002.roi", "0006-0009-0008.roi"]
    # another movie's table: no event inside this one, so no empty ROI set is saved as if all were well
    far = write_events(EventTable([40.0, 50.0], [3.0, 9.0], [0.0, 5.0]), tmp_path / "far.csv")
    r = CliRunner().invoke(app, ["fiji", "overlay", str(movie), str(far), "-o", str(tmp_path / "far.zip")])
    assert r.exit_code == 1 and str(r.exception) == (
        f"{far}: none of its 2 events lies in {movie} (16 x 16 pixels, 6 frames), so there is nothing to draw: "
        "is it this movie's table? (calibrated X/Y: give --pixel-size)"), r.output
    assert not (tmp_path / "far.zip").exists()


def test_cli_checks_outputs_and_tables_before_imagej_or_exoj_start(tmp_path, monkeypatch) -> None:
    """An overlay named .roi was refused only after ImageJ had started and opened the movie; a damaged
    --gt table only after the user had gone through ExoJ's whole wizard."""
    from typer.testing import CliRunner

    import exodf.exoj
    import exodf.fiji
    from exodf.cli import app
    from exodf.errors import ExodfError
    from exodf.events import write_events

    def must_not_start(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("started before the inputs were checked")

    monkeypatch.setattr(exodf.fiji, "start_imagej", must_not_start)
    monkeypatch.setattr(exodf.exoj, "run_exoj", must_not_start)
    movie = tmp_path / "m.tif"
    write_tiff(movie, np.zeros((6, 16, 16), np.uint16))
    ev = write_events(EventTable([2.0], [3.0], [0.0]), tmp_path / "ev.csv")
    r = CliRunner().invoke(app, ["fiji", "overlay", str(movie), str(ev), "-o", str(tmp_path / "o.roi")])
    assert isinstance(r.exception, ExodfError) and "save an overlay as .zip (ROI set) or .tif" in str(r.exception)
    bad = tmp_path / "gt.csv"
    bad.write_text("A,B\n1,2\n")
    r = CliRunner().invoke(app, ["fiji", "exoj", str(movie), "--gt", str(bad)])
    assert isinstance(r.exception, ExodfError) and "gt.csv: header" in str(r.exception), r.output
    # a damaged movie (ImageJ opened its first half and the overlay was saved) and a single image (0 ROIs saved)
    (tmp_path / "cut.tif").write_bytes(movie.read_bytes()[:len(movie.read_bytes()) // 2])
    write_tiff(tmp_path / "one.tif", np.zeros((16, 16), np.uint16), axes="YX")
    for name, says in (("cut.tif", "cut.tif: "), ("one.tif", "one.tif: this is a single 2D image")):
        r = CliRunner().invoke(app, ["fiji", "overlay", str(tmp_path / name), str(ev), "-o", str(tmp_path / "o.zip")])
        assert isinstance(r.exception, ExodfError) and str(r.exception).startswith(str(tmp_path / says)), r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tif", "ev.csv", "gt.csv", "m.tif", "one.tif"]


_EXOJ_DRIVER = """
import sys
import scyjava
scyjava.config.add_option("-Dplugins.dir=" + sys.argv[1])  # where ImageJ finds its plugins/ folder
from exodf import fiji
from exodf.exoj import run_exoj

ij = fiji.start_imagej(mode="interactive")
code = 1
try:
    events, export = run_exoj(sys.argv[2], None, watch=sys.argv[3], timeout=60, ij=ij)
    print("EXPORT", export.name, len(events), list(events.frame), flush=True)
    code = 0
except Exception as e:
    print("ERROR", e, flush=True)
finally:
    ij.jclass("java.lang.System").exit(code)  # ImageJ's windows would keep the JVM alive
"""


@needs_imagej
@pytest.mark.fiji
def test_exoj_driver_in_real_imagej(tmp_path) -> None:
    """`exodf fiji exoj`'s driver in ImageJ 1.53t, with an ExoJ stand-in under ExoJ's menu name.

    ExoJ itself (and a Fiji) cannot be installed here: the stand-in, a macro plugin named
    "Exocytosis Analyzer", writes an exocytosis list as ExoJ does after its wizard. Everything else is real:
    the movie is opened and shown, the command found in ImageJ's menus and run, the export waited for.
    """

    from test_exoj import exoj_bytes

    app, out = tmp_path / "app with spaces", tmp_path / "exports"
    (app / "plugins").mkdir(parents=True)
    out.mkdir()
    movie, _ = _small_simulation(tmp_path)
    made_by_exoj = tmp_path / "made_by_exoj.csv"
    made_by_exoj.write_bytes(exoj_bytes())
    (app / "plugins" / "Exocytosis_Analyzer.ijm").write_text(  # ExoJ names its export after the image
        f'if (nImages == 0) exit("no image open");\n'
        f'File.copy("{made_by_exoj}", "{out}/" + getTitle() + "_Exocytosis_List.csv");\n')
    script = tmp_path / "driver.py"
    script.write_text(_EXOJ_DRIVER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(script), str(app), str(movie), str(out)]
    if not os.environ.get("DISPLAY"):
        cmd = fiji.on_virtual_screen(cmd)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    expected = read_events(made_by_exoj)
    assert f"EXPORT small movie.tif_Exocytosis_List.csv {len(expected)} {list(expected.frame)}" in p.stdout, (
        p.stdout + p.stderr)
    # a Fiji without ExoJ's command: one clear error, not a wait for an export that never comes
    (app / "plugins" / "Exocytosis_Analyzer.ijm").unlink()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode != 0 and "no menu command 'Exocytosis Analyzer' or 'ExoJ'" in p.stdout, (
        p.stdout + p.stderr)


@needs_imagej
@pytest.mark.fiji
def test_batch_macro_shows_the_exodf_error(tmp_path, monkeypatch) -> None:
    """ImageJ's exec() returns standard output only: the macros ask exodf for its error there too, and show it
    (they said 'Output:' and nothing else)."""
    macro = tmp_path / "exodf_batch.ijm"
    macro.write_text(fiji.macro_text("exodf_batch.ijm"))
    movie = tmp_path / "one frame.tif"
    write_tiff(movie, np.zeros((1, 16, 16), np.uint16))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    p = fiji.run_batch_macro(macro, f"movie={movie}\nevents={tmp_path / 'events.csv'}", timeout=300, env=env)
    assert "exodf: error:" in p.stdout and "one frame.tif" in p.stdout and "Run that command" not in p.stdout, \
        p.stdout + p.stderr
    assert not (tmp_path / "events.csv").exists()
    # `exodf fiji macro` fails with exodf's reason, not the command line printed after it
    from typer.testing import CliRunner

    from exodf.cli import app

    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    r = CliRunner().invoke(app, ["fiji", "macro", str(macro), "--arg", f"movie={movie}\nevents={tmp_path / 'e.csv'}"])
    assert r.exit_code == 1 and "stopped before the end: exodf: error:" in str(r.exception), r.output
    assert "one frame.tif" in str(r.exception) and "Command:" not in str(r.exception)


@needs_imagej
@pytest.mark.fiji
def test_cli_macro_fails_when_the_events_macro_fails(tmp_path) -> None:
    """postprocessing/exodf_events.ijm stopped on a missing input, or could not save, and `exodf fiji macro`
    said nothing was wrong (ImageJ exits 0 either way)."""
    from typer.testing import CliRunner

    from exodf.cli import app

    macro = REPO / "postprocessing" / "exodf_events.ijm"
    probs = np.zeros((4, 3, 16, 16), np.float32)
    probs[:, 0] = 1
    write_tiff(tmp_path / "probs.tif", probs, axes="TCYX")
    for argument, why in ((f"input=[{tmp_path / 'missing.tif'}] output=[{tmp_path / 'a.csv'}]", "not found"),
                          (f"input=[{tmp_path / 'probs.tif'}] output=[{tmp_path / 'no' / 'a.csv'}]",
                           "could not write")):
        r = CliRunner().invoke(app, ["fiji", "macro", str(macro), "--arg", argument, "--timeout", "120"])
        assert r.exit_code == 1 and "stopped before the end" in str(r.exception) and why in str(r.exception), \
            r.output
    r = CliRunner().invoke(app, ["fiji", "macro", str(macro), "--arg",
                                 f"input=[{tmp_path / 'probs.tif'}] output=[{tmp_path / 'a.csv'}]"])
    assert r.exit_code == 0 and "exodf_events: done, 0 events in 4 frames" in r.output, r.output
    assert (tmp_path / "a.csv").read_text().splitlines() == [" ,X,Y,Slice,Score,Size"]


@needs_imagej
@pytest.mark.fiji
def test_batch_macro_failure_is_an_error_and_removes_old_results(tmp_path) -> None:
    """A failed exodf detect left an earlier results file in place and `exodf fiji macro` exited 0; the
    documented shell form (a literal \\n between keys) was not split; a non-ASCII exodf path was garbled."""
    from typer.testing import CliRunner

    from exodf.cli import app

    macro = tmp_path / "exodf_batch.ijm"
    macro.write_text(fiji.macro_text("exodf_batch.ijm", [str(tmp_path / "zoë" / "missing-python"), "-m", "exodf"]),
                     encoding="utf-8")
    assert 'fromCharCode(235)' in macro.read_text()
    movie = tmp_path / "movie.tif"
    write_tiff(movie, np.zeros((4, 16, 16), np.uint16))
    stale = tmp_path / "results.csv"
    stale.write_text("old results\n")
    arg = f"movie={movie}\\nevents={tmp_path / 'events.csv'}\\nresults={stale}"  # as a shell passes it
    r = CliRunner().invoke(app, ["fiji", "macro", str(macro), "--arg", arg, "--timeout", "120"])
    assert r.exit_code != 0 and "the macro stopped before the end" in str(r.exception), r.output
    assert "zoë" in r.output  # the command ImageJ tried, spelled right
    assert not stale.exists()
    # the reason and the fix (a moved exodf: install again, or edit exodfCommand), not only the last line
    assert "wrote no event table" in str(r.exception) and "exodf fiji install" in str(r.exception), r.output
    assert f"'{tmp_path / 'zoë' / 'missing-python'}' -m exodf" in str(r.exception) or \
        f"{tmp_path / 'zoë' / 'missing-python'} -m exodf" in str(r.exception)  # a command to paste
    macro.write_text(fiji.macro_text("exodf_batch.ijm", [sys.executable, "-c", "pass"]), encoding="utf-8")
    r = CliRunner().invoke(app, ["fiji", "macro", str(macro), "--arg", arg, "--timeout", "120"])
    assert r.exit_code != 0 and "exodf printed nothing" in str(r.exception), r.output
