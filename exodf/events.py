"""The one event-table type of exodf, and its readers and writers.

Inside exodf an event is (x, y, frame): x the column and y the row in pixels, frame 0-based (it may be
fractional: a mean-shift centroid). Only ImageJ files number frames from 1 (the ``Slice`` column).

Formats
-------
- ImageJ Results table: ``.csv`` (comma) or ``.txt``/``.tsv`` (tab); header `` ,X,Y,Slice`` with the row
  number column, or ``X,Y,Slice`` without. X/Y are in pixels, or in calibrated units when a pixel size is
  given (they are divided by it on reading and multiplied on writing).
- The original ExoDeepFinder's xml (``<objlist><object class_label x y z cluster_size/>``) and csv
  (``tomo_idx,class_label,x,y,z``); z is the 0-based frame, ``class_label`` 1 is exocytosis.
- ExoJ's "Exocytosis List" export is read by :mod:`exodf.exoj` when that module is present.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .atomic import write_text_atomic
from .errors import ExodfError

LOG = logging.getLogger(__name__)  # the CLI shows warnings on stderr

__all__ = ["EventTable", "read_events", "write_events", "parse_delimited", "EVENT_FORMATS", "SLICE_COLUMNS",
           "TABLE_SUFFIXES", "check_table_path", "imagej_extra_columns"]

EVENT_FORMATS = ("imagej", "xml", "original-csv")
TABLE_SUFFIXES = (".csv", ".txt", ".tsv", ".xls", ".xml")  # the suffixes of files read and written as event tables
# extra columns that hold a 0-based frame, and their 1-based name in ImageJ tables (as Slice is to frame)
SLICE_COLUMNS = {"peak_frame": "peak_slice", "onset": "onset_slice", "begin_frame": "begin_slice",
                 "end_frame": "end_slice",
                 "peak_frame_given": "peak_slice_given"}  # exodf measure keeps an input's peak frame so


def _as_float(a: object, n: int | None = None) -> np.ndarray:
    arr = _frozen(np.array(a, dtype=np.float64).reshape(-1))  # a copy: the caller's array stays theirs
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"column has {arr.shape[0]} values, expected {n}")
    return arr


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class EventTable:
    """Detected or annotated events.

    Attributes
    ----------
    x, y : ndarray of float64
        Column and row of each event, in pixels.
    frame : ndarray of float64
        0-based frame of each event (fractional for cluster centroids).
    columns : dict of str -> ndarray
        Optional per-event numbers (``size`` in voxels, ``score``, measurements...), same length; names are
        lower-cased.
    units : dict of str -> str
        The unit of some of those columns (``{"half_life": "s"}``); ImageJ tables write it into the heading
        (``Half_life (s)``) and reading takes it back from there.

    The table holds read-only copies of the arrays it is given: it never changes, nor shares memory with
    the caller's arrays. Equality compares the numbers, not the units.
    """

    x: np.ndarray
    y: np.ndarray
    frame: np.ndarray
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = _as_float(self.x)
        n = x.shape[0]
        object.__setattr__(self, "x", x)
        for name in ("y", "frame"):
            try:
                object.__setattr__(self, name, _as_float(getattr(self, name), n))
            except ValueError as e:
                raise ValueError(f"EventTable.{name}: {e}") from None
        cols: dict[str, np.ndarray] = {}
        for key, val in dict(self.columns).items():
            arr = np.array(val).reshape(-1)
            if arr.shape[0] != n:
                raise ValueError(f"EventTable column {key!r} has {arr.shape[0]} values, expected {n}")
            if arr.dtype.kind not in "biuf" and n:
                raise ValueError(f"EventTable column {key!r} holds {arr.dtype} values (e.g. {arr[0]!r}); columns "
                                 "hold numbers, as ImageJ tables do")
            cols[str(key).lower()] = _frozen(arr if n else arr.astype(np.float64))
        object.__setattr__(self, "columns", cols)
        units = {str(k).lower(): str(u) for k, u in dict(self.units).items() if u}
        if set(units) - set(cols):
            raise ValueError(f"EventTable units {sorted(set(units) - set(cols))} name no column "
                             f"(columns: {sorted(cols)})")
        object.__setattr__(self, "units", units)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls, columns: tuple[str, ...] = ()) -> "EventTable":
        z = np.zeros(0)
        return cls(z, z, z, {c: z for c in columns})

    @classmethod
    def concat(cls, tables: "Sequence[EventTable]") -> "EventTable":
        """The events of all ``tables`` in order; a column missing from some tables is NaN for their events."""
        if not tables:
            return cls.empty()
        keys = sorted({k for t in tables for k in t.columns})
        units: dict[str, str] = {}
        for k in keys:  # a column's unit where the tables agree on it (half_life in frames and in s: none)
            given = {t.units.get(k) for t in tables if k in t.columns}
            if len(given) == 1 and None not in given:
                units[k] = given.pop()
        return cls(
            np.concatenate([t.x for t in tables]),
            np.concatenate([t.y for t in tables]),
            np.concatenate([t.frame for t in tables]),
            {k: np.concatenate([t.columns[k] if k in t.columns else np.full(len(t), np.nan) for t in tables])
             for k in keys},
            units,
        )

    # -- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def slice(self) -> np.ndarray:
        """1-based ImageJ slice of each event (nearest frame)."""
        return np.floor(self.frame + 0.5).astype(np.int64) + 1

    def select(self, keep: np.ndarray) -> "EventTable":
        """The events where ``keep`` (boolean mask or index array) selects them."""
        keep = np.asarray(keep)
        if keep.size == 0 and keep.dtype.kind not in "bi":  # [] : no event
            keep = keep.astype(np.int64)
        return EventTable(self.x[keep], self.y[keep], self.frame[keep],
                          {k: v[keep] for k, v in self.columns.items()}, self.units)

    def sorted(self) -> "EventTable":
        """Events ordered by frame, then y, then x."""
        return self.select(np.lexsort((self.x, self.y, self.frame)))

    def coords(self) -> np.ndarray:
        """(N, 3) array of (frame, y, x)."""
        return np.stack([self.frame, self.y, self.x], axis=1) if len(self) else np.zeros((0, 3))

    def __eq__(self, other: object) -> bool:  # value equality (dataclass eq would compare arrays)
        if not isinstance(other, EventTable) or len(self) != len(other):
            return False
        if set(self.columns) != set(other.columns):
            return False
        same = all(np.array_equal(getattr(self, a), getattr(other, a)) for a in ("x", "y", "frame"))
        return same and all(np.array_equal(v, other.columns[k], equal_nan=True)  # NaN: no measurement, in both
                            for k, v in self.columns.items())

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def read_events(path: str | os.PathLike[str], pixel_size: float | None = None,
                exocytosis_label: int | None = None) -> EventTable:
    """Read an event table from any format exodf knows.

    Parameters
    ----------
    path
        ImageJ Results (``.csv``/``.txt``/``.tsv``), the original's ``.xml`` or ``.csv``, or an ExoJ export.
        Time is ImageJ's 1-based ``Slice`` (or ``Frame``, ``T``), except a column named exactly ``frame``
        (lower case: :attr:`EventTable.frame`'s name, e.g. a table saved from a script), which counts from 0.
    pixel_size
        If the ImageJ X/Y are calibrated (e.g. µm), the size of one pixel in those units.
    exocytosis_label
        For the original's formats: the ``class_label`` that marks exocytosis (others are dropped). By
        default 2 when some object has class 2 (a training annotation, ``merged_annotation.xml``: the
        network's classes, 1 bright spot, 2 exocytosis), otherwise 1 (the original's detections, written
        with ``class_label="1"``).
    """
    p = Path(path)
    if not p.is_file():
        raise ExodfError(f"{p}: event table not found; give the path of an existing .csv, .txt or .xml file")
    if pixel_size is not None and not pixel_size > 0:
        raise ExodfError(f"{p}: --pixel-size must be > 0 (got {pixel_size})")
    raw = p.read_bytes()
    try:
        if p.suffix.lower() == ".xml" or raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            return _read_xml(raw, p, exocytosis_label)
        from . import exoj  # optional reader of ExoJ's UTF-16 export
        if exoj.looks_like_exoj(raw):
            return exoj.parse_exoj(raw, p)
    except ImportError:
        pass
    text = _decode(raw, p)
    return _read_delimited(text, p, pixel_size, exocytosis_label)


def parse_delimited(text: str, source: str, pixel_size: float | None = None) -> EventTable:
    """An event table from the text of an ImageJ Results table (tab, comma or semicolon separated), by the
    rules of :func:`read_events`; ``source`` names it in error messages."""
    if pixel_size is not None and not pixel_size > 0:
        raise ExodfError(f"{source}: --pixel-size must be > 0 (got {pixel_size})")
    return _read_delimited(text, Path(source), pixel_size, None)  # type: ignore[arg-type]


#: a TIFF's first four bytes (little/big-endian, classic/BigTIFF): an image given where a table or weights go
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _decode(raw: bytes, p: Path) -> str:
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(enc)
            except UnicodeDecodeError:
                raise ExodfError(f"{p}: starts like {enc} text but is not ({enc} decoding fails); is it an "
                                 "event table? Save the table again as CSV from ImageJ") from None
    if b"\x00" in raw[:4096]:  # no text table holds NUL bytes (and UTF-16 without a BOM is not written)
        kind = " (a TIFF image?)" if raw[:4] in TIFF_SIGNATURES else ""
        raise ExodfError(f"{p}: a binary file{kind}, not an event table; give the .csv/.txt/.xml table here")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _auto_label(labels: list[int]) -> int:
    """The original's class of exocytosis in a table of these labels (see :func:`read_events`)."""
    return 2 if 2 in labels else 1


def _read_xml(raw: bytes, p: Path, exocytosis_label: int | None) -> EventTable:
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        raise ExodfError(f"{p}: not valid XML ({e}); expected the original's "
                         "<objlist><object .../></objlist>") from None
    if root.tag != "objlist":
        raise ExodfError(f"{p}: root element is <{root.tag}>, expected <objlist> as written by ExoDeepFinder")
    rows, labels = [], []
    for obj in root.iter("object"):
        text = ET.tostring(obj, encoding="unicode").strip()
        try:
            label = int(float(obj.get("class_label", 1)))
        except (ValueError, OverflowError):  # (int of inf)
            raise ExodfError(f"{p}: object {text} has a class_label that is not a number; fix or remove that "
                             "line") from None
        labels.append(label)
        try:
            xyz = (float(obj.attrib["x"]), float(obj.attrib["y"]), float(obj.attrib["z"]))
        except (KeyError, ValueError) as e:
            raise ExodfError(f"{p}: object {text} lacks a numeric x, y or z ({e}); fix or remove that "
                             "line") from None
        if not all(math.isfinite(v) for v in xyz):
            raise ExodfError(f"{p}: object {text}: x, y or z is not a finite number; fix or remove that line")
        rows.append((*xyz, _num([obj.get("cluster_size", "nan")], 0)))
    want = _auto_label(labels) if exocytosis_label is None else exocytosis_label
    a = np.array([r for r, lab in zip(rows, labels) if lab == want], dtype=np.float64).reshape(-1, 4)
    cols = {} if np.isnan(a[:, 3]).all() else {"size": a[:, 3]}
    return EventTable(a[:, 0], a[:, 1], a[:, 2], cols)


_UNIT = re.compile(r"\s*[(\[]\s*([^)\]]*?)\s*[)\]]\s*$")  # "X (µm)", "X [px]"
_MICRONS = {"µm", "μm", "um", "micron", "microns", "micrometer", "micrometers", "micrometre", "micrometres"}
_PIXELS = {"px", "pixel", "pixels", "pix"}


def _unit(name: str) -> str | None:
    m = _UNIT.search(name)
    return m.group(1).lower() if m else None


def _find(header: list[str], *names: str) -> int | None:
    """The column of the first of ``names``: a bare title first ("X"), then one with a unit, pixels before
    µm before others ("X (px)", "X (µm)")."""
    bare = [h.strip().lower() for h in header]
    for n in names:
        if n in bare:
            return bare.index(n)
    stripped = [_UNIT.sub("", h).strip().lower() for h in header]
    rank = {**{u: 0 for u in _PIXELS}, **{u: 1 for u in _MICRONS}}
    for n in names:
        hits = [i for i, h in enumerate(stripped) if h == n]
        if hits:
            return min(hits, key=lambda i: rank.get(_unit(header[i]) or "", 2))
    return None


def _decimal_comma(body: list[list[str]], columns: list[int], delim: str) -> bool:
    """Whether a ';'- or tab-separated table writes decimals with commas ("10,5"): some coordinate holds a
    comma and none a point (a point as well would make "1,234" a thousands separator: read nothing)."""
    if delim == ",":
        return False
    cells = [r[i] for r in body for i in columns if i < len(r)]
    return any("," in c for c in cells) and not any("." in c for c in cells)


def _read_delimited(text: str, p: Path, pixel_size: float | None, exocytosis_label: int) -> EventTable:
    numbered = [(k, ln) for k, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not numbered:
        raise ExodfError(f"{p}: the file is empty; an event table needs at least a header line X,Y,Slice")
    line_of = [k for k, _ in numbered]  # the file's line number of each non-blank line
    lines = [ln for _, ln in numbered]
    counts = {d: lines[0].count(d) for d in (",", "\t", ";")}
    delim = max(counts, key=lambda d: (counts[d], d == ","))
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
    header = [h.strip() for h in rows[0]]
    kept = [(r, k) for r, k in zip(rows[1:], line_of[1:]) if any(c.strip() for c in r)]  # Excel's ",,,"
    while header and header[-1] == "":  # trailing delimiter
        header.pop()
    original = _find(header, "tomo_idx") is not None or _find(header, "class_label") is not None
    ix = _find(header, "x")
    iy = _find(header, "y")
    iz = _find(header, "z") if original else _find(header, "slice", "frame", "t")
    if ix is None or iy is None or iz is None:
        missing = [n for n, i in (("X", ix), ("Y", iy), ("Z" if original else "Slice (or Frame)", iz)) if i is None]
        what = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        raise ExodfError(
            f"{p}: header {delim.join(header)!r} lacks the column{'s' if len(missing) > 1 else ''} {what}; save "
            "the ImageJ Results table with X, Y and Slice, or give the original's xml/csv")
    body = [_fields(r, len(header), k, delim, p) for r, k in kept]
    line_of = [line_of[0]] + [k for _, k in kept]
    n_summary = _summary_rows(header, body)
    if n_summary:
        lines_left = line_of[-n_summary:]
        where = f"line {lines_left[0]}" if n_summary == 1 else f"lines {lines_left[0]}-{lines_left[-1]}"
        LOG.warning(f"{p}: ImageJ's summary rows ({', '.join(_label(r, header) for r in body[-n_summary:])}; "
                    f"{where}) are not events: left out")
        body, line_of = body[:-n_summary], line_of[:-n_summary]
    if not original and _find(header, "slice") is not None and _find(header, "frame") is not None:
        iz = _time_column(body, _find(header, "slice"), _find(header, "frame"), p)  # type: ignore[arg-type]
    decimal_comma = _decimal_comma(body, [ix, iy, iz], delim)  # European Excel: "10,5;20,25;3"
    t_unit = _unit(header[iz])
    if not original and t_unit and t_unit not in ("frame", "frames", "slice", "slices"):
        raise ExodfError(f"{p}: the time column {header[iz]!r} is in {t_unit!r}; exodf needs frame numbers "
                         "(ImageJ's 1-based Slice): divide by the frame interval and save it as Slice")
    ux, uy = _unit(header[ix]), _unit(header[iy])
    if (ux in _PIXELS) != (uy in _PIXELS) or (ux in _MICRONS) != (uy in _MICRONS):
        raise ExodfError(f"{p}: X and Y are in different units ({header[ix]!r}, {header[iy]!r}); save both in "
                         "pixels, or both in µm with --pixel-size")
    units = {u for u in (ux, uy) if u}
    if units & _PIXELS and not units - _PIXELS:
        pixel_size = None  # the header says pixels: nothing to divide
    elif units and units <= _MICRONS:
        if pixel_size is None:
            raise ExodfError(f"{p}: X and Y are in µm (header {header[ix]!r}); give the pixel size in µm "
                             "(--pixel-size; for evaluate also --calibrated), or save the table in pixels")
    elif units:
        raise ExodfError(f"{p}: X/Y unit {' / '.join(sorted(units))!r} (header {header[ix]!r}) is neither "
                         "pixels nor µm; save the table in pixels, or in µm with --pixel-size")
    ilabel = _find(header, "class_label") if original else None
    skip = {ix, iy, iz} | ({ilabel} if ilabel is not None else set())
    extra = [(i, h) for i, h in enumerate(header) if i not in skip and h not in ("", " ") and
             h.lower() not in ("tomo_idx", "obj_id")]
    vals: list[list[float]] = []
    kept_lines: list[int] = []
    num = _comma_float if decimal_comma else float
    if ilabel is not None and exocytosis_label is None:
        exocytosis_label = _auto_label([int(_num(r, ilabel, num)) for r in body
                                        if math.isfinite(_num(r, ilabel, num))])
    for r, lineno in zip(body, line_of[1:]):
        try:
            if ilabel is not None and int(num(r[ilabel])) != exocytosis_label:
                continue
            vals.append([num(r[ix]), num(r[iy]), num(r[iz])] + [_num(r, i, num) for i, _ in extra])
            kept_lines.append(lineno)
        except (ValueError, IndexError, OverflowError):  # (an infinite class_label)
            hint = (" (decimal commas are read in ';' or tab-separated files only)" if delim == "," and
                    any("," in c for c in r) else "")  # (a quoted "10,5")
            where = "X, Y or " + header[iz]
            if ilabel is not None and not math.isfinite(_num(r, ilabel, num)):
                where = header[ilabel]  # (the class decides whether the row is an event at all)
            raise ExodfError(f"{p}, line {lineno}: {delim.join(r)!r} has no number in {where}{hint}; fix or delete "
                             "that line") from None
    a = np.array(vals, dtype=np.float64).reshape(-1, 3 + len(extra))
    x, y, z = a[:, 0], a[:, 1], a[:, 2]
    bad = ~np.isfinite(a[:, :3]).all(axis=1)
    if bad.any():
        k = int(np.argmax(bad))
        raise ExodfError(f"{p}, line {kept_lines[k]}: X, Y or {header[iz]} is not a finite number "
                         f"({a[k, 0]:g}, {a[k, 1]:g}, {a[k, 2]:g}); fix or delete that line")
    # exodf's own lower-case 'frame' (EventTable.frame, a script's table) counts from 0; ImageJ's Slice/Frame from 1
    first = 0 if _UNIT.sub("", header[iz]).strip() == "frame" else 1
    if not original and (z < first - 1.5).any():  # (Slice 0 is read: older simulated truths wrote it)
        k = int(np.argmax(z < first - 1.5))
        raise ExodfError(f"{p}, line {kept_lines[k]}: {header[iz]} {z[k]:g}, but " + (
            "ImageJ slices start at 1" if first else "frames (lower-case 'frame', exodf's name) start at 0")
            + "; fix or delete that line")
    if not original and first == 1 and (z < 0.5).any():  # Slice 0 is kept (see above), but is it 0-based?
        name = _UNIT.sub("", header[iz]).strip()
        LOG.warning(f"{p}: {name} 0 in a 1-based {name} column (ImageJ counts from 1): if this table counts frames "
                    "from 0, name the column `frame`")
    if not original:
        if pixel_size is not None:
            x, y = x / pixel_size, y / pixel_size
        z = z - float(first)
    cols, units = _extra_columns([h for _, h in extra], a[:, 3:])
    if not original:  # 1-based frame columns (Peak_slice) back to 0-based ones (peak_frame)
        for name, written in SLICE_COLUMNS.items():
            if written in cols and name not in cols:
                cols[name] = cols.pop(written) - 1.0
                if written in units:
                    units[name] = units.pop(written)
    if "cluster_size" in cols and "size" not in cols:
        cols["size"] = cols.pop("cluster_size")
        if "cluster_size" in units:
            units["size"] = units.pop("cluster_size")
    return EventTable(x, y, z, cols, units)


def _fields(row: list[str], n: int, lineno: int, delim: str, p: Path) -> list[str]:
    """``row`` without the empty cells past the header's ``n`` (a trailing delimiter, Excel's empty cells);
    a row still longer than the header is refused: its values would be read under the wrong columns
    (decimal commas in a comma-separated file split every number in two)."""
    end = len(row)
    while end > n and not row[end - 1].strip():
        end -= 1
    if end > n:
        hint = ("decimal commas in a comma-separated file? save it with ';' as the separator, or with decimal "
                "points" if delim == "," else "a value holds the separator? fix that line, or save the table "
                "again from ImageJ")
        raise ExodfError(f"{p}, line {lineno}: {end} fields but the header has {n} ({hint})")
    return row[:end]


#: the labels of the rows ImageJ's Results > Summarize appends to a table, in this order (Analyzer.summarize)
_SUMMARY_LABELS = ("Mean", "SD", "Min", "Max")


def _label(row: list[str], header: list[str]) -> str:
    """A row's label: its ``Label`` cell, else the untitled first (row-number) cell; "" if neither."""
    columns = [i for i, h in enumerate(header) if h.lower() == "label"] + ([0] if header[:1] == [""] else [])
    return next((row[i].strip() for i in columns if i < len(row) and row[i].strip()), "")


def _summary_rows(header: list[str], body: list[list[str]]) -> int:
    """How many rows at the end of ``body`` are ImageJ's summary rows (label exactly Mean, SD, Min or Max):
    statistics of the columns, not events. Only the trailing block is taken; a label of that name
    elsewhere (a cell ROI named 'Max') is an event."""
    n = 0
    while n < len(body) and _label(body[-1 - n], header) in _SUMMARY_LABELS:
        n += 1
    return n


def _extra_columns(headings: list[str], values: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Columns (not all NaN) by lower-case name, and their units from headings like ``Half_life (s)``; a
    heading whose name without the unit is another column's keeps its unit in its name."""
    names = [_UNIT.sub("", h).strip().lower() or h.lower() for h in headings]
    cols: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for k, (h, name) in enumerate(zip(headings, names)):
        if np.isnan(values[:, k]).all():
            continue
        m = _UNIT.search(h)
        if m and m.group(1) and names.count(name) == 1:
            cols[name], units[name] = values[:, k], m.group(1)
        else:
            cols[h.lower()] = values[:, k]
    return cols, units


def _time_column(body: list[list[str]], i_slice: int, i_frame: int, p: Path) -> int:
    """Slice or Frame: which one counts time in a table that has both (ImageJ measurements on a hyperstack
    give Slice = z-plane and Frame = time point; on a plain stack time is on Slice and Frame is constant)."""
    def values(i: int) -> set[float | str]:  # as numbers: "1" and "1.000" are one value
        nums = {r[i].strip(): _num(r, i, _comma_float) for r in body if i < len(r)}
        return {v if math.isfinite(v) else k for k, v in nums.items()}

    vs, vf = values(i_slice), values(i_frame)
    if len(vs) > 1 and len(vf) > 1:
        raise ExodfError(f"{p}: both Slice and Frame vary, so it is unclear which counts time (a z-stack over "
                         "time?); keep the time column only, or save one z-plane's events")
    if len(vf) > 1 or (len(vs) <= 1 and vs <= {1.0} and not vf <= {1.0}):
        return i_frame  # time on Frame (the single-plane Slice stays 1)
    return i_slice


def _comma_float(v: str) -> float:
    return float(v.replace(",", "."))


def _num(r: list[str], i: int, num: "Callable[[str], float]" = float) -> float:
    try:
        return num(r[i])
    except (ValueError, IndexError):
        return math.nan


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return "NaN"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4f}".rstrip("0").rstrip(".")


def format_imagej(table: EventTable, sep: str = ",", row_numbers: bool = True,
                  pixel_size: float | None = None) -> str:
    """The ImageJ Results text of ``table``: X, Y (calibrated if ``pixel_size``), Slice, extras.

    Extra columns that hold a 0-based frame (:data:`SLICE_COLUMNS`) are written 1-based like Slice, under
    a ``_slice`` name (``peak_frame`` -> ``Peak_slice``), so that every frame number in the file counts
    as ImageJ does.
    """
    scale = 1.0 if pixel_size is None else float(pixel_size)
    extra = imagej_extra_columns(table)
    header = ([" "] if row_numbers else []) + ["X", "Y", "Slice"] + list(extra)
    out = [sep.join(header)]
    sl = table.slice
    for i in range(len(table)):
        row = [str(i + 1)] if row_numbers else []
        row += [_fmt(round(table.x[i] * scale, 4)), _fmt(round(table.y[i] * scale, 4)), str(sl[i])]
        row += [_fmt(float(v[i])) for v in extra.values()]
        out.append(sep.join(row))
    return "\n".join(out) + "\n"


_UNSAFE_IN_HEADING = re.compile(r"\s*[,;\t\"\r\n]+\s*")  # "Mean, ch2" -> "Mean ch2"


def imagej_extra_columns(table: EventTable) -> dict[str, np.ndarray]:
    """``table``'s extra columns as ImageJ tables hold them (file or Results window): capitalised headings
    with the unit, if known (``Half_life (s)``), and the columns that hold a 0-based frame
    (:data:`SLICE_COLUMNS`) 1-based like Slice, under a ``_slice`` name (``peak_frame`` -> ``Peak_slice``).

    A separator or quote inside a name or unit would split or garble the file's header: they become spaces
    (``"Mean, ch2"`` -> ``Mean ch2``). A name that then repeats another column's (or X, Y, Slice) or is empty
    is numbered (``Mean ch2 2``, ``Column 2``), so that no column is lost or read back under another's name."""
    def clean(text: str) -> str:
        return _UNSAFE_IN_HEADING.sub(" ", text).strip()

    out: dict[str, np.ndarray] = {}
    taken = {"x", "y", "slice"}
    for e in sorted(table.columns):
        base = clean(SLICE_COLUMNS.get(e, e)).capitalize() or "Column"
        name, k = base, 2
        while name.lower() in taken:
            name, k = f"{base} {k}", k + 1
        taken.add(name.lower())
        unit = clean(table.units.get(e, ""))
        out[name + (f" ({unit})" if unit else "")] = np.asarray(table.columns[e], np.float64) + (e in SLICE_COLUMNS)
    return out


def format_xml(table: EventTable) -> str:
    """The original's xml (class_label 1 = exocytosis, z = 0-based frame)."""
    lines = ["<objlist>"]
    size = table.columns.get("size")
    for i in range(len(table)):
        cs = f' cluster_size="{int(size[i])}"' if size is not None and np.isfinite(size[i]) else ""
        lines.append(f'  <object class_label="1" x="{table.x[i]:.6f}" y="{table.y[i]:.6f}" '
                     f'z="{table.frame[i]:.6f}"{cs}/>')
    lines.append("</objlist>")
    return "\n".join(lines) + "\n"


def format_original_csv(table: EventTable) -> str:
    """The original's csv: ``tomo_idx,class_label,x,y,z`` (z = 0-based frame)."""
    out = ["tomo_idx,class_label,x,y,z"]
    out += [f"0,1,{table.x[i]:.6f},{table.y[i]:.6f},{table.frame[i]:.6f}" for i in range(len(table))]
    return "\n".join(out) + "\n"


def check_table_path(path: str | os.PathLike[str]) -> None:
    """Raise :class:`ExodfError` unless ``path`` ends with a suffix event tables are written under
    (:data:`TABLE_SUFFIXES`): a ``.xlsx`` holding comma-separated text is a file Excel refuses to open."""
    p = Path(path)
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise ExodfError(f"{p}: event tables are written as .csv, .txt/.tsv/.xls (tab-separated, as ImageJ "
                         f"saves them) or .xml, not {p.suffix or 'a name without suffix'}; Excel opens .csv")


def write_events(table: EventTable, path: str | os.PathLike[str], fmt: str = "imagej",
                 row_numbers: bool = True, pixel_size: float | None = None) -> Path:
    """Write ``table`` atomically.

    ``fmt`` is ``imagej`` (``.txt``/``.tsv`` give tab-separated, anything else comma-separated),
    ``xml`` or ``original-csv``; a ``.xml`` path always gives xml. ``pixel_size`` (ImageJ tables) writes X
    and Y calibrated, times the size of a pixel (e.g. 0.16 for µm); the file does not record the unit, so
    read it back with the same ``read_events(path, pixel_size=...)``.
    """
    if not isinstance(table, EventTable):
        raise TypeError(f"write_events(table, path): the table comes first, got {type(table).__name__}"
                        + (" (the path?)" if isinstance(table, (str, os.PathLike)) else ""))
    p = Path(path)
    check_table_path(p)
    if fmt not in EVENT_FORMATS:
        raise ExodfError(f"unknown event format {fmt!r} for {p}; choose one of {', '.join(EVENT_FORMATS)}")
    if pixel_size is not None and not pixel_size > 0:
        raise ExodfError(f"{p}: --pixel-size must be > 0 (got {pixel_size})")
    if pixel_size is not None and (p.suffix.lower() == ".xml" or fmt != "imagej"):
        raise ExodfError(f"{p}: the original's xml/csv are in pixels; a pixel size calibrates ImageJ tables only")
    if p.suffix.lower() == ".xml" or fmt == "xml":
        text = format_xml(table)
    elif fmt == "original-csv":
        text = format_original_csv(table)
    else:
        sep = "\t" if p.suffix.lower() in (".txt", ".tsv", ".xls") else ","
        text = format_imagej(table, sep=sep, row_numbers=row_numbers, pixel_size=pixel_size)
    write_text_atomic(p, text)
    return p
