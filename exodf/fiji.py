"""The Fiji/ImageJ bridge: ImageJ tables, overlays and macros from Python, and exodf's macros for Fiji.

Two ways to reach ImageJ, both through the ImageJ 1.x classes (``ij.IJ``, ``ij.measure.ResultsTable``,
``ij.gui.Overlay``) that Fiji and plain ImageJ share:

- a Fiji the user names (``fiji=`` / ``--fiji`` or ``$EXODF_FIJI``): started with pyimagej
  (``imagej.init(fiji_dir, mode=...)``), lazily imported;
- otherwise a local ``ij.jar`` (``ij_jar=`` / ``$EXODF_IJ_JAR``, or Debian's ``/usr/share/java/ij.jar``)
  started with scyjava (JPype) on the system Java.

Java allows one virtual machine per process, so the first :func:`start_imagej` decides which ImageJ the
process uses. Macros that need windows (``open()``, the ROI Manager) run in a separate ImageJ process
(:func:`run_batch_macro`), under ``xvfb-run`` when there is no display.

Coordinates: exodf's x, y are pixel indices; ImageJ draws pixel (i, j) centred at (i + 0.5, j + 0.5),
so an event's circle is centred there. ImageJ's ``Slice`` is the 1-based nearest frame.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Sequence

from .atomic import atomic_path
from .errors import ExodfError
from .events import EventTable, imagej_extra_columns

__all__ = ["ImageJ", "start_imagej", "find_ij_jar", "find_fiji", "find_java", "events_to_results_table",
           "results_table_to_events", "add_overlay", "save_overlay", "macro_text", "install_macros",
           "run_batch_macro", "on_virtual_screen", "OverlayStyle", "fiji_ij_jar"]

DEBIAN_IJ_JAR = Path("/usr/share/java/ij.jar")
_IJ_JAR_HINT = ("install ImageJ (Debian/Ubuntu: apt-get install imagej), pass --ij-jar PATH or set "
                "EXODF_IJ_JAR to an ij.jar, or name a Fiji with --fiji / EXODF_FIJI")


def find_java(fiji: Optional[Path] = None) -> Path:
    """The ``java`` executable: ``$JAVA_HOME/bin/java``, then the one a Fiji.app bundles (``fiji``), then
    ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home:
        for name in ("java", "java.exe"):
            cand = Path(home) / "bin" / name
            if cand.is_file():
                return cand
    if fiji is not None:  # Fiji.app/java/<platform>/<jdk>/bin/java (older: .../jre/bin/java)
        for pattern in ("java/*/*/bin/java", "java/*/*/bin/java.exe", "java/*/*/jre/bin/java",
                        "java/*/*/jre/bin/java.exe", "java/*/*/Contents/Home/bin/java"):
            found_in_fiji = sorted(fiji.glob(pattern))
            if found_in_fiji:
                return found_in_fiji[-1]
    found = shutil.which("java")
    if found is None:
        raise ExodfError("no Java runtime found (java is not on PATH and JAVA_HOME is unset); install one "
                         "(Debian/Ubuntu: apt-get install default-jre-headless) or set JAVA_HOME")
    return Path(found)


def find_fiji(fiji: Optional[str | os.PathLike[str]] = None) -> Optional[Path]:
    """The Fiji.app folder the user named (argument, else ``$EXODF_FIJI``), checked; None if none named."""
    named = fiji if fiji is not None else os.environ.get("EXODF_FIJI")
    if not named:
        return None
    p = Path(named).expanduser()
    if not p.is_dir() or not (p / "jars").is_dir():
        raise ExodfError(f"{p}: not a Fiji installation (no jars/ folder inside); give the Fiji.app folder "
                         "with --fiji or EXODF_FIJI")
    return p


