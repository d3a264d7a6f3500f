"""Many movies at once: ``exodf detect --batch DIR`` over dask.distributed.

Each movie is one task (read, detect, write its table atomically) on a worker process that loads the
network once. A movie that fails is reported with its error; the others go on. Without ``scheduler`` a
LocalCluster is started on this machine; with one, the tasks go to that existing cluster (whose workers
need exodf installed and the movies' paths visible).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .atomic import os_error_text
from .errors import ExodfError, pip_install
from .jobs import DetectRequest, detect_file

__all__ = ["BatchResult", "detect_batch", "local_workers"]


@dataclass(frozen=True)
class BatchResult:
    """What happened to one movie of a batch (``error`` is None when it succeeded; ``warnings``: what its
    detection warned about, brought back from the worker)."""

    movie: Path
    output: Path
    n_events: int = 0
    n_frames: int = 0
    seconds: float = 0.0
    error: Optional[str] = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def _detect_one(movie: Path, output: Path, request: DetectRequest) -> BatchResult:
    """Run on a worker: never raises, so one bad movie cannot stop the batch."""
    from .io import quiet_tifffile
    from .quiet import quiet_tensorflow_import

    quiet_tifffile()
    quiet_tensorflow_import()  # a worker's first movie imports TensorFlow: its notices read like errors
    t0 = time.perf_counter()
    with _Warnings() as caught:
        try:
            n_events, n_frames = detect_file(movie, output, request)
        except (ExodfError, OSError) as e:  # (a file that cannot be written: named, as exodf detect says it)
            error = os_error_text(e) if isinstance(e, OSError) else str(e)
            return BatchResult(movie, output, seconds=time.perf_counter() - t0, error=error,
                               warnings=caught.messages())
        except Exception as e:  # an unexpected failure is still this movie's failure, reported with its type
            return BatchResult(movie, output, seconds=time.perf_counter() - t0, error=f"{type(e).__name__}: {e}",
                               warnings=caught.messages())
    return BatchResult(movie, output, n_events, n_frames, time.perf_counter() - t0, warnings=caught.messages())


class _Warnings(logging.Handler):
    """Collects the warnings exodf logs in this thread (a worker's log is not the user's terminal); while it
    is attached, Python does not also print them on the worker's stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append(record)

    def messages(self) -> tuple[str, ...]:
        return tuple(r.getMessage() for r in self.records)

    def __enter__(self) -> "_Warnings":
        logging.getLogger("exodf").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("exodf").removeHandler(self)


