"""Reader of ExoJ's "Exocytosis List" export (the Fiji plugin the ExoDeepFinder paper compared against).

ExoJ (Liu et al. 2024, J Cell Sci) saves its list of exocytosis events with Java's ``"unicode"`` charset:
UTF-16 big-endian with a byte-order mark, comma-separated, CRLF line ends, and a comma after every header
title (so the header line ends with a trailing comma; the data lines do not). Its columns (v1.84+)::

    Ref, Property, Begin Frame, Duration, Peak Frame, Position (x), Position (y),
    Max. Displacement (pixels), Tau (sec), R Square for Decay Est., dF/Sigma (MAD), Decay Function,
    F0, Delta F, R Square Gaussian fit, Est. Size (FWHM unit)

Older versions write ``End frame``, ``Est. Radius (unit)`` and ``R Square for Est. radius`` instead of
some of these; both are read. Frames are 1-based ImageJ slices in the file and 0-based in the returned
:class:`~exodf.events.EventTable`. The event's frame is ExoJ's ``Peak Frame`` (the fusion burst) and its
position ``Position (x)``/``Position (y)`` (pixels; ExoJ writes the position where its track of the vesicle
starts, a few frames before the peak, usually within a few pixels of the fusion site). Every numeric column
is kept as an extra column with a fixed lower-case name (see ``_CANONICAL``); the text column
``Decay Function`` (``y=a+b*exp(-x/tau)``) is kept as its numbers ``decay_offset`` and ``decay_amplitude``;
``Property`` (a text label) is dropped.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from .errors import ExodfError
from .events import EventTable

__all__ = ["looks_like_exoj", "is_exocytosis_list", "parse_exoj", "header_line", "EXOJ_FRAME_COLUMNS",
           "EXPORT_UNITS_HINT", "find_exoj_plugin", "wait_for_export", "run_exoj"]

# header title (lower case, unit in parentheses removed) -> column name in the EventTable
_CANONICAL = {
    "ref": "ref",
    "begin frame": "begin_frame",
    "end frame": "end_frame",
    "duration": "duration",
    "peak frame": "peak_frame",
    "position (x)": "x",
    "position (y)": "y",
    "max. displacement": "max_displacement",
    "tau": "tau",
    "r square for decay est.": "decay_r2",
    "df/sigma (mad)": "df_sigma",
    "f0": "f0",
    "delta f": "delta_f",
    "r square gaussian fit": "gaussian_r2",
    "r square for est. radius": "gaussian_r2",
    "est. size": "size_fwhm",
    "est. radius": "radius",
}
#: columns that hold 1-based frame numbers in the file (0-based in the table)
EXOJ_FRAME_COLUMNS = ("begin_frame", "end_frame", "peak_frame")
#: what fits when an export's positions do not fit its movie (no pixel-size option changes an export's unit)
EXPORT_UNITS_HINT = ("ExoJ writes positions in the movie's pixels: is it the export of this movie (or edited in "
                     "µm)?")
_TEXT = ("property", "decay function")
#: columns whose cells hold no values to keep: ExoJ's text "Property" column, and untitled ones (a spreadsheet's)
_UNKEPT = ("property", "")
_UNIT = re.compile(r"\s*\((?!mad\))[^)]*\)\s*$")  # "Tau (sec)" -> "tau"; keeps "dF/Sigma (MAD)"
_DECAY = re.compile(r"^\s*y\s*=\s*(?P<a>[^*]+?)\s*\+\s*(?P<b>[^*]+?)\s*\*\s*exp\(", re.IGNORECASE)


def _decode(raw: bytes) -> str:
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", errors="replace")
    if raw.startswith(b"\xff\xfe"):
        return raw[2:].decode("utf-16-le", errors="replace")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # re-saved by Excel on Windows (cp1252: the µ of "FWHM µm")


def _delimiter(text: str) -> str:
    """ExoJ writes commas; a list re-saved by Excel may use ';' (with decimal commas) or tabs."""
    first = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=first.count)


def _rows(text: str) -> Any:
    """The file's rows, split as CSV (a list re-saved by LibreOffice or pandas quotes its text cells)."""
    return csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))


def _header(text: str) -> list[str]:
    cells = [c.strip() for c in next(_rows(text.split("\n", 1)[0].rstrip("\r")), [])]
    while cells and cells[-1] == "":
        cells.pop()
    return cells