def fiji_ij_jar(fiji: Path) -> Path:
    """The ImageJ 1.x jar inside a Fiji.app (``jars/ij-<version>.jar``)."""
    jars = sorted((fiji / "jars").glob("ij-1*.jar")) or sorted((fiji / "jars").glob("ij*.jar"))
    if not jars:
        raise ExodfError(f"{fiji}: no ImageJ 1.x jar (jars/ij-1.*.jar) in this Fiji; update Fiji, or give "
                         "--ij-jar PATH")
    return jars[-1]


def find_ij_jar(ij_jar: Optional[str | os.PathLike[str]] = None) -> Path:
    """A local ImageJ 1.x jar: the argument, ``$EXODF_IJ_JAR``, or Debian's ``/usr/share/java/ij.jar``."""
    named = ij_jar if ij_jar is not None else os.environ.get("EXODF_IJ_JAR")
    p = Path(named).expanduser() if named else DEBIAN_IJ_JAR
    if not p.is_file():
        raise ExodfError(f"{p}: ImageJ jar not found; {_IJ_JAR_HINT}")
    return p


@dataclass(frozen=True)
class ImageJ:
    """A running ImageJ reached from Python.

    Attributes
    ----------
    backend
        ``"fiji"`` (pyimagej) or ``"ij.jar"`` (scyjava).
    gateway
        pyimagej's ImageJ2 gateway (``None`` for ``ij.jar``).
    """

    backend: str
    gateway: Any = None

    def jclass(self, name: str) -> Any:
        """A Java class of the running ImageJ, e.g. ``jclass("ij.IJ")``."""
        import scyjava

        return scyjava.jimport(name)

    @property
    def version(self) -> str:
        return str(self.jclass("ij.IJ").getVersion())

    def open_movie(self, path: str | os.PathLike[str]) -> Any:
        """Open a movie as an ``ij.ImagePlus`` (not shown)."""
        p = Path(path)
        if not p.is_file():
            raise ExodfError(f"{p}: movie not found; give an existing TIFF")
        imp = self.jclass("ij.IJ").openImage(str(p))
        if imp is None:
            raise ExodfError(f"{p}: ImageJ cannot open this file; save the movie as TIFF")
        return imp

    def run_macro(self, code: str, argument: str = "") -> str:
        """Run ImageJ macro code in this ImageJ; returns the macro's return value ("" if none).

        Macros that need windows fail in a headless ImageJ: run those with :func:`run_batch_macro`.
        """
        out = self.jclass("ij.IJ").runMacro(code, argument)
        if out is not None and str(out) == "[aborted]":
            raise ExodfError("the ImageJ macro was aborted (a macro error); run it in Fiji to see the message")
        return "" if out is None else str(out)


_SESSION: list[ImageJ] = []


def start_imagej(fiji: Optional[str | os.PathLike[str]] = None, ij_jar: Optional[str | os.PathLike[str]] = None,
                 mode: str = "headless") -> ImageJ:
    """Start ImageJ in this process (once; later calls return the same one).

    Parameters
    ----------
    fiji
        A Fiji.app folder (default ``$EXODF_FIJI``): started with pyimagej in ``mode``.
    ij_jar
        Without a Fiji: the ImageJ 1.x jar (default ``$EXODF_IJ_JAR`` or ``/usr/share/java/ij.jar``).
    mode
        pyimagej's mode for a Fiji: ``headless``, ``interactive`` or ``gui``.

    Raises
    ------
    ExodfError
        When pyimagej/scyjava, Java or ImageJ is missing, naming what to install.
    """
    if _SESSION:
        return _SESSION[0]
    fiji_dir = find_fiji(fiji)
    if fiji_dir is not None:
        try:
            import imagej  # pyimagej
        except ImportError:
            raise ExodfError(f"--fiji {fiji_dir}: starting Fiji from Python needs pyimagej; "
                             "pip install pyimagej (or leave out --fiji to use a local ij.jar)") from None
        find_java()
        try:
            gateway = imagej.init(str(fiji_dir), mode=mode)
        except Exception as e:  # pyimagej raises many kinds (JVM, Maven, class path)
            raise ExodfError(f"{fiji_dir}: Fiji did not start through pyimagej ({e}); check that this Fiji "
                             "opens on its own and that JAVA_HOME names a Java 8-21") from None
        _SESSION.append(ImageJ("fiji", gateway))
        return _SESSION[0]
    jar = find_ij_jar(ij_jar)
    try:
        import scyjava
    except ImportError:
        raise ExodfError("reaching ImageJ from Python needs scyjava; pip install scyjava") from None
    java = find_java()
    if not scyjava.jvm_started():
        os.environ.setdefault("JAVA_HOME", str(java.resolve().parent.parent))
        scyjava.config.set_java_constraints(fetch="never")  # use the system Java, never download one
        scyjava.config.add_classpath(str(jar))
        if mode == "headless":
            scyjava.config.add_option("-Djava.awt.headless=true")
        try:
            scyjava.start_jvm()
        except Exception as e:
            raise ExodfError(f"{java}: the Java virtual machine did not start ({e}); install a Java runtime "
                             "(apt-get install default-jre-headless) or set JAVA_HOME") from None
    try:
        scyjava.jimport("ij.IJ")
    except Exception:
        raise ExodfError(f"{jar}: ImageJ classes not found in the running Java; {_IJ_JAR_HINT}") from None
    _SESSION.append(ImageJ("ij.jar"))
    return _SESSION[0]


