"""``exodf detect``: movies in, ImageJ event tables out."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from ..errors import ExodfError
from ..events import TABLE_SUFFIXES
from ..predict import DEFAULT_TILE

# --channel and --plane, as every command that reads a movie takes them
Channel = Annotated[Optional[int], typer.Option(min=0, help="Channel to use in a multi-channel movie, counted from "
                                                "0 (ImageJ's C=1 is --channel 0).")]
Plane = Annotated[Optional[int], typer.Option(min=0, help="Z-plane to use in a movie with z and time, counted from "
                                              "0 (ImageJ's Z=1 is --plane 0).")]
# suffixes of files, not folders: '-o events.tif' made a folder of that name (or wrote into the movie's path)
NOT_FOLDERS = (".tif", ".tiff", ".ome", ".h5", ".hdf5", ".keras", ".png", ".jpg", ".jpeg", ".json", ".yaml",
               ".zip", ".xlsx", ".ods", ".npy", ".npz", ".ijm", ".roi")


def _per_frame(n_events: int, n_frames: int, exclude_edges: int) -> str:
    """Events per counted frame (those left after --exclude-edges), as evaluate counts them."""
    from ..evaluate import scored_frames

    return f"{n_events / scored_frames(n_frames, exclude_edges):.3f} per frame"


def _check_format(out: Path, fmt: str) -> None:
    """The file's suffix and --format agree (an .xml file of ImageJ text, or xml in a .csv, misleads)."""
    xml_suffix = out.suffix.lower() == ".xml"
    if xml_suffix and fmt != "xml":
        raise ExodfError(f"-o {out}: an .xml file holds the original's xml; add --format xml, or name the "
                         "output .csv/.txt for an ImageJ table")
    if fmt == "xml" and not xml_suffix:
        raise ExodfError(f"-o {out}: --format xml writes xml; name the output .xml")
    if fmt == "original-csv" and out.suffix.lower() != ".csv":
        raise ExodfError(f"-o {out}: --format original-csv writes comma-separated values; name the output .csv")


def output_for(movie: Path, out: Optional[Path], n_movies: int, fmt: str) -> Path:
    """Where a movie's events go: ``-o FILE`` (one movie), ``-o FOLDER``, or beside the movie."""
    from ..io import movie_stem

    default_suffix = ".xml" if fmt == "xml" else ".csv"
    name = f"{movie_stem(movie)}_events{default_suffix}"
    if out is None:
        return movie.parent / name
    if out.suffix.lower() in TABLE_SUFFIXES and not out.is_dir():
        if n_movies > 1:
            raise ExodfError(f"-o {out}: several movies need an output folder, not one file; give -o FOLDER")
        _check_format(out, fmt)
        return out
    if out.suffix.lower() in NOT_FOLDERS and not out.is_dir():
        raise ExodfError(f"-o {out}: name the event table .csv, .txt or .xml, or give a folder for the tables "
                         f"(a {out.suffix} is not a table)")
    return out / name


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[object]:
    if not enabled:
        yield None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=True, console=None) as prog:
        yield prog


