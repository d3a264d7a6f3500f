"""``exodf evaluate`` (predictions vs ground truth) and ``exodf rates`` (before/after a treatment)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import option_error


def edge_note(fp: int, fn: int) -> str:
    """What the score line says about pairs split by --exclude-edges ("" when none)."""
    if not fp and not fn:
        return ""
    what = " and ".join(t for t in (f"{fp} FP" if fp else "", f"{fn} FN" if fn else "") if t)
    return (f" ({what}: a detection and its true event on either side of the excluded edge frames, which the "
            "paper's rule scores apart)")


def _f(v: Optional[float]) -> str:
    return "undefined" if v is None else f"{v:.3f}"


def _ms(m: Optional[float], s: Optional[float], fmt: str = ".3f") -> str:
    return "undefined" if m is None else (f"{m:{fmt}} ± {s:{fmt}}" if s is not None else f"{m:{fmt}}")


def register(app: typer.Typer) -> None:
    @app.command()
    def evaluate(
        pred: Annotated[Path, typer.Argument(help="Predicted events: a table (ImageJ, the original's xml/csv, "
                                             "ExoJ export) or a folder of them.", exists=True)],
        gt: Annotated[Path, typer.Argument(help="Ground truth: a table or a folder of them, paired with PRED by "
                                           "name (cell1_events.csv <-> cell1_gt.csv).", exists=True)],
        exclude_edges: Annotated[int, typer.Option(min=0, help="Ignore events in the first and last N frames (the "
                                                   "paper: 25).")] = 0,
        frames: Annotated[Optional[int], typer.Option("--frames", min=1, help="Movie length (for --exclude-edges "
                                                      "and rates), if --movie is not given.")] = None,
        movie: Annotated[Optional[Path], typer.Option(help="The movie, or a folder of movies paired by name: "
                                                      "gives the length and area.", exists=True)] = None,
        mask: Annotated[Optional[Path], typer.Option(help="Cell mask TIFF (or folder): only events inside count.",
                                                     exists=True)] = None,
        max_distance: Annotated[float, typer.Option(help="Largest distance (px).")] = 4.5,
        dt_min: Annotated[int, typer.Option(help="Smallest prediction − ground-truth frame.")] = -2,
        dt_max: Annotated[int, typer.Option(help="Largest prediction − ground-truth frame.")] = 5,
        one_to_one: Annotated[bool, typer.Option(help="Hungarian one-to-one matching instead of the paper's "
                                                 "nearest-ground-truth rule.")] = False,
        pixel_size: Annotated[Optional[float], typer.Option(help="Pixel size in µm (rates per µm² per s).")]
        = None,
        frame_interval: Annotated[Optional[float], typer.Option(help="Seconds per frame (rates per s).")] = None,
        calibrated: Annotated[bool, typer.Option(help="X/Y of the tables are in µm (divided by --pixel-size).")]
        = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print all figures as JSON.")] = False,
    ) -> None:
        """Precision, recall and F1 of predictions against ground truth, per movie and pooled."""
        from ..evaluate import Rule
        from ..workflows import EvaluateRequest, evaluate_files

        try:
            req = EvaluateRequest(Rule(max_distance, dt_min, dt_max, one_to_one), exclude_edges, frames, movie,
                                  mask, pixel_size, frame_interval, calibrated)
        except ValueError as e:  # "Rule.max_distance must be ..." -> "--max-distance must be ..."
            raise option_error(e) from None
        res = evaluate_files(pred, gt, req)
        if res["unscored_truth"]:
            names = [Path(f).name for f in res["unscored_truth"]]
            typer.echo(f"note: {len(names)} ground truth table(s) of {gt} have no prediction in {pred} and are not "
                       f"scored: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}", err=True)
        for r in res["movies"]:
            for w in r["warnings"]:
                typer.echo(f"warning: {w}", err=True)
        if as_json:
            typer.echo(json.dumps(res))
            return
        for r in res["movies"]:
            line = (f"{r['movie']}: {r['n_pred']} predicted, {r['n_gt']} true; TP {r['tp']} FP {r['fp']} "
                    f"FN {r['fn']}; precision {_f(r['precision'])} recall {_f(r['recall'])} F1 {_f(r['f1'])}")
            if r["gt_hit"] < r["tp"]:  # the paper's rule lets two predictions count on one true event
                line += f" ({r['gt_hit']} distinct true events hit)"
            line += edge_note(r["edge_split_fp"], r["edge_split_fn"])
            if "rate_pred" in r:
                line += f"; rate {r['rate_pred']:.3f} vs {r['rate_gt']:.3f} events/frame"
                if r["rate_pred_um2_s"] is not None:
                    line += f" ({r['rate_pred_um2_s']:.4g} vs {r['rate_gt_um2_s']:.4g} events/µm²/s)"
            typer.echo(line)
        if (pixel_size is not None or frame_interval is not None) and not any(
                r.get("rate_pred_um2_s") is not None for r in res["movies"]):
            typer.echo("note: rates per µm² per s need --pixel-size, --frame-interval and the counted area "
                       "(--movie or --mask)", err=True)
        p: dict[str, Any] = res["pooled"]
        if p["n_movies"] > 1:
            typer.echo(f"all {p['n_movies']} movies: precision {_ms(p['precision_mean'], p['precision_sd'])}, "
                       f"recall {_ms(p['recall_mean'], p['recall_sd'])}, F1 {_ms(p['f1_mean'], p['f1_sd'])} "
                       f"(mean ± SD); pooled TP {p['tp']} FP {p['fp']} FN {p['fn']}: F1 {_f(p['f1'])}")
        if "rate_pearson_r" in res:
            typer.echo(f"Pearson r of predicted vs true rates: {_f(res['rate_pearson_r'])}")

    @app.command()
    def rates(
        before: Annotated[Path, typer.Argument(help="Event tables before the treatment (file or folder).",
                                               exists=True)],
        after: Annotated[Path, typer.Argument(help="Event tables after, of the same cells, paired by name.",
                                              exists=True)],
        frames: Annotated[int, typer.Option("--frames", min=1, help="Movie length (frames).")],
        exclude_edges: Annotated[int, typer.Option(min=0, help="Ignore the first and last N frames.")] = 0,
        pixel_size: Annotated[Optional[float], typer.Option(help="Pixel size (µm).")] = None,
        frame_interval: Annotated[Optional[float], typer.Option(help="Seconds per frame.")] = None,
        area: Annotated[Optional[float], typer.Option(help="Cell area in px, the same for every cell (with "
                                                      "--pixel-size and --frame-interval: rates per µm² per "
                                                      "s).")] = None,
        mask: Annotated[Optional[Path], typer.Option(help="Each cell's own mask instead of --area: a folder of "
                                                     "masks named like the tables (cell1.tif or "
                                                     "cell1_mask.tif), or one mask for all; events outside it "
                                                     "are left out.", exists=True)] = None,
        calibrated: Annotated[bool, typer.Option(help="X/Y of the tables are in µm (divided by --pixel-size; "
                                                 "matters with --mask, which then gives events/frame inside each "
                                                 "cell unless --frame-interval is given too).")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print all figures as JSON.")] = False,
    ) -> None:
        """Exocytosis rate per cell before and after a treatment, and the paired Cohen's d."""
        from ..workflows import rates_files

        res = rates_files(before, after, frames, exclude_edges, pixel_size, frame_interval, area, mask, calibrated)
        for w in res["warnings"]:
            typer.echo(f"warning: {w}", err=True)
        if as_json:
            typer.echo(json.dumps(res))
            return
        for c in res["cells"]:
            typer.echo(f"{c['cell']}: {c['before']:.4g} -> {c['after']:.4g} {res['unit']}")
        typer.echo(f"{len(res['cells'])} cells: before {_ms(res['before_mean'], res['before_sd'], '.4g')}, after "
                   f"{_ms(res['after_mean'], res['after_sd'], '.4g')} {res['unit']} (mean ± SD); Cohen's d_z "
                   f"(paired: mean change / SD of the changes) {_f(res['cohens_d'])}")