# ---------------------------------------------------------------------------------------------------
# ResultsTable <-> EventTable
# ---------------------------------------------------------------------------------------------------
def events_to_results_table(table: EventTable, ij: Optional[ImageJ] = None,
                            pixel_size: Optional[float] = None) -> Any:
    """An ``ij.measure.ResultsTable`` with X, Y (pixels, or × ``pixel_size``: calibrated, e.g. µm), Slice
    (1-based nearest frame) and every column, frame columns 1-based as in exodf's files (``Peak_slice``)."""
    if pixel_size is not None and not pixel_size > 0:
        raise ExodfError(f"pixel_size must be > 0 (got {pixel_size})")
    scale = 1.0 if pixel_size is None else float(pixel_size)
    ij = ij or start_imagej()
    rt = ij.jclass("ij.measure.ResultsTable")()
    extra = imagej_extra_columns(table)  # 0-based frame columns 1-based as in exodf's ImageJ files
    sl = table.slice
    for i in range(len(table)):
        rt.incrementCounter()
        rt.addValue("X", float(table.x[i]) * scale)
        rt.addValue("Y", float(table.y[i]) * scale)
        rt.addValue("Slice", float(sl[i]))
        for k, v in extra.items():
            rt.addValue(k, float(v[i]))
    return rt


def results_table_to_events(rt: Any, pixel_size: Optional[float] = None) -> EventTable:
    """An :class:`EventTable` from a ResultsTable with X, Y and Slice (or Frame) columns, read by the rules of
    an ImageJ table saved to a file (:func:`exodf.events.read_events`): Slice or Frame, whichever counts
    time on a hyperstack; ``pixel_size`` for X/Y measured calibrated (e.g. µm: ImageJ's table does not say);
    other numeric columns kept."""
    from .events import parse_delimited

    headings = [str(h) for h in rt.getHeadings()]
    n = int(rt.size())
    if n == 0 and not headings:
        return EventTable.empty()
    import csv
    import io

    cells = []
    for h in headings:
        if h == "Label":  # the row labels: not a column to ImageJ's getColumn
            cells.append([str(rt.getLabel(i) or "") for i in range(n)])
            continue
        vals = rt.getColumn(h) if n else None
        if vals is None:  # a text column
            cells.append([str(rt.getStringValue(h, i)) for i in range(n)])
        else:
            cells.append([repr(float(v)) for v in vals])
    buf = io.StringIO()  # quoted where needed: a label may hold a tab or a quote
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(headings)
    writer.writerows([c[i] for c in cells] for i in range(n))
    return parse_delimited(buf.getvalue(), "the ImageJ Results table", pixel_size)


