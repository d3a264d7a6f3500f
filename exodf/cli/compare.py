"""``exodf compare``: exodf vs conventional baselines (and ExoJ exports) on movies with ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ExodfError


def _f(v: Optional[float]) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def overlap_counts(counts: dict[str, int]) -> str:
    """'a&b 3, b 2' (events found by both a and b, by b alone), or 'none'."""
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "none"


def register(app: typer.Typer) -> None:
    @app.command()
    def compare(
        movies: Annotated[list[Path], typer.Argument(help="Movies (TIFF) with ground truth.", exists=True)],
        gt: Annotated[Optional[list[Path]], typer.Option(help="Ground truth of each movie, in order (repeat); "
                                                         "default: ground_truth.csv beside each movie.",
                                                         exists=True, dir_okay=False)] = None,
        methods: Annotated[str, typer.Option(help="Comma-separated: exodf, exoj-like, adae-like, "
                                             "exoj-export=FILE_OR_FOLDER.")] = "exodf,exoj-like,adae-like",
        out: Annotated[Path, typer.Option("-o", "--out", help="Folder for compare.csv, compare.json and "
                                          "compare.png.")] = Path("compare"),
        exclude_edges: Annotated[int, typer.Option(min=0, help="Ignore the first and last N frames (the paper: "
                                                   "25).")] = 0,
        weights: Annotated[Optional[Path], typer.Option(help="exodf network weights (default: published).")] = None,
        channel: Annotated[Optional[int], typer.Option(help="Channel to use in multi-channel movies.")] = None,
        plane: Annotated[Optional[int], typer.Option(help="Z-plane to use in movies with z and time.")] = None,
        pixel_size: Annotated[Optional[float], typer.Option(help="With --calibrated: "
                                                            "pixel size in µm.")] = None,
        calibrated: Annotated[bool, typer.Option(help="The ground truths' X/Y are in µm (divided by "
                                                 "--pixel-size).")] = False,
    ) -> None:
        """Score every method with the paper's rule: P/R/F1, overlaps (Venn counts), rates and seconds."""
        from ..compare import OUTPUTS, compare_files, comparison_rows, parse_methods, venn_totals

        specs = parse_methods(methods)
        if weights is not None and not any(s.name == "exodf" for s in specs):
            raise ExodfError("--weights is for the exodf method, which --methods leaves out: add exodf, or drop "
                             "--weights")
        if calibrated != (pixel_size is not None):
            raise ExodfError("--calibrated and --pixel-size go together (ground truth in µm, and µm per pixel)")
        gts = list(gt) if gt else [m.parent / "ground_truth.csv" for m in movies]
        for g in gts:
            if not g.is_file():
                raise ExodfError(f"{g}: ground truth not found; give --gt FILE for each movie")
        c = compare_files(movies, gts, specs, out, exclude_edges, weights, channel=channel, plane=plane,
                          pixel_size=pixel_size, warn=lambda w: typer.echo(f"warning: {w}", err=True))
        typer.echo(f"{'method':<10} {'TP':>5} {'FP':>5} {'FN':>5}  {'P':>5}  {'R':>5}  {'F1':>5}  "
                   f"{'rate':>6} {'true':>6}  s/movie")
        for r in comparison_rows(c):
            sec = "  -" if r["seconds_per_movie"] is None else f"{r['seconds_per_movie']:.1f}"
            typer.echo(f"{r['method']:<10} {r['tp']:>5} {r['fp']:>5} {r['fn']:>5}  {_f(r['precision'])}  "
                       f"{_f(r['recall'])}  {_f(r['f1'])}  {r['pred_rate']:.3f}  {r['true_rate']:.3f}  {sec}")
        v = venn_totals(c)
        typer.echo("true events found by: " + overlap_counts(v["tp"]))
        typer.echo("false positives made by: " + overlap_counts(v["fp"]))
        typer.echo("-> " + ", ".join(str(out / name) for name in OUTPUTS))
