"""Many movies at once: ``exodf detect --batch DIR`` over dask.distributed.

Each movie is one task (read, detect, write its table atomically) on a worker process that loads the
network once. A movie that fails is reported with its error; the others go on. Without ``scheduler`` a
LocalCluster is started on this machine; with one, the tasks go to that existing cluster (whose workers
need exodf installed and the movies' paths visible).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from .errors import ExodfError
from .jobs import DetectRequest, detect_file

__all__ = ["BatchResult", "detect_batch"]


@dataclass(frozen=True)
class BatchResult:
    """What happened to one movie of a batch (``error`` is None when it succeeded)."""

    movie: Path
    output: Path
    n_events: int = 0
    n_frames: int = 0
    seconds: float = 0.0
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _detect_one(movie: Path, output: Path, request: DetectRequest) -> BatchResult:
    """Run on a worker: never raises, so one bad movie cannot stop the batch."""
    from .io import quiet_tifffile

    quiet_tifffile()
    t0 = time.perf_counter()
    try:
        n_events, n_frames = detect_file(movie, output, request)
    except ExodfError as e:
        return BatchResult(movie, output, seconds=time.perf_counter() - t0, error=str(e))
    except Exception as e:  # an unexpected failure is still this movie's failure, reported with its type
        return BatchResult(movie, output, seconds=time.perf_counter() - t0, error=f"{type(e).__name__}: {e}")
    return BatchResult(movie, output, n_events, n_frames, time.perf_counter() - t0)


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
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ExodfError("--batch needs dask.distributed: pip install 'exodf[batch]'") from None
    if len(movies) != len(outputs):
        raise ValueError("detect_batch: one output per movie")
    cluster = None
    if scheduler is None:
        n = workers or max(1, (os.cpu_count() or 2) // 2)
        threads = max(1, (os.cpu_count() or 2) // n)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.WARNING,
                               env={"OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads),
                                    "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"})
    try:
        try:
            client = Client(cluster if cluster is not None else scheduler, timeout="30s")
        except OSError as e:
            raise ExodfError(f"--scheduler {scheduler}: cannot reach the dask scheduler ({e}); check the address "
                             "or omit --scheduler to run on this machine") from None
        with client:
            futures = [client.submit(_detect_one, Path(m), Path(o), request, pure=False, key=f"exodf-{i}-{Path(m).name}")
                       for i, (m, o) in enumerate(zip(movies, outputs))]
            index = {f.key: i for i, f in enumerate(futures)}
            results: list[Optional[BatchResult]] = [None] * len(futures)
            for done, fut in enumerate(as_completed(futures), start=1):
                i = index[fut.key]
                try:
                    res = fut.result()
                except Exception as e:  # the worker process itself died (e.g. out of memory)
                    res = BatchResult(Path(movies[i]), Path(outputs[i]), error=f"worker failed: {e}")
                results[i] = res
                if progress is not None:
                    progress(res, done, len(futures))
    finally:
        if cluster is not None:
            cluster.close()
    return [r for r in results if r is not None]
