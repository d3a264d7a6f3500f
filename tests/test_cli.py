"""The command line's entry point: usage errors, file-system errors and interruptions as one line each."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import exodf.cli as cli
from exodf.errors import ExodfError
from clirun import exodf_in_process, exodf_process


def _exodf(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return exodf_process(*args, cwd=cwd, timeout=300)  # the program itself: exit status, what it prints


@pytest.mark.parametrize("args, says", [
    (["detect", "--no-such-option"], "No such option: --no-such-option"),
    (["no-such-command"], "No such command 'no-such-command'"),
    (["detect", "--mask", "missing.tif", "m.tif"], "'--mask': file 'missing.tif' does not exist"),
    (["rates", "a.csv", "b.csv"], "does not exist"),
    (["evaluate", ".", ".", "--exclude-edges", "-3"], "--exclude-edges"),
])
def test_usage_errors_are_short_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    r = _exodf(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr and len(r.stderr.splitlines()) <= 4, r.stderr


def test_version(tmp_path: Path) -> None:
    """Results in a paper need the version that made them: `exodf --version` was 'No such option'."""
    import exodf

    r = _exodf("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == f"exodf {exodf.__version__}\n", r.stderr


def test_file_system_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def denied(**_: object) -> None:
        raise PermissionError(13, "Permission denied", "/data/out/events.csv")

    monkeypatch.setattr(cli, "app", denied)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err == "exodf: error: /data/out/events.csv: Permission denied; check that path and its permissions\n"


@pytest.mark.parametrize("error, says", [
    (OSError(errno.ENOSPC, "No space left on device", "out/m.csv"), "out/m.csv: the disk is full"),
    (OSError(None, "163840 requested and 102208 written", "sim/movie.tif"), "sim/movie.tif: the disk is full"),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "out/m.csv"), "out/m.csv: the disk is full"),
    (OSError("163840 requested and 102208 written"), "the disk is full"),  # (named where it can be: atomic_path)
])
def test_a_full_disk_is_said_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                error: OSError, says: str) -> None:
    """A full disk said "163840 requested and 102208 written; check that path and its permissions": no file,
    and advice that does not help."""
    def full(**_: object) -> None:
        raise error

    monkeypatch.setattr(cli, "app", full)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 1
    assert capsys.readouterr().err == f"exodf: error: {says}; free some space or write to another folder\n"


def _short_write(path: object, *args: object, **kwargs: object) -> None:
    """tifffile.imwrite on a full disk: part of the file written, then numpy's OSError with no errno, no file."""
    Path(str(path)).write_bytes(b"II*\x00" + bytes(1000))
    raise OSError("163840 requested and 1004 written")