def header_line(raw: bytes) -> str:
    """The first line of a file's bytes (decoded as :func:`parse_exoj` does), for messages."""
    return _decode(raw[:4096]).split("\n", 1)[0].rstrip("\r")


def _canonical(title: str) -> str:
    low = title.strip().lower()
    if low in _CANONICAL:
        return _CANONICAL[low]
    base = _UNIT.sub("", low)
    if base in _CANONICAL:
        return _CANONICAL[base]
    return re.sub(r"[^0-9a-z]+", "_", low).strip("_")


def _exoj_unit(title: str) -> str | None:
    """The unit in an ExoJ title, as exodf writes units: "Tau (sec)" -> "s", "Max. Displacement (pixels)" ->
    "px", "Est. Size (FWHM µm)" -> "µm" (the image's calibration unit); None for "dF/Sigma (MAD)"."""
    m = _UNIT.search(title)
    if not m or title.strip().lower() in _CANONICAL:
        return None
    unit = re.sub(r"^\s*\(\s*(fwhm\s+)?|\s*\)\s*$", "", m.group(0), flags=re.IGNORECASE)
    return {"sec": "s", "pixels": "px", "pixel": "px"}.get(unit.lower(), unit) or None


def _titles(raw: bytes) -> set[str]:
    return {h.lower() for h in _header(_decode(raw[:4096]))}


def _is_exoj(titles: set[str], frames: set[str]) -> bool:
    return {"position (x)", "position (y)"} <= titles and bool(titles & frames)


def looks_like_exoj(raw: bytes) -> bool:
    """Whether ``raw`` (a file's bytes) is a list written by ExoJ: its exocytosis list (any version) or its
    tracking list (the candidates before ExoJ's exocytosis tests, without a Peak Frame)."""
    return _is_exoj(_titles(raw), {"peak frame", "begin frame"})


def is_exocytosis_list(raw: bytes) -> bool:
    """Whether ``raw`` is ExoJ's exocytosis list (it has a Peak Frame; the tracking list does not)."""
    return _is_exoj(_titles(raw), {"peak frame"})


_GROUPED = re.compile(r"^[-+]?\d{1,3}(\.\d{3})+,\d*$")  # "1.234,5": Excel's thousands separator, decimal comma


def _number(cell: str, decimal_comma: bool = False) -> float:
    s = cell.strip()
    if s in ("", "-"):
        return math.nan
    if decimal_comma:
        s = (s.replace(".", "") if _GROUPED.match(s) else s).replace(",", ".")
    # Java's Double.toString: "12.0", "NaN", "Infinity", "1.0E-4" all parse
    return float(s)


