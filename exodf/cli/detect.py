"""``exodf detect``: movies in, ImageJ event tables out."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from ..errors import ExodfError

OUT_SUFFIXES = (".csv", ".txt", ".tsv", ".xml")


def output_for(movie: Path, out: Optional[Path], n_movies: int, fmt: str) -> Path:
    """Where a movie's events go: ``-o FILE`` (one movie), ``-o FOLDER``, or beside the movie."""
    default_suffix = ".xml" if fmt == "xml" else ".csv"
    stem = movie.name
    for suf in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".h5", ".hdf5"):
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    name = f"{stem}_events{default_suffix}"
    if out is None:
        return (movie.parent if movie.is_file() else movie.parent) / name
    if out.suffix.lower() in OUT_SUFFIXES and not out.is_dir():
        if n_movies > 1:
            raise ExodfError(f"-o {out}: several movies need an output folder, not one file; give -o FOLDER")
        return out
    return out / name


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[object]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, console=None) as prog:
        yield prog


def register(app: typer.Typer) -> None:
    @app.command()
    def detect(
        movies: Annotated[list[Path], typer.Argument(help="Movies (TIFF, OME-TIFF, the original's .h5), folders "
                                                          "of movies, or folders of per-frame TIFFs.")],
        out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Output file (one movie) or folder. "
                                                    "Default: MOVIE_events.csv beside each movie.")] = None,
        fmt: Annotated[str, typer.Option("--format", help="imagej (Results table; .txt is tab-separated), "
                                         "xml or original-csv (the original's formats).")] = "imagej",
        weights: Annotated[Optional[Path], typer.Option(help="Network weights (.h5/.keras). Default: the "
                                                        "published model (or $EXODF_WEIGHTS).")] = None,
        model: Annotated[Optional[Path], typer.Option(help="A bioimage.io model (rdf.yaml or .zip) to run "
                                                      "through bioimageio.core instead of --weights.")] = None,
        tiling: Annotated[str, typer.Option(help="context (default: tile-independent, no edge artefacts) or "
                                            "original (reproduces ExoDeepFinder 0.3.14 exactly).")] = "context",
        patch_size: Annotated[int, typer.Option(help="Patch side for --tiling original.")] = 160,
        tile: Annotated[str, typer.Option(help="Largest tile core T,Y,X for context tiling (memory vs speed).")]
        = "4,448,448",
        probabilities: Annotated[Optional[Path], typer.Option(help="Also write the class probabilities "
                                                              "(ImageJ hyperstack T,C,Y,X float32) here.")] = None,
        min_size: Annotated[int, typer.Option(help="Drop events of fewer voxels.")] = 1,
        min_score: Annotated[float, typer.Option(help="Drop events whose mean exocytosis probability is "
                                                 "lower.")] = 0.0,
        mask: Annotated[Optional[Path], typer.Option(help="Binary cell mask TIFF: keep events inside it.",
                                                     exists=True, dir_okay=False)] = None,
        exclude_edges: Annotated[int, typer.Option(help="Drop events in the first and last N frames.")] = 0,
        pixel_size: Annotated[Optional[float], typer.Option(help="Write X/Y calibrated: size of a pixel "
                                                            "(e.g. 0.16 for µm).")] = None,
        row_numbers: Annotated[bool, typer.Option(help="ImageJ tables: first column numbers the rows.")] = True,
        channel: Annotated[Optional[int], typer.Option(help="Channel to use in a multi-channel movie.")] = None,
        plane: Annotated[Optional[int], typer.Option(help="Z-plane to use in a movie with z and time.")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Detect every exocytosis event of each movie; write one event table per movie."""
        from ..jobs import DetectRequest, detect_file

        try:
            core = tuple(int(v) for v in tile.split(","))
        except ValueError:
            raise ExodfError(f"--tile {tile!r}: give three integers T,Y,X, e.g. 4,448,448") from None
        req = DetectRequest(fmt=fmt, weights=weights, model=model, tiling=tiling, patch_size=patch_size,
                            tile=core, min_size=min_size, min_score=min_score, mask=mask,
                            exclude_edges=exclude_edges, pixel_size=pixel_size, row_numbers=row_numbers,
                            channel=channel, plane=plane)
        from ..io import movie_paths

        paths = movie_paths(movies)
        if probabilities is not None and len(paths) > 1:
            raise ExodfError("--probabilities names one file; detect one movie at a time to write probabilities")
        with _progress(not quiet and sys.stderr.isatty()) as prog:
            for path in paths:
                target = output_for(path, out, len(paths), fmt)
                t0 = time.perf_counter()
                n_events, n_frames = detect_file(path, target, req, probabilities, prog)
                dt = time.perf_counter() - t0
                typer.echo(f"{path}: {n_events} events ({n_events / max(1, n_frames):.3f} per frame) "
                           f"in {dt:.1f} s -> {target}")