# ---------------------------------------------------------------------------------------------------
# overlays
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OverlayStyle:
    """How events are drawn: a circle of ``radius`` px on frames ``slice − before`` .. ``slice + after``."""

    radius: float = 4.5
    before: int = 2
    after: int = 5
    color: str = "yellow"

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ValueError(f"OverlayStyle.radius must be > 0, got {self.radius}")
        if self.before < 0 or self.after < 0:
            raise ValueError("OverlayStyle.before and OverlayStyle.after must be >= 0")


def add_overlay(imp: Any, table: EventTable, style: OverlayStyle = OverlayStyle(),
                ij: Optional[ImageJ] = None) -> Any:
    """Put a circle per event and frame on ``imp``'s overlay (replacing it); returns the ``ij.gui.Overlay``.

    Each ROI is named ``SSSS-YYYY-XXXX`` (slice, row, column: ImageJ's ROI Manager convention).
    """
    ij = ij or start_imagej()
    Overlay, OvalRoi, Colors = (ij.jclass(c) for c in ("ij.gui.Overlay", "ij.gui.OvalRoi", "ij.plugin.Colors"))
    hyper = bool(imp.isHyperStack())
    n_frames = int(imp.getNFrames()) if hyper else int(imp.getStackSize())
    color = Colors.decode(style.color, None)
    ov = Overlay()
    r = float(style.radius)
    for x, y, s in zip(table.x, table.y, table.slice):
        for f in range(int(s) - style.before, int(s) + style.after + 1):
            if not 1 <= f <= n_frames:
                continue
            roi = OvalRoi(float(x) + 0.5 - r, float(y) + 0.5 - r, 2 * r, 2 * r)
            if hyper:
                roi.setPosition(0, 0, f)
            else:
                roi.setPosition(f)
            roi.setName(f"{f:04d}-{int(round(y)):04d}-{int(round(x)):04d}")
            if color is not None:
                roi.setStrokeColor(color)
            ov.add(roi)
    imp.setOverlay(ov)
    return ov


def check_overlay_path(path: str | os.PathLike[str]) -> None:
    """Raise :class:`ExodfError` unless ``path`` names a file an overlay is saved as (before ImageJ starts)."""
    p = Path(path)
    if p.suffix.lower() not in (".zip", ".tif", ".tiff"):
        raise ExodfError(f"{p}: save an overlay as .zip (ROI set) or .tif (movie with overlay)")


def save_overlay(imp: Any, path: str | os.PathLike[str], ij: Optional[ImageJ] = None) -> Path:
    """Save ``imp``'s overlay atomically: ``.zip`` as an ImageJ ROI set, ``.tif`` as the movie with it."""
    ij = ij or start_imagej()
    p = Path(path)
    ov = imp.getOverlay()
    if ov is None:
        raise ExodfError(f"{p}: the image has no overlay to save; add the events first")
    check_overlay_path(p)
    suffix = p.suffix.lower()
    with atomic_path(p) as tmp:
        if suffix == ".zip":
            J = {c.rsplit(".", 1)[1]: ij.jclass(c) for c in (
                "java.io.FileOutputStream", "java.io.BufferedOutputStream", "java.io.DataOutputStream",
                "java.util.zip.ZipOutputStream", "java.util.zip.ZipEntry", "ij.io.RoiEncoder")}
            zos = J["ZipOutputStream"](J["BufferedOutputStream"](J["FileOutputStream"](str(tmp))))
            out = J["DataOutputStream"](zos)
            enc = J["RoiEncoder"](out)
            try:
                seen: dict[str, int] = {}
                for roi in ov.toArray():
                    name = str(roi.getName())
                    seen[name] = seen.get(name, 0) + 1
                    entry = name if seen[name] == 1 else f"{name}-{seen[name]}"
                    zos.putNextEntry(J["ZipEntry"](entry + ".roi"))
                    enc.write(roi)
                    out.flush()
            finally:
                out.close()
        elif not ij.jclass("ij.IJ").saveAsTiff(imp, str(tmp)):
            raise ExodfError(f"{p}: ImageJ could not save the movie with its overlay; check the folder")
    return p