def register(app: typer.Typer) -> None:
    @app.command()
    def detect(
        movies: Annotated[Optional[list[Path]], typer.Argument(help="Movies (TIFF, OME-TIFF, the original's .h5), "
                                                                    "folders of movies, or folders of per-frame "
                                                                    "TIFFs.")] = None,
        out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Output file (one movie) or folder. "
                                                    "Default: MOVIE_events.csv beside each movie.")] = None,
        fmt: Annotated[str, typer.Option("--format", help="imagej (Results table; .txt is tab-separated), "
                                         "xml or original-csv (the original's formats).")] = "imagej",
        weights: Annotated[Optional[Path], typer.Option(help="Network weights (.h5/.keras). Default: the "
                                                        "published model (or $EXODF_WEIGHTS).")] = None,
        model: Annotated[Optional[Path], typer.Option(help="A bioimage.io model (rdf.yaml or .zip) to run "
                                                      "through bioimageio.core instead of --weights.")] = None,
        tiling: Annotated[str, typer.Option(help="context (default: tile-independent, no edge artefacts), "
                                            "original (reproduces ExoDeepFinder 0.3.14 exactly) or candidates "
                                            "(network only around sudden brightenings, about 3x faster on "
                                            "long sparse movies, not on short ones (~100 frames): the "
                                            "default's probabilities there, background elsewhere).")] = "context",
        patch_size: Annotated[Optional[int], typer.Option(help="Patch side for --tiling original (the original's "
                                                          "-ps, default 160). Patches advance by the side - 54, so "
                                                          "smaller ones cost more: 64 takes ~76x the work of "
                                                          "160.")] = None,
        dtype: Annotated[str, typer.Option(help="What the network computes in: float32 (default, as trained), "
                                           "bfloat16 (about 2x faster on CPUs with bfloat16 arithmetic, e.g. "
                                           "AVX512_BF16 or AMX; same events on the benchmark movies) or float16 "
                                           "(GPUs). Context and candidates tiling.")] = "float32",
        keep_outliers: Annotated[bool, typer.Option("--keep-outliers", help="Feed pixels that stay far brighter "
                                                    "than the cell (hot or saturated pixels, debris) to the network "
                                                    "as they are, as the original does. By default they are "
                                                    "clipped to each frame's 99th percentile: as they are, they "
                                                    "blind the network within 34 px (said when "
                                                    "found).")] = False,
        tile: Annotated[Optional[str], typer.Option(help="Largest tile core T,Y,X for context and candidates tiling "
                                                    "of --weights (memory vs speed). Default: "
                                                    f"{','.join(map(str, DEFAULT_TILE))}.")] = None,
        probabilities: Annotated[Optional[Path], typer.Option(help="Also write the class probabilities "
                                                              "(ImageJ hyperstack T,C,Y,X float32) here.")] = None,
        min_size: Annotated[int, typer.Option(help="Drop events of fewer voxels.")] = 1,
        min_score: Annotated[float, typer.Option(help="Drop events whose mean exocytosis probability is "
                                                 "lower.")] = 0.0,
        mask: Annotated[Optional[Path], typer.Option(help="Binary cell mask TIFF: keep events inside it.",
                                                     exists=True, dir_okay=False)] = None,
        exclude_edges: Annotated[int, typer.Option(min=0, help="Drop events in the first and last N frames.")] = 0,
        pixel_size: Annotated[Optional[float], typer.Option(help="Write X/Y calibrated: size of a pixel "
                                                            "(e.g. 0.16 for µm).")] = None,
        row_numbers: Annotated[bool, typer.Option(help="ImageJ tables: first column numbers the rows.")] = True,
        channel: Channel = None,
        plane: Plane = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
        batch: Annotated[Optional[Path], typer.Option(help="Detect every movie of this folder on a dask cluster "
                                                      "(a failed movie is reported, the others go on).",
                                                      exists=True, file_okay=False)] = None,
        scheduler: Annotated[Optional[str], typer.Option(help="With --batch: address of an existing dask "
                                                         "scheduler (default: a local cluster).")] = None,
        workers: Annotated[Optional[int], typer.Option(min=1, help="With --batch: local worker processes.")]
        = None,
        skip_existing: Annotated[bool, typer.Option(help="Leave out movies whose event table exists and is newer "
                                                    "than the movie (to finish an interrupted batch; such "
                                                    "tables are kept whatever options made them).")] = False,
    ) -> None:
        """Detect every exocytosis event of each movie; write one event table per movie."""
        from ..jobs import DetectRequest, detect_file

        try:
            core = None if tile is None else tuple(int(v) for v in tile.split(","))
        except ValueError:
            raise ExodfError(f"--tile {tile!r}: give three integers T,Y,X, e.g. 2,448,448") from None
        req = DetectRequest(fmt=fmt, weights=weights, model=model, tiling=tiling, patch_size=patch_size,
                            tile=core, min_size=min_size, min_score=min_score, mask=mask,
                            exclude_edges=exclude_edges, pixel_size=pixel_size, row_numbers=row_numbers,
                            channel=channel, plane=plane, dtype=dtype, keep_outliers=keep_outliers)
        from ..io import movie_paths

        req.config()  # a bad option fails here, before any movie is read
        if patch_size is not None and patch_size != 160:
            from ..tiling import original_work

            more = original_work(patch_size) / original_work(160)
            if more > 1.5:
                typer.echo(f"note: --patch-size {patch_size} makes the network do about {more:.0f}x the work of the "
                           "original's 160 (patches overlap more)", err=True)
        if dtype != "float32":
            from ..stream import native_dtype

            if not native_dtype(dtype):
                typer.echo(f"note: this machine has no {dtype} arithmetic (no GPU, no CPU instructions for it): "
                           f"--dtype {dtype} will be slower than float32 here", err=True)
        if not movies and batch is None:
            raise ExodfError("give one or more movies, or --batch FOLDER")
        if batch is None and (scheduler is not None or workers is not None):
            raise ExodfError("--scheduler and --workers go with --batch FOLDER")
        if scheduler is not None and workers is not None:
            raise ExodfError("--workers sets up a local cluster; an existing one (--scheduler) has its own workers")
        skipped: list[tuple[Path, str]] = []
        paths = movie_paths(list(movies or []) + ([batch] if batch is not None else []), skipped)
        for f, why in skipped:
            typer.echo(f"skipped {f}: {why}", err=True)
        if probabilities is not None and (batch is not None or len(paths) > 1):
            raise ExodfError("--probabilities names one file; detect one movie at a time to write probabilities")
        targets = [output_for(p, out, len(paths), fmt) for p in paths]
        _distinct_outputs(paths, targets)  # also among movies --skip-existing leaves out
        if skip_existing:
            done = [_up_to_date(p, t) and (probabilities is None or _up_to_date(p, probabilities))
                    for p, t in zip(paths, targets)]
            for p, t in ((p, t) for p, t, d in zip(paths, targets, done) if d):
                typer.echo(f"skipped {p}: {t} is already there (--skip-existing)", err=True)
            paths = [p for p, d in zip(paths, done) if not d]
            targets = [t for t, d in zip(targets, done) if not d]
            if not paths:
                typer.echo("every movie already has its event table (--skip-existing): nothing to do")
                return
        _check_outputs(paths, targets, mask, probabilities)  # before any movie is read
        if batch is not None:
            _run_batch(paths, targets, req, scheduler, workers, quiet)
            return
        with _progress(not quiet and sys.stderr.isatty()) as prog:
            for k, (path, target) in enumerate(zip(paths, targets)):
                t0 = time.perf_counter()
                try:
                    n_events, n_frames = detect_file(path, target, req, probabilities, prog)
                except KeyboardInterrupt:
                    _interrupted(k, len(paths))
                    raise
                except ExodfError as e:
                    if k + 1 < len(paths):  # say what the others became
                        raise ExodfError(f"{e} ({k} movie(s) done, {len(paths) - k - 1} not started: fix this one "
                                         "and rerun with --skip-existing; --batch goes on past a failed movie)"
                                         ) from None
                    raise
                dt = time.perf_counter() - t0
                typer.echo(f"{path}: {n_events} events ({_per_frame(n_events, n_frames, exclude_edges)}) "
                           f"in {dt:.1f} s -> {target}")