def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """simulate, spots, measure and detect --probabilities on a full disk: one line naming the file being
    written, status 1, no temporary file, and no folder made for the outputs (simulate's stayed, empty)."""
    import pathlib

    import tifffile

    r = exodf_in_process("simulate", "sim", "--frames", "12", "--size", "24", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    before = sorted(tmp_path.rglob("*"))
    with monkeypatch.context() as m:
        m.setattr(tifffile, "imwrite", _short_write)
        r = exodf_in_process("simulate", "out/sim", "--frames", "12", "--size", "24", cwd=tmp_path)
        assert (r.returncode, r.stderr) == (1, "exodf: error: out/sim/movie.tif: the disk is full; free some space "
                                               "or write to another folder\n")
        r = exodf_in_process("spots", "sim/movie.tif", "-q", "-o", "out/sp.tif", cwd=tmp_path)
        assert (r.returncode, r.stderr) == (1, "exodf: error: out/sp.tif: the disk is full; free some space "
                                               "or write to another folder\n")
    real_write_text = pathlib.Path.write_text

    def no_space(self: Path, *args: object, **kwargs: object) -> int:
        if ".part" in self.name:  # exodf's outputs only (not pytest's own files)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(pathlib.Path, "write_text", no_space)
        r = exodf_in_process("measure", "sim/movie.tif", "sim/ground_truth.csv", "-o", "out/m.csv", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (1, "exodf: error: out/m.csv: the disk is full; free some space or write to "
                                           "another folder\n")

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)  # (the network is not needed: fails before)
    r = exodf_in_process("detect", "sim/movie.tif", "-q", "-o", "out/ev.csv", "--probabilities", "out/p.tif",
                         cwd=tmp_path)
    assert (r.returncode, r.stderr) == (1, "exodf: error: out/p.tif: the disk is full; free some space or write to "
                                           "another folder\n")
    assert sorted(tmp_path.rglob("*")) == before  # no out/, no .part file


@pytest.mark.parametrize("args", [
    ["simulate", "OUT"],
    ["demo", "-o", "OUT"],
    ["benchmark", "-o", "OUT", "--methods", "exoj-like"],
    ["bench", "--work", "OUT"],
    ["compare", "m.tif", "--gt", "gt.csv", "-o", "OUT"],
    ["train", "m.tif", "-e", "gt.csv", "-o", "OUT"],
])
def test_a_file_given_as_output_folder_is_one_line_before_any_work(tmp_path: Path, args: list[str]) -> None:
    """benchmark said "m.tif/control/seed_0/exodf_events.csv: Not a directory; check that path and its
    permissions"; demo printed "simulating a 200x200x200 ..." first; all say it as compare does, at once."""
    (tmp_path / "m.tif").write_bytes(b"II*\x00 not really a movie")
    (tmp_path / "gt.csv").write_text("X,Y,Slice\n1,1,1\n")
    r = exodf_in_process(*[a.replace("OUT", "m.tif") for a in args], cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "exodf: error: m.tif is a file, so no folder can be made "
                                                         "there; choose another output folder\n")
    r = exodf_in_process(*[a.replace("OUT", "m.tif/sub") for a in args], cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "exodf: error: m.tif/sub: m.tif is a file, so no folder can "
                                                         "be made there; choose another output folder\n")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["gt.csv", "m.tif"]


def test_errors_reach_stdout_for_imagej_when_asked(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def app(error: BaseException):
        def run(**_: object) -> None:
            cli._errors_to_stdout = True  # what --errors-to-stdout sets
            raise error
        return run

    monkeypatch.setattr(cli, "app", app(ExodfError("movie.tif: not a movie")))
    with pytest.raises(SystemExit):
        cli.main()
    out, err = capsys.readouterr()
    assert out == err == "exodf: error: movie.tif: not a movie\n"
    monkeypatch.setattr(cli, "app", app(MemoryError("Unable to allocate 38.1 GiB")))
    with pytest.raises(MemoryError):  # the traceback goes on to stderr
        cli.main()
    assert "exodf: error: MemoryError: Unable to allocate 38.1 GiB" in capsys.readouterr().out
    monkeypatch.setattr(cli, "app", lambda **_: (_ for _ in ()).throw(ExodfError("x")))
    with pytest.raises(SystemExit):
        cli.main()
    assert capsys.readouterr().out == ""  # without the option: stderr only, even after a run with it


def test_typer_interrupt_status_is_kept(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "app", lambda **_: 130)  # what typer returns for Ctrl-C without standalone mode
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 130 and "interrupted" in capsys.readouterr().err


def test_tensorflow_import_notices_are_kept_off_the_console() -> None:
    """TensorFlow's C++ side prints oneDNN/absl notices on import whatever TF_CPP_MIN_LOG_LEVEL says; the
    program drops them and keeps anything else written to stderr meanwhile."""
    code = ("import os, sys\nfrom exodf import cli, quiet\n"
            "def app(**_):\n"
            "    with quiet._filtered_stderr(quiet._TF_IMPORT_NOISE):\n"
            "        os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on. You may see\\nkept line\\n')\n"
            "    import tensorflow\n"
            "    return 0\n"
            "cli.app = app\ncli.run()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "kept line" in r.stderr
    assert "oneDNN" not in r.stderr and "absl::InitializeLog" not in r.stderr, r.stderr


_LATE_SIGNALS = """
import atexit, os, subprocess, sys, time
from exodf import cli

def second_ctrl_c():  # while Python shuts down: a shell sends SIGINT to this process until it has exited
    sh = subprocess.Popen(["sh", "-c", "echo go; while kill -INT %d 2>/dev/null; do :; done" % os.getpid()],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # (not the test's pipe)
    sh.stdout.readline()
    time.sleep(0.3)

def app(**_):
    atexit.register(second_ctrl_c)
    return 130  # what typer returns once a command was interrupted

cli.app = app
cli.run()
"""


def _exits_interrupted(program: str) -> None:
    """Run ``program`` (Python code ending in cli.run()): status 130 and the interruption message alone."""
    r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, r.stderr
    assert r.stderr == "exodf: interrupted; no partly written file was left\n"


def test_signals_while_exiting_after_an_interrupt_change_nothing() -> None:
    # a second Ctrl-C during shutdown turned status 130 into death by signal (-2) or a traceback
    _exits_interrupted(_LATE_SIGNALS)


def test_a_late_keyboard_interrupt_still_exits_130() -> None:
    """An interrupt surfacing after main() had handled the first (message printed) escaped run(), and Python
    then ended the process by SIGINT: status -2 instead of 130 (a CI flake)."""
    code = ("import exodf.cli as cli\n"
            "def app(**_):\n    return 130\n"
            "cli.app = app\n"
            "real_error = cli._error\n"
            "def late(message):\n    real_error(message)\n    raise KeyboardInterrupt\n"
            "cli._error = late\n"
            "cli.run()\n")
    _exits_interrupted(code)


def test_an_interrupt_inside_code_from_a_string_still_exits_130(tmp_path: Path) -> None:
    """Under ``python -m``, a KeyboardInterrupt caught after it went through ``exec``/``eval`` of a string
    (namedtuple, dataclasses, TensorFlow's tracing do that) made CPython end the process by SIGINT after its
    shutdown: status -2 although the interruption was handled and said (the CI flake of the killed detection)."""
    (tmp_path / "interrupted_in_exec").mkdir()
    (tmp_path / "interrupted_in_exec" / "__main__.py").write_text(
        "import exodf.cli as cli\n"
        "def app(**_):\n    exec('raise KeyboardInterrupt')  # as if Ctrl-C came while such code ran\n"
        "cli.app = app\n"
        "cli.run()\n")
    r = subprocess.run([sys.executable, "-m", "interrupted_in_exec"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 130, r.stderr
    assert r.stderr == "exodf: interrupted; no partly written file was left\n"


@pytest.mark.weights
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_killed_detection_exits_130_and_leaves_no_file(tmp_path: Path, weights_path: Path, sig: int) -> None:
    from exodf.io import write_tiff

    rng = np.random.default_rng(0)
    write_tiff(tmp_path / "movie.tif", rng.poisson(100, (600, 160, 160)).astype(np.uint16))
    # (far longer than the 1 s wait)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "exodf", "detect", str(tmp_path / "movie.tif"), "-o",
                             str(out / "events.csv"), "--probabilities", str(out / "p.tif"), "--weights",
                             str(weights_path), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 240
    while not (out.is_dir() and any(out.iterdir())):  # the probability map's temporary file: work has begun
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; no partly written file was left" in err
    assert not out.exists()  # the folder made for the outputs is removed again with the temporary file


@pytest.mark.parametrize("args, says", [
    (["evaluate", "e.csv", "e.csv", "--max-distance", "-1"], "--max-distance must be >= 0"),
    (["evaluate", "e.csv", "e.csv", "--dt-min", "3", "--dt-max", "1"], "--dt-min (3) must be <= --dt-max (1)"),
    (["spots", "m.tif", "-o", "s.tif", "--pfa", "0.9"], "--pfa must be in (0, 0.5)"),
    (["spots", "m.tif", "-o", "s.tif", "--scales", "1,,2"], "--scales '1,,2': give LoG scales in px separated"),
    (["spots", "m.tif", "-o", "s.tif", "--scales", "1,inf"], "--scales must be positive numbers, got (1.0, inf)"),
    (["spots", "m.tif", "-o", "s.tif", "--scales", "nan"], "--scales must be positive numbers, got (nan,)"),
    (["train", "m.tif", "--events", "e.csv", "-o", "tr", "--patch-sizes", "6"], "--patch-sizes must be a positive "
                                                                                "multiple of 4, got 6"),
    (["train", "m.tif", "--events", "e.csv", "-o", "tr", "--learning-rate", "0"], "--learning-rate must be > 0"),
    (["fiji", "overlay", "m.tif", "e.csv", "-o", "o.zip", "--radius", "0"], "--radius must be > 0"),
    (["measure", "m.tif", "e.csv", "--frame-interval", "0"], "--frame-interval must be > 0"),
    (["detect", "m.tif", "-o", "x.csv", "--tiling", "original", "--patch-size", "30"], "--patch-size must be"),
])
def test_option_errors_name_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                       says: str) -> None:
    """Errors named the settings' fields (OverlayStyle.radius, Rule.max_distance, Stage.patch) instead of the
    command's options."""
    from typer.testing import CliRunner

    from exodf.io import write_tiff

    monkeypatch.chdir(tmp_path)
    write_tiff("m.tif", np.random.default_rng(0).integers(100, 200, (12, 16, 16)).astype(np.uint16))
    Path("e.csv").write_text(" ,X,Y,Slice\n1,3,4,5\n")
    r = CliRunner().invoke(cli.app, args)
    assert r.exit_code == 1 and isinstance(r.exception, ExodfError), r.output
    assert str(r.exception).startswith("invalid option: --"), str(r.exception)
    assert says in str(r.exception) and "Config" not in str(r.exception), str(r.exception)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.csv", "m.tif"]  # nothing written


def test_install_hints_name_the_folder_exodf_runs_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """exodf is not on PyPI: an optional part is installed from exodf's own folder, which the hint names."""
    import exodf.errors as errors
    from exodf.batch import detect_batch

    root = Path(errors.__file__).resolve().parents[1]
    assert errors.pip_install("batch") == f"pip install -e '{root}[batch]'"
    monkeypatch.setitem(sys.modules, "distributed", None)  # dask.distributed not installed
    with pytest.raises(ExodfError, match=r"^--batch needs dask.distributed: pip install -e '.+\[batch\]'$"):
        detect_batch([tmp_path / "m.tif"], [tmp_path / "m.csv"])
    fake = tmp_path / "site-packages" / "exodf" / "errors.py"  # an installed copy, without a source folder
    fake.parent.mkdir(parents=True)
    monkeypatch.setattr(errors, "__file__", str(fake))
    assert errors.pip_install("zoo") == "pip install 'exodf[zoo]'"
