"""``exodf bench``: how fast and how lean detection is here, and whether it still finds the same events.

A control movie is simulated (cached in the work folder), ``exodf detect`` runs on it exactly as a user
runs it, in a child process whose own peak resident memory comes from the kernel (``wait4``), and its
events are compared with a reference computed independently: the network run as plain Keras calls on
tiles whose halo covers its whole receptive field (:func:`exodf.predict.iter_tiled_blocks`), which equals
one whole-volume pass. Agreement is the F1 of a one-to-one matching at ≤ 1.5 px and ≤ 1 frame.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .errors import ExodfError

__all__ = ["BenchResult", "run_bench", "AGREEMENT_RULE"]

AGREEMENT_RULE: dict[str, Any] = {"max_distance": 1.5, "dt_min": -1, "dt_max": 1, "one_to_one": True}
REFERENCE_CORE = (64, 320, 320)  # reference tiles (core; the halo is the receptive field): 300-px frames in one


@dataclass
class BenchResult:
    """Figures of one ``exodf bench`` run (seconds are the wall time of the whole ``exodf detect`` process,
    its start-up and network loading included; RSS is that process's peak; ``f1_vs_truth`` leaves out the
    first/last ``truth_exclude_edges`` frames)."""

    frames: int
    size: int
    seconds: float
    frames_per_second: float
    peak_rss_gb: float
    events: int
    f1_vs_truth: Optional[float]
    agreement_f1: Optional[float]
    reference_events: Optional[int]
    reference_seconds: Optional[float]
    cpus: int
    device: str
    tiling: str
    dtype: str = "float32"
    truth_exclude_edges: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict())


TRUTH_EDGES = 25  # frames left out at each end when scoring against the simulation's truth (if enough remain)


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU ({', '.join(g.name for g in gpus)})" if gpus else "CPU"


def _simulated_movie(work: Path, frames: int, size: int, seed: int) -> tuple[Path, Path]:
    """The control movie of this size and seed in ``work`` (reused; a damaged cached one is simulated again)."""
    from .events import write_events
    from .io import read_movie, write_tiff
    from .simulate import preset, simulate

    movie = work / f"control_{frames}x{size}x{size}_seed{seed}.tif"
    truth = movie.with_name(movie.stem + "_truth.csv")
    if movie.is_file() and truth.is_file():
        try:
            if read_movie(movie, check_finite=False).shape == (frames, size, size):
                return movie, truth
        except ExodfError:  # cut short by an interrupted copy or disk: our cache, not the user's file
            pass
    sim = simulate(preset("control", n_frames=frames, height=size, width=size), seed=seed)
    write_tiff(movie, sim.movie)
    write_events(sim.truth, truth)
    return movie, truth


def _timed_detect(movie: Path, out: Path, tiling: str, weights: Optional[Path],
                  dtype: str = "float32") -> tuple[float, float]:
    """Run ``exodf detect`` in a child process; (seconds, its peak RSS in GB)."""
    cmd = [sys.executable, "-m", "exodf", "detect", str(movie), "-o", str(out), "--tiling", tiling, "--dtype",
           dtype, "-q"]
    if weights is not None:
        cmd += ["--weights", str(weights)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise ExodfError(f"exodf detect failed on {movie} (exit {proc.returncode}):\n{err.strip()}")
    return seconds, usage.ru_maxrss / 1e6  # Linux reports kB


def reference_events(movie: np.ndarray, weights: Optional[Path] = None,
                     progress: Optional[Callable[[int, int], None]] = None, clip_outliers: bool = True) -> Any:
    """Events from the network run as plain Keras calls on receptive-field-halo tiles (= a whole-volume pass),
    static outliers clipped as the timed detection clips them (``clip_outliers``)."""
    from .detect import DetectConfig, collect_segmentation, events_from_segmentation
    from .jobs import load_detector
    from .normalize import normalize_frames, static_outliers
    from .predict import iter_tiled_blocks, keras_block_fn

    net = load_detector(weights)
    normalized = normalize_frames(movie, outliers=static_outliers(movie) if clip_outliers else None)
    blocks = iter_tiled_blocks(normalized, keras_block_fn(net), core=REFERENCE_CORE, progress=progress)
    return events_from_segmentation(collect_segmentation(movie.shape, blocks), DetectConfig())


def run_bench(frames: int = 1000, size: int = 300, seed: int = 0, work: Optional[Path] = None,
              reference: bool = True, tiling: str = "context", weights: Optional[Path] = None,
              progress: Optional[Callable[[str, int, int], None]] = None, dtype: str = "float32") -> BenchResult:
    """Simulate (or reuse) a control movie, time ``exodf detect`` on it and score it.

    Parameters
    ----------
    frames, size, seed
        The simulated movie: ``frames`` × ``size`` × ``size`` px (control preset).
    work
        Folder for the movie and the event tables (kept; a second run reuses the movie).
    reference
        Also compute the independent whole-volume reference and the agreement with it (slower than detect).
    tiling, dtype
        ``exodf detect --tiling`` and ``--dtype`` (the reference is always float32).
    """
    from .atomic import check_output_folder
    from .batch import _cpus  # (the cores this process may use: taskset, cgroups, SLURM)
    from .evaluate import score_events
    from .events import read_events
    from .io import read_movie
    from .predict import TILINGS
    from .stream import DTYPES

    if dtype not in DTYPES:
        raise ExodfError(f"exodf bench: --dtype {dtype!r}: choose {', '.join(DTYPES)}")
    if frames < 2 or size < 8 or seed < 0:
        raise ExodfError(f"exodf bench: --frames must be >= 2 (a movie), --size >= 8 and --seed >= 0 (got {frames}, "
                         f"{size}, {seed})")
    if weights is not None:  # before minutes of simulation, not from the detect child afterwards
        from .pretrained import resolve_weights

        resolve_weights(weights)
    if tiling not in TILINGS:
        raise ExodfError(f"exodf bench: --tiling {tiling!r}: choose {', '.join(TILINGS)}")
    work = Path(work) if work is not None else Path.cwd() / "exodf-bench"
    check_output_folder(work)  # (made by the movie's writing; removed again if that fails while it is empty)
    if progress:
        progress("simulate", 0, 1)
    movie_path, truth_path = _simulated_movie(work, frames, size, seed)
    if progress:
        progress("simulate", 1, 1)
        progress("detect", 0, 1)
    out = work / f"{movie_path.stem}_events_{tiling}{'' if dtype == 'float32' else '_' + dtype}.csv"
    seconds, rss = _timed_detect(movie_path, out, tiling, weights, dtype)
    if progress:
        progress("detect", 1, 1)
    events, truth = read_events(out), read_events(truth_path)
    agreement = ref_events = ref_seconds = None
    if reference:
        t0 = time.perf_counter()
        ref = reference_events(read_movie(movie_path), weights,
                               (lambda d, n: progress("reference", d, n)) if progress else None,
                               clip_outliers=tiling != "original")  # (the original never clips)
        ref_seconds = round(time.perf_counter() - t0, 1)
        agreement = score_events(events, ref, **AGREEMENT_RULE).f1
        ref_events = len(ref)
    edges = TRUTH_EDGES if frames > 2 * TRUTH_EDGES else 0  # (the paper leaves 25 out: a movie's start lacks context)
    f1 = score_events(events, truth, frames, exclude_edges=edges).f1
    return BenchResult(frames=frames, size=size, seconds=round(seconds, 1),
                       frames_per_second=round(frames / seconds, 2), peak_rss_gb=round(rss, 2), events=len(events),
                       f1_vs_truth=f1, agreement_f1=agreement, reference_events=ref_events,
                       reference_seconds=ref_seconds, cpus=_cpus(), device=_device(), tiling=tiling,
                       dtype=dtype, truth_exclude_edges=edges)