# ---------------------------------------------------------------------------------------------------
# macros
# ---------------------------------------------------------------------------------------------------
MACROS = ("exodf_toolset.ijm", "exodf_batch.ijm")


def _ijm_string(s: str) -> str:
    """A macro-language string expression for ``s``. ImageJ reads ``-batch`` macro files as ISO-8859-1, so
    a character outside ASCII (a Python in /home/zoë/) is written as ``fromCharCode(n)``, not as UTF-8."""
    parts, plain = [], []
    for ch in s:
        if ord(ch) < 128:
            plain.append({"\\": "\\\\", '"': '\\"', "\n": "\\n"}.get(ch, ch))
            continue
        parts.append('"' + "".join(plain) + '"')
        plain = []
        o = ord(ch)
        parts.append(f"fromCharCode({o})" if o < 0x10000 else  # beyond: a UTF-16 surrogate pair, as Java
                     f"fromCharCode({0xD800 + ((o - 0x10000) >> 10)}, {0xDC00 + ((o - 0x10000) & 0x3FF)})")
    parts.append('"' + "".join(plain) + '"')
    return " + ".join(p for p in parts if p != '""' or len(parts) == 1)


def default_exodf_command() -> list[str]:
    """How a macro runs exodf: this Python interpreter with ``-m exodf``."""
    return [sys.executable, "-m", "exodf"]


def macro_text(name: str, exodf_command: Optional[Sequence[str]] = None, style: OverlayStyle = OverlayStyle()
               ) -> str:
    """A ready-to-run macro of the set (``exodf_toolset.ijm`` or ``exodf_batch.ijm``): settings, then the
    shared functions, then the macro's own code."""
    if name not in MACROS:
        raise ValueError(f"macro_text: unknown macro {name!r}; choose one of {', '.join(MACROS)}")
    cmd = list(exodf_command) if exodf_command is not None else default_exodf_command()
    if not cmd or any("\n" in c for c in cmd):
        raise ValueError("macro_text: exodf_command must be non-empty elements without newlines")
    pkg = resources.files("exodf") / "fiji_macros"
    head = ("// generated by exodf; edit exodfCommand if exodf moves\n"
            f"var exodfCommand = {_ijm_string(chr(10).join(cmd))};\n"
            f"var exodfRadius = {style.radius!r};\nvar exodfBefore = {style.before};\n"
            f"var exodfAfter = {style.after};\n\n")
    return head + (pkg / name).read_text(encoding="utf-8") + "\n" + \
        (pkg / "exodf_functions.ijm").read_text(encoding="utf-8")


def install_macros(fiji_dir: str | os.PathLike[str], exodf_command: Optional[Sequence[str]] = None) -> list[Path]:
    """Install the macro set into a Fiji (or ImageJ) folder: ``macros/toolsets/exodf.ijm`` (chosen in the
    toolbar's >> menu: a tool and Plugins > Macros commands) and ``macros/exodf_batch.ijm`` (for ``-batch``).
    Returns the written files, the batch macro last."""
    root = Path(fiji_dir).expanduser()
    if not (root / "macros").is_dir():
        raise ExodfError(f"{root}: no macros/ folder; give the Fiji.app (or ImageJ) folder")
    out = []
    for name, target in (("exodf_toolset.ijm", root / "macros" / "toolsets" / "exodf.ijm"),
                         ("exodf_batch.ijm", root / "macros" / "exodf_batch.ijm")):
        with atomic_path(target) as tmp:
            tmp.write_text(macro_text(name, exodf_command), encoding="utf-8")
        out.append(target)
    return out