def _interrupted(done: int, total: int) -> None:
    """After Ctrl-C, what of several movies is done (their tables are whole) and how to do the rest."""
    if total > 1 and done:
        typer.echo(f"exodf: {done} of {total} movies done (their tables are complete); rerun the same command "
                   "with --skip-existing to do the rest", err=True)


def _up_to_date(movie: Path, table: Path) -> bool:
    """Whether ``table`` exists and was written after ``movie`` last changed (tables are written whole, so an
    existing one is complete; for a folder of frames, its newest frame counts). An empty file is not a table
    exodf wrote (even no event has a header line) but a ``touch`` or another tool's crash: the movie is redone."""
    if not table.is_file() or table.stat().st_size == 0:
        return False
    from ..io import frame_files

    stamps = [movie.stat().st_mtime] + [f.stat().st_mtime for f in (frame_files(movie) if movie.is_dir() else [])]
    return table.stat().st_mtime >= max(stamps)


def _distinct_outputs(paths: list[Path], targets: list[Path]) -> None:
    seen: dict[Path, Path] = {}
    for path, target in zip(paths, targets):
        key = target.resolve()
        if key in seen:
            raise ExodfError(f"{seen[key]} and {path} would both write {target}: rename one movie, or give each "
                             "its own -o")
        seen[key] = path


