"""``exodf detect --batch``: a corrupt movie is reported and the others are finished."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from exodf.events import read_events
from puffs import puff_movie


@pytest.mark.weights
def test_batch_with_one_corrupt_movie(tmp_path: Path, weights_path: Path) -> None:
    """The corrupt movie is reported, the others get the tables a plain run gives them; --skip-existing then
    detects only the movie whose table is missing."""
    from exodf.jobs import detect_file

    movies = tmp_path / "movies"
    movies.mkdir()
    tifffile.imwrite(movies / "a.tif", puff_movie(0, frames=24, size=48))
    tifffile.imwrite(movies / "b.tif", puff_movie(1, frames=26, size=56))
    (movies / "c_corrupt.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "exodf", "detect", "--batch", str(movies), "-o", str(out),
                        "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "3 movies: 2 done, 1 failed" in r.stdout
    assert "c_corrupt.tif: FAILED:" in r.stderr and "re-save it" in r.stderr
    # the workers' TensorFlow import notices and dask's shutdown warning are not the user's business
    for noise in ("oneDNN custom operations", "absl::InitializeLog", "Worker process still alive"):
        assert noise not in r.stderr, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a_events.csv", "b_events.csv"]
    for name in ("a", "b"):  # each movie's own events, as a plain detect finds them
        detect_file(movies / f"{name}.tif", tmp_path / f"{name}_plain.csv")
        plain, batch = read_events(tmp_path / f"{name}_plain.csv"), read_events(out / f"{name}_events.csv")
        assert len(batch) == len(plain) >= 2
        np.testing.assert_allclose(np.c_[batch.x, batch.y, batch.frame], np.c_[plain.x, plain.y, plain.frame])
    stamp = (out / "a_events.csv").stat().st_mtime_ns
    (out / "b_events.csv").unlink()
    (movies / "c_corrupt.tif").unlink()
    r = subprocess.run([sys.executable, "-m", "exodf", "detect", "--batch", str(movies), "-o", str(out),
                        "--workers", "1", "--skip-existing"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"skipped {movies / 'a.tif'}" in r.stderr and "b.tif" in r.stdout
    assert (out / "a_events.csv").stat().st_mtime_ns == stamp
    assert len(read_events(out / "b_events.csv")) == len(plain)


@pytest.mark.weights
def test_batch_library_results_in_input_order(tmp_path: Path, weights_path: Path) -> None:
    from exodf.batch import detect_batch
    from exodf.jobs import DetectRequest

    rng = np.random.default_rng(1)
    paths = []
    for name in ("x.tif", "missing.tif", "y.tif"):
        p = tmp_path / name
        if name != "missing.tif":
            tifffile.imwrite(p, rng.poisson(200, (12, 16, 16)).astype(np.uint16))
        paths.append(p)
    seen: list[int] = []
    res = detect_batch(paths, [tmp_path / f"{p.stem}.csv" for p in paths], DetectRequest(), workers=1,
                       progress=lambda r, done, total: seen.append(done))
    assert [r.movie.name for r in res] == ["x.tif", "missing.tif", "y.tif"]
    assert [r.ok for r in res] == [True, False, True]
    assert "movie not found" in (res[1].error or "")
    assert seen == [1, 2, 3]
    assert res[0].n_frames == 12


@pytest.mark.weights
def test_batch_on_an_external_cluster_resolves_paths_on_the_client(tmp_path: Path, weights_path: Path) -> None:
    """Workers started in another folder still read the user's movies and write where the user said."""
    import os
    import shutil
    import socket
    import time

    dask_cli = shutil.which("dask")
    if dask_cli is None:
        pytest.fail("the dask command (distributed) is missing: pip install 'exodf[batch]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    elsewhere = tmp_path / "worker folder"
    elsewhere.mkdir()
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    procs = [subprocess.Popen([dask_cli, "scheduler", "--port", str(port), "--dashboard-address", ":0"],
                              cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(3)
        procs.append(subprocess.Popen([dask_cli, "worker", address, "--nworkers", "1", "--nthreads", "1"],
                                      cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        user = tmp_path / "user"
        (user / "movies").mkdir(parents=True)
        rng = np.random.default_rng(2)
        tifffile.imwrite(user / "movies" / "a.tif", rng.poisson(300, (16, 32, 32)).astype(np.uint16))
        r = subprocess.run([sys.executable, "-m", "exodf", "detect", "--batch", "movies", "-o", "out", "--scheduler",
                            address, "--weights", str(weights_path)], capture_output=True, text=True, cwd=user,
                           timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 movie: 1 done, 0 failed" in r.stdout
        assert [p.name for p in (user / "out").iterdir()] == ["a_events.csv"]
        assert list(elsewhere.iterdir()) == []  # nothing landed in the workers' folder
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=60)


def test_batch_scheduler_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    tifffile.imwrite(tmp_path / "m" / "a.tif", np.zeros((4, 8, 8), np.uint16))
    r = subprocess.run([sys.executable, "-m", "exodf", "detect", "--batch", str(tmp_path / "m"), "--scheduler",
                        "http://127.0.0.1:8786"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot connect to a dask scheduler there" in r.stderr and "tcp://HOST:8786" in r.stderr
    # a refused connection or an unknown host is said at once (the dask client retried for 30 s first)
    from exodf.batch import _refused

    assert "ConnectionRefusedError" in _refused("tcp://127.0.0.1:9")
    assert "gaierror" in _refused("tcp://no-such-host.invalid:8786")
    assert _refused("http://127.0.0.1:9") is None and _refused("tcp://127.0.0.1") is None
    r = subprocess.run([sys.executable, "-m", "exodf", "detect", "--batch", str(tmp_path / "m"), "--scheduler",
                        "tcp://127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot connect to a dask scheduler there (ConnectionRefusedError" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "exodf", "detect", str(tmp_path / "m" / "a.tif"), "--workers", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "--scheduler and --workers go with --batch" in r.stderr


def test_batch_that_loses_every_worker_reports_the_rest_as_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import exodf.batch as batch
    from exodf.jobs import DetectRequest

    class Future:
        def __init__(self, key: str) -> None:
            self.key, self.cancelled = key, False

        def cancel(self) -> None:
            self.cancelled = True

    class Client:  # a cluster whose workers are gone: nothing ever finishes
        def submit(self, fn: object, movie: Path, out: Path, req: object, pure: bool, key: str) -> Future:
            return Future(key)

        def scheduler_info(self) -> dict[str, dict[str, object]]:
            return {"workers": {}}

    def wait(pending: set[Future], timeout: float, return_when: str) -> None:
        time.sleep(timeout)
        raise TimeoutError

    monkeypatch.setattr(batch, "POLL_S", 0.01)
    monkeypatch.setattr(batch, "WORKER_WAIT_S", 0.05)
    movies = [Path("/data/a.tif"), Path("/data/b.tif")]
    seen: list[str] = []
    res = batch._run(Client(), wait, movies, [Path("/out/a.csv"), Path("/out/b.csv")], DetectRequest(),
                     lambda r, done, total: seen.append(f"{done}/{total}"))
    assert [r.movie.name for r in res] == ["a.tif", "b.tif"] and seen == ["1/2", "2/2"]
    assert all(not r.ok and "no dask worker left" in (r.error or "") for r in res)


class _SharedScheduler:
    """A dask scheduler shared by several batches, as far as _run sees it: a key names one task, whoever
    submitted it, and tasks are kept (another batch may still hold them)."""

    def __init__(self) -> None:
        self.tasks: dict[str, object] = {}

    def submit(self, fn: object, movie: Path, out: Path, req: object, pure: bool, key: str) -> object:
        if key not in self.tasks:
            result = fn(movie, out, req)  # type: ignore[operator]

            class Future:
                def __init__(self) -> None:
                    self.key = key

                def result(self) -> object:
                    return result

                def cancel(self) -> None:
                    pass

            self.tasks[key] = Future()
        return self.tasks[key]

    def scheduler_info(self) -> dict[str, object]:
        return {"workers": {"w": {}}}


def _all_done(pending: set[object], timeout: float, return_when: str) -> tuple[set[object], set[object]]:
    return set(pending), set()


def test_two_batches_on_one_scheduler_keep_their_own_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two users' batches of movies named alike (cell1.tif) on one cluster: each gets its own movie's result
    (the keys were the movie's name and index: batch B printed batch A's table and exited 0)."""
    import exodf.batch as batch
    from exodf.jobs import DetectRequest

    monkeypatch.setattr(batch, "_detect_one", lambda m, o, r: batch.BatchResult(m, o, n_events=len(str(m))))
    shared = _SharedScheduler()
    a = batch._run(shared, _all_done, [Path("/a/cell1.tif")], [Path("/outA/cell1.csv")], DetectRequest(), None)
    b = batch._run(shared, _all_done, [Path("/bb/cell1.tif")], [Path("/outB/cell1.csv")], DetectRequest(), None)
    assert (a[0].movie, a[0].output) == (Path("/a/cell1.tif"), Path("/outA/cell1.csv"))
    assert (b[0].movie, b[0].output) == (Path("/bb/cell1.tif"), Path("/outB/cell1.csv"))


def test_a_lost_scheduler_or_a_killed_worker_is_reported_per_movie(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler going away mid-batch ended in a 120-line traceback; a worker dask killed repeatedly
    (out of memory) said only 'KilledWorker'."""
    from distributed import KilledWorker
    from distributed.client import FuturesCancelledError

    import exodf.batch as batch
    from exodf.jobs import DetectRequest

    class Client(_SharedScheduler):
        def submit(self, fn: object, movie: Path, out: Path, req: object, pure: bool, key: str) -> object:
            def dies() -> batch.BatchResult:
                raise KilledWorker(key, None, 3)  # type: ignore[arg-type]

            return super().submit(lambda m, o, r: None, movie, out, req, pure, key) if movie.name == "a.tif" \
                else type("F", (), {"key": key, "result": staticmethod(dies), "cancel": lambda self: None})()

    calls = []

    def wait(pending: set[object], timeout: float, return_when: str) -> tuple[set[object], set[object]]:
        calls.append(1)
        if len(calls) > 1:
            raise FuturesCancelledError([])
        killed = {f for f in pending if "b.tif" in f.key}  # type: ignore[attr-defined]
        return killed, set(pending) - killed

    movies = [Path("/d/a.tif"), Path("/d/b.tif")]
    seen: list[str] = []
    res = batch._run(Client(), wait, movies, [Path("/o/a.csv"), Path("/o/b.csv")], DetectRequest(),
                     lambda r, done, total: seen.append(f"{done}/{total}"))
    assert [r.movie.name for r in res] == ["a.tif", "b.tif"] and seen == ["1/2", "2/2"]
    assert "died on this movie several times" in (res[1].error or "") and "fewer --workers" in (res[1].error or "")
    assert "lost its dask scheduler" in (res[0].error or "")


def test_missing_weights_fail_once_before_any_worker_starts(tmp_path: Path) -> None:
    """They were resolved on each worker: the same error once per movie (and a worker elsewhere lacks this
    shell's EXODF_WEIGHTS)."""
    import time

    from exodf.batch import detect_batch
    from exodf.errors import ExodfError
    from exodf.jobs import DetectRequest

    t0 = time.perf_counter()
    with pytest.raises(ExodfError, match="nope.h5: weights file not found"):
        detect_batch([tmp_path / "a.tif", tmp_path / "b.tif"], [tmp_path / "a.csv", tmp_path / "b.csv"],
                     DetectRequest(weights=tmp_path / "nope.h5"))
    assert time.perf_counter() - t0 < 5  # no cluster was started


@pytest.mark.weights
def test_a_movies_warnings_come_back_from_its_worker(tmp_path: Path, weights_path: Path) -> None:
    """Logged on a worker, a warning reached a log on another machine (--scheduler), not the user."""
    from exodf.batch import _detect_one
    from exodf.jobs import DetectRequest

    movie = np.random.default_rng(3).poisson(300, (20, 32, 32)).astype(np.uint16)
    movie[7] = 0  # a closed shutter
    tifffile.imwrite(tmp_path / "dark.tif", movie)
    res = _detect_one(tmp_path / "dark.tif", tmp_path / "dark.csv", DetectRequest(weights=weights_path))
    assert res.ok and len(res.warnings) == 1 and "far darker than the others (Slice 8)" in res.warnings[0]


def test_a_file_that_cannot_be_written_is_named_as_detect_names_it(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker reported a full disk as "OSError: [Errno 28] No space left on device: '...'", where exodf detect
    says which file and what to do."""
    import errno

    from exodf import batch
    from exodf.jobs import DetectRequest

    def full(movie: Path, output: Path, request: DetectRequest) -> tuple[int, int]:
        raise OSError(errno.ENOSPC, "No space left on device", str(output))

    monkeypatch.setattr(batch, "detect_file", full)
    res = batch._detect_one(tmp_path / "m.tif", tmp_path / "m.csv", DetectRequest())
    assert res.error == f"{tmp_path / 'm.csv'}: the disk is full; free some space or write to another folder"