def local_workers(workers: Optional[int] = None) -> int:
    """Worker processes of a local cluster: ``workers``, or one per two CPU cores this process may use."""
    return workers or max(1, _cpus() // 2)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on (taskset, cgroups, SLURM)
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 2


def detect_batch(movies: Sequence[Path], outputs: Sequence[Path], request: DetectRequest = DetectRequest(),
                 scheduler: Optional[str] = None, workers: Optional[int] = None,
                 progress: Optional[Callable[[BatchResult, int, int], None]] = None) -> list[BatchResult]:
    """Detect the events of every movie on a dask cluster; returns one result per movie, in input order.

    Parameters
    ----------
    movies, outputs
        The movies and where each one's event table goes.
    scheduler
        Address of an existing dask scheduler (``tcp://host:8786``); default: a LocalCluster here.
    workers
        LocalCluster worker processes (default: one per two CPU cores, at least one).
    progress
        Called as each movie finishes with (its result, movies done, movies in all).
    """
    try:
        from distributed import Client, LocalCluster, wait
    except ImportError:
        raise ExodfError(f"--batch needs dask.distributed: {pip_install('batch')}") from None
    if len(movies) != len(outputs):
        raise ValueError("detect_batch: one output per movie")
    if workers is not None and workers < 1:
        raise ExodfError(f"--workers {workers}: give at least 1 worker process")
    # the network is chosen here, once: workers elsewhere lack this shell's EXODF_WEIGHTS and cache, and a
    # missing file is one error before any work, not one per movie
    if request.model is None:
        from .pretrained import resolve_weights

        request = dataclasses.replace(request, weights=resolve_weights(request.weights))
    elif not Path(request.model).exists():
        raise ExodfError(f"--model {request.model}: not found; give a bioimage.io package (folder, rdf.yaml or .zip)")
    # a worker of another machine (or started elsewhere) resolves relative paths in its own folder
    movies, outputs = [Path(m).absolute() for m in movies], [Path(o).absolute() for o in outputs]
    request = dataclasses.replace(request, **{k: Path(v).absolute() for k in ("weights", "model", "mask")
                                              if (v := getattr(request, k)) is not None})
    cluster = None
    if scheduler is None:
        n = local_workers(workers)
        threads = max(1, _cpus() // n)
        # memory_limit=0: dask would restart a worker past 95 % of RAM/n, although one movie's detection is
        # bounded (streamed) and the movies of the others may need less; the system's limit is the real one
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR, memory_limit=0,  # (a movie's warnings come back
                               # in its result; a Ctrl-C made the workers log their cancelled tasks)
                               env={"OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads),
                                    "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"})
    try:
        client = Client(cluster) if cluster is not None else _connect(Client, str(scheduler))
        with client:
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except Exception:
                if cluster is not None:
                    raise ExodfError(f"the local dask cluster started no worker in {WORKER_WAIT_S:.0f} s (see the "
                                     "messages above); try --workers 1") from None
                raise ExodfError(f"--scheduler {scheduler}: the scheduler has no worker after {WORKER_WAIT_S:.0f} s; "
                                 "start workers (dask worker ADDRESS) or omit --scheduler") from None
            results = _run(client, wait, movies, outputs, request, progress, local=cluster is not None)
    finally:
        if cluster is not None:
            # workers busy tearing TensorFlow down outlive the nanny's 4-s wait: a warning on every batch
            logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
            cluster.close()
    return results


def _connect(client_type: Any, scheduler: str, timeout_s: float = 45.0) -> Any:
    """A dask Client of ``scheduler``, or one clear error: refused, unknown host or scheme, or a port that
    answers without being a dask scheduler (its dashboard, any web server), whose handshake never ends."""
    refused = _refused(scheduler)
    if refused:  # at once, not after the client's 30 s of retries
        raise ExodfError(f"--scheduler {scheduler}: cannot connect to a dask scheduler there ({refused}); check the "
                         "address (tcp://HOST:8786) and that the scheduler runs, or omit --scheduler to run on this "
                         "machine")
    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            box["client"] = client_type(scheduler, timeout="30s")
        except BaseException as e:  # reported below
            box["error"] = e

    t = threading.Thread(target=connect, name="exodf-dask-connect", daemon=True)  # a hung one must not block exit
    t.start()
    t.join(timeout_s)
    e = box.get("error")
    if "client" in box:
        return box["client"]
    why = f"{type(e).__name__}: {e}" if e is not None else f"no dask scheduler answered within {timeout_s:.0f} s"
    raise ExodfError(f"--scheduler {scheduler}: cannot connect to a dask scheduler there ({why}); check the address "
                     "(tcp://HOST:8786, not the dashboard's port) or omit --scheduler to run on this machine")


def _refused(scheduler: str) -> str | None:
    """Why a tcp:// address plainly cannot be reached (unknown host, connection refused), or None."""
    import socket
    from urllib.parse import urlsplit

    try:
        u = urlsplit(scheduler if "://" in scheduler else f"tcp://{scheduler}")
        host, port = u.hostname, u.port
    except ValueError:
        return None
    if u.scheme != "tcp" or not host or port is None:
        return None  # (other schemes, a default port: the client decides)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except (ConnectionRefusedError, socket.gaierror) as e:
        return f"{type(e).__name__}: {e}"
    except OSError:
        return None  # a timeout, a firewall: the client's own attempt says more
    return None


WORKER_WAIT_S = 60.0  # how long a batch waits for a worker, at the start or after the cluster lost them all
POLL_S = 5.0  # how often a batch with nothing finishing checks that the cluster still has workers


def _run(client: Any, wait: Any, movies: list[Path], outputs: list[Path], request: DetectRequest,
         progress: Optional[Callable[[BatchResult, int, int], None]], local: bool = True) -> list[BatchResult]:
    from distributed import KilledWorker

    batch = uuid.uuid4().hex[:12]  # keys of their own: two batches on one scheduler must not share results
    futures = [client.submit(_detect_one, m, o, request, pure=False, key=f"exodf-{batch}-{i}-{m.name}")
               for i, (m, o) in enumerate(zip(movies, outputs))]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Optional[BatchResult]] = [None] * len(futures)
    pending, done, no_worker_since = set(futures), 0, None

    def report(i: int, res: BatchResult) -> None:
        nonlocal done
        results[i], done = res, done + 1
        if progress is not None:
            progress(res, done, len(futures))

    def give_up(why: str) -> None:
        for fut in sorted(pending, key=lambda f: index[f.key]):
            fut.cancel()
            i = index[fut.key]
            report(i, BatchResult(movies[i], outputs[i], error=why))

    try:
        while pending:
            try:
                finished, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except (TimeoutError, asyncio.TimeoutError):  # nothing finished (two types before 3.11): anyone working?
                try:
                    has_workers = bool(client.scheduler_info().get("workers"))
                except Exception:
                    has_workers = False
                if has_workers:
                    no_worker_since = None
                elif no_worker_since is None:
                    no_worker_since = time.monotonic()
                elif time.monotonic() - no_worker_since > WORKER_WAIT_S:
                    give_up(f"no dask worker left for {WORKER_WAIT_S:.0f} s (the cluster lost its workers); run it "
                            "again")
                    break
                continue
            except Exception as e:  # the scheduler is gone (FuturesCancelledError, connection closed)
                give_up(f"the batch lost its dask scheduler ({type(e).__name__}) before this movie was done; run "
                        "it again")
                break
            for fut in sorted(finished, key=lambda f: index[f.key]):
                i = index[fut.key]
                try:
                    res = fut.result()
                except KilledWorker:
                    res = BatchResult(movies[i], outputs[i], error="the worker process died on this movie several "
                                      "times (most often out of memory): give fewer --workers, or detect it alone")
                except Exception as e:  # the worker process itself died, the task was cancelled
                    res = BatchResult(movies[i], outputs[i], error=f"worker failed: {type(e).__name__}: {e}")
                report(i, res)
    except BaseException:  # Ctrl-C: tasks not started are withdrawn (a running one may still finish elsewhere)
        if not local:
            with contextlib.suppress(Exception):
                client.cancel(list(pending))
        raise
    return [r for r in results if r is not None]