def parse_exoj(raw: bytes, path: Path | str = "<exoj>", frame: str = "peak") -> EventTable:
    """Parse an ExoJ export into an :class:`~exodf.events.EventTable`.

    Parameters
    ----------
    raw
        The file's bytes (UTF-16 with BOM as ExoJ writes it; UTF-8 re-saves are read too).
    path
        The file's name, for error messages.
    frame
        ``"peak"`` (default): the event's frame is ExoJ's Peak Frame; ``"begin"``: its Begin Frame.

    Raises
    ------
    ExodfError
        If the file is not an ExoJ list or a line lacks a number where one is needed.
    """
    p = Path(path)
    if frame not in ("peak", "begin"):
        raise ValueError(f"parse_exoj: frame must be 'peak' or 'begin', got {frame!r}")
    text = _decode(raw)
    if not looks_like_exoj(raw):
        raise ExodfError(f"{p}: not an ExoJ exocytosis list (no 'Position (x)', 'Position (y)' and "
                         "'Peak Frame'/'Begin Frame' header); export the list from ExoJ's results window")
    titles = _header(text)
    names = [_canonical(t) for t in titles]
    seen: dict[str, str] = {}
    for name, title in zip(names, titles):
        if name not in _UNKEPT and name in seen:
            raise ExodfError(f"{p}: the columns {seen[name]!r} and {title!r} both hold ExoJ's {name!r}; "
                             "delete one of them (or export the list again from ExoJ)")
        seen[name] = title
    frame_key = f"{frame}_frame"
    if frame == "peak" and frame_key not in names:
        raise ExodfError(f"{p}: an ExoJ list without 'Peak Frame' (its tracking list, the candidates before the "
                         "exocytosis tests?); export the exocytosis list from ExoJ's results window")
    if frame_key not in names:
        raise ExodfError(f"{p}: the ExoJ list has no '{frame_key.replace('_', ' ').title()}' column; "
                         "export it again from ExoJ, or read it with frame='peak'")
    values: dict[str, list[float]] = {n: [] for n in names if n not in _UNKEPT + ("decay_function",)}
    decay: list[tuple[float, float]] = []
    delim = _delimiter(text)
    comma = delim != ","  # Excel writes decimal commas where it separates with ';' or tabs
    linenos = []
    rows = _rows(text)
    next(rows, None)  # the header
    for cells in rows:
        lineno = rows.line_num
        if not "".join(cells).strip():
            continue  # a blank line, or Excel's ";;;;" under the table
        linenos.append(lineno)
        while len(cells) > len(names) and cells[-1].strip() == "":
            cells.pop()  # a trailing comma on data lines too
        if len(cells) != len(names):
            raise ExodfError(f"{p}, line {lineno}: {len(cells)} fields but the header has {len(names)}; "
                             "the file is cut or was edited - export it again from ExoJ")
        for name, title, cell in zip(names, titles, cells):
            if name in _UNKEPT:
                continue
            if name == "decay_function":
                m = _DECAY.match(cell.replace(",", ".") if comma else cell)
                try:
                    decay.append((float(m.group("a")), float(m.group("b"))) if m else (math.nan, math.nan))
                except ValueError:
                    decay.append((math.nan, math.nan))
                continue
            try:
                values[name].append(_number(cell, comma))
            except ValueError:
                if name in ("x", "y", frame_key):
                    raise ExodfError(f"{p}, line {lineno}: {title!r} is {cell!r}, not a number; fix or "
                                     "delete that line") from None
                values[name].append(math.nan)
    cols = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    for k in EXOJ_FRAME_COLUMNS:
        if k in cols:
            cols[k] = cols[k] - 1.0  # 1-based ImageJ slices -> 0-based frames
    if "decay_function" in names:
        d = np.asarray(decay, dtype=np.float64).reshape(-1, 2)
        cols["decay_offset"], cols["decay_amplitude"] = d[:, 0], d[:, 1]
    units = {n: _exoj_unit(t) for n, t in zip(names, titles) if n in cols and _exoj_unit(t)}
    x, y, fr = cols.pop("x"), cols.pop("y"), cols[frame_key]
    bad = ~(np.isfinite(x) & np.isfinite(y) & np.isfinite(fr))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ExodfError(f"{p}, line {linenos[k]}: an event without a finite position or frame (x {x[k]:g}, "
                         f"y {y[k]:g}, frame {fr[k] + 1:g}; ExoJ writes NaN or Infinity where a fit failed); "
                         f"fix or delete that line ({int(bad.sum())} such line(s))")
    return EventTable(x, y, fr.copy(), cols, units)


# ---------------------------------------------------------------------------------------------------
# running ExoJ in the user's Fiji
# ---------------------------------------------------------------------------------------------------
EXOJ_COMMANDS = ("Exocytosis Analyzer", "ExoJ")  # Plugins menu entries of ExoJ's versions


def find_exoj_plugin(fiji_dir: str | os.PathLike[str]) -> Path:
    """ExoJ's jar in a Fiji's ``plugins`` folder (``ExocytosisAnalyzer*.jar`` or ``ExoJ*.jar``)."""
    plugins = Path(fiji_dir) / "plugins"
    found = sorted(plugins.glob("Exocytosis*nalyzer*.jar")) + sorted(plugins.glob("ExoJ*.jar"))
    if not found:
        raise ExodfError(f"{plugins}: ExoJ is not installed in this Fiji; put ExocytosisAnalyzer-V1.90.jar "
                         "(github.com/zs6e/excytosis-analyzer-plugin) into that folder and restart Fiji")
    return found[-1]