def run_batch_macro(macro: str | os.PathLike[str], argument: str = "", ij_jar: Optional[str | os.PathLike[str]] = None,
                    timeout: Optional[float] = 600, env: Optional[dict[str, str]] = None,
                    fiji: Optional[str | os.PathLike[str]] = None) -> subprocess.CompletedProcess[str]:
    """Run a macro file in a separate ImageJ process (``java -jar ij.jar -batch MACRO ARGUMENT``).

    The ImageJ is ``ij_jar``, else the ImageJ 1.x jar of the Fiji named (``fiji``), else ``$EXODF_IJ_JAR``,
    ``$EXODF_FIJI``'s, or Debian's ``/usr/share/java/ij.jar``; a Fiji's bundled Java runs it when
    ``$JAVA_HOME`` is unset. Without a display (no ``$DISPLAY``), the run goes through ``xvfb-run -a`` when
    it is installed, since ImageJ's ``open()`` and ROI Manager need a (virtual) screen. Returns the finished
    process (stdout holds what the macro printed).
    """
    root = None
    if ij_jar is not None:
        jar = find_ij_jar(ij_jar)
    elif fiji is not None or (not os.environ.get("EXODF_IJ_JAR") and os.environ.get("EXODF_FIJI")):
        root = find_fiji(fiji)
        jar = fiji_ij_jar(root)  # type: ignore[arg-type]
    else:
        jar = find_ij_jar(None)
    java = find_java(root)
    cmd = [str(java), "-jar", str(jar)] + (["-ijpath", str(root)] if root is not None else []) + \
        ["-batch", str(macro), argument]
    watched = False
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        # an error dialog on the virtual screen would wait unseen until the timeout: watch for one (x11-utils)
        watched = shutil.which("xwininfo") is not None
        cmd = on_virtual_screen((["sh", "-c", _WATCH_DIALOGS, "sh"] if watched else []) + cmd)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # its own process group: a timeout ends java too
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as e:
        with contextlib.suppress(ProcessLookupError):
            if hasattr(os, "killpg"):
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.communicate()
        if not isinstance(e, subprocess.TimeoutExpired):
            raise
        raise ExodfError(f"{macro}: ImageJ did not finish within {timeout} s (a dialog may be waiting); run "
                         "the macro in Fiji to see it") from None
    if watched and proc.returncode == _DIALOG_STATUS and _DIALOG_MARK in err:
        printed = out.strip().splitlines()
        raise ExodfError(f"{macro}: ImageJ stopped the macro with an error dialog (on the virtual screen, where its "
                         f"text cannot be read); the macro's last output: {printed[-1] if printed else '(none)'}; "
                         "run the macro in Fiji to see the error")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def on_virtual_screen(cmd: Sequence[str]) -> list[str]:
    """``cmd`` run on a virtual screen of its own (``xvfb-run -a``, a free display number).

    The X server is started with ``-noreset``: by default it resets each time its last client leaves, and a
    client connecting during a reset is refused ("Can't connect to X11 window server"); the dialog watcher's
    ``xwininfo`` leaves twice a second, so ImageJ's first window (a command's dialog, minutes into a macro)
    could fail to open. Raises :class:`ExodfError` when xvfb is not installed.
    """
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        raise ExodfError("ImageJ macros that open images need a display; install xvfb (apt-get install "
                         "xvfb) or run with a DISPLAY")
    return [xvfb, "-a", "-s", _XVFB_SERVER_ARGS] + list(cmd)


_XVFB_SERVER_ARGS = "-screen 0 1280x1024x24 -noreset"
_DIALOG_STATUS = 86
_DIALOG_MARK = "exodf: ImageJ error dialog"
# run "$@" (java ...) and stop it when ImageJ opens its macro-error or exception window
_WATCH_DIALOGS = f""""$@" &
pid=$!
while kill -0 $pid 2>/dev/null; do
  if xwininfo -root -tree 2>/dev/null | grep -q -E '"(Macro Error|Exception)"'; then
    echo "{_DIALOG_MARK}" >&2; kill $pid; wait $pid 2>/dev/null; exit {_DIALOG_STATUS}
  fi
  sleep 0.5
done
wait $pid"""