def _check_outputs(paths: list[Path], targets: list[Path], mask: Optional[Path],
                   probabilities: Optional[Path]) -> None:
    """Every output writable, none an input (that no two movies write one table is checked before, on all
    the movies: :func:`_distinct_outputs`)."""
    from ..atomic import check_output

    if probabilities is not None and probabilities.suffix.lower() not in (".tif", ".tiff"):
        raise ExodfError(f"--probabilities {probabilities}: the probabilities are an ImageJ hyperstack TIFF; name "
                         "the file .tif")
    for path, target in zip(paths, targets):
        check_output(target, [path, mask, probabilities])
    if probabilities is not None:
        check_output(probabilities, [*paths, mask])


def _run_batch(paths: list[Path], outputs: list[Path], req: "object", scheduler: Optional[str],
               workers: Optional[int], quiet: bool = False) -> None:
    exclude_edges = int(getattr(req, "exclude_edges", 0))
    import logging

    from ..batch import BatchResult, detect_batch

    try:
        import distributed  # noqa: F401  (its import sets its loggers to INFO: quiet them after it)
    except ImportError:
        pass  # detect_batch says how to install it
    logging.getLogger("distributed").setLevel(logging.WARNING)

    from ..batch import local_workers

    where = (f"the dask cluster at {scheduler} (connecting)" if scheduler is not None else
             f"{local_workers(workers)} local worker process(es)")
    typer.echo(f"detecting {len(paths)} movie{'' if len(paths) == 1 else 's'} on {where}; each movie is reported "
               "when it is done")
    with _progress(not quiet and sys.stderr.isatty()) as prog:
        task = prog.add_task("movies", total=len(paths)) if prog is not None else None

        finished = [0]

        def report(res: BatchResult, done: int, total: int) -> None:
            finished[0] += res.ok
            for w in res.warnings:  # logged on the worker, whose log may be on another machine
                typer.echo(f"[{done}/{total}] warning: {w}", err=True)
            if res.ok:
                typer.echo(f"[{done}/{total}] {res.movie}: {res.n_events} events "
                           f"({_per_frame(res.n_events, res.n_frames, exclude_edges)}) in {res.seconds:.1f} s -> "
                           f"{res.output}")
            else:
                typer.echo(f"[{done}/{total}] {res.movie}: FAILED: {res.error}", err=True)
            if prog is not None:
                prog.update(task, completed=done)

        try:
            results = detect_batch(paths, outputs, req, scheduler, workers, report)  # type: ignore[arg-type]
        except KeyboardInterrupt:
            if scheduler is not None:
                typer.echo("exodf: movies already running on the cluster's workers may still finish and write "
                           "their tables (each complete); the others were withdrawn", err=True)
            _interrupted(finished[0], len(paths))
            raise
    failed = [r for r in results if not r.ok]
    typer.echo(f"{len(results)} movie{'' if len(results) == 1 else 's'}: {len(results) - len(failed)} done, "
               f"{len(failed)} failed")
    if failed:
        raise ExodfError(f"{len(failed)} of {len(results)} movies failed: "
                         + "; ".join(f"{r.movie}" for r in failed) + " (see the messages above)")