def folder_state(folder: str | os.PathLike[str]) -> dict[str, tuple[int, int]]:
    """Name -> (size, mtime in ns) of the files in ``folder``: what was there before ExoJ ran."""
    state: dict[str, tuple[int, int]] = {}
    d = Path(folder)
    if d.is_dir():
        for f in d.iterdir():
            try:
                st = f.stat()
            except OSError:
                continue
            if f.is_file():
                state[f.name] = (st.st_size, st.st_mtime_ns)
    return state


def wait_for_export(folder: str | os.PathLike[str], before: Mapping[str, tuple[int, int]],
                    timeout: float = 3600.0, poll: float = 1.0, settle: float = 2.0,
                    sleep: Callable[[float], None] = time.sleep) -> Path:
    """Wait for an ExoJ exocytosis list written in ``folder``.

    ``before``: the :func:`folder_state` taken before ExoJ started. A file counts when it is new or has
    changed (robust to copies that keep their time stamp and to coarse or skewed clocks of network
    folders); one whose bytes look like an ExoJ list is returned once its size has not changed for
    ``settle`` seconds (ExoJ has finished writing it).
    """
    d = Path(folder)
    if not d.is_dir():
        raise ExodfError(f"{d}: folder to watch for ExoJ's export does not exist; give an existing --watch folder")
    deadline = time.time() + timeout
    sizes: dict[str, tuple[int, float]] = {}
    while True:
        now = time.time()
        for name, (size, mtime) in folder_state(d).items():
            if size == 0 or before.get(name) == (size, mtime):
                continue  # empty, or there before ExoJ ran and unchanged
            prev = sizes.get(name)
            if prev is None or prev[0] != size:
                sizes[name] = (size, now)
            elif now - prev[1] >= settle:
                with open(d / name, "rb") as fh:
                    if is_exocytosis_list(fh.read(4096)):
                        return d / name
        if now > deadline:
            raise ExodfError(f"{d}: no ExoJ exocytosis list appeared within {timeout:.0f} s; in ExoJ's results "
                             "window export the list into this folder, or raise --timeout")
        sleep(poll)


def run_exoj(movie: str | os.PathLike[str], fiji_dir: Optional[str | os.PathLike[str]],
             watch: Optional[Path] = None, timeout: float = 3600.0,
             progress: Optional[Callable[[str], None]] = None, ij: Any = None) -> tuple[EventTable, Path]:
    """Open ``movie`` in the user's Fiji, start ExoJ's wizard, wait for its export and read it.

    ExoJ takes no macro options: the user steps through its wizard and exports the exocytosis list into
    ``watch`` (default: the movie's folder). Returns the events and the export's path.

    ``ij``: an ImageJ already running in this process (:func:`exodf.fiji.start_imagej`, not headless)
    whose menus hold ExoJ's command; ``fiji_dir`` is then not used.
    """
    from . import fiji

    m = Path(movie)
    if not m.is_file():
        raise ExodfError(f"{m}: movie not found; give an existing TIFF")
    folder = Path(watch) if watch is not None else m.parent
    if not folder.is_dir():
        raise ExodfError(f"{folder}: folder to watch for ExoJ's export does not exist; give an existing --watch "
                         "folder")
    if ij is None:
        root = fiji.find_fiji(fiji_dir)
        if root is None:
            raise ExodfError("running ExoJ needs a Fiji with ExoJ installed; give --fiji Fiji.app or set "
                             "EXODF_FIJI")
        find_exoj_plugin(root)
        ij = fiji.start_imagej(fiji=root, mode="interactive")
        where = str(root)
    else:
        where = "this ImageJ"
    if ij.gateway is not None:
        ij.gateway.ui().showUI()
    IJ, Menus = ij.jclass("ij.IJ"), ij.jclass("ij.Menus")
    imp = ij.open_movie(m)
    imp.show()
    commands = Menus.getCommands()
    name = next((c for c in EXOJ_COMMANDS if commands is not None and commands.containsKey(c)), None)
    if name is None:
        raise ExodfError(f"{where}: no menu command {' or '.join(map(repr, EXOJ_COMMANDS))}; update ExoJ's jar "
                         "in plugins/ and restart Fiji")
    before = folder_state(folder)
    if progress is not None:
        progress(f"ExoJ started on {m.name}: go through its wizard, then export the exocytosis list into "
                 f"{folder}")
    IJ.run(imp, name, "")
    export = wait_for_export(folder, before, timeout)
    return parse_exoj(export.read_bytes(), export), export
