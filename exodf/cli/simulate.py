"""``exodf simulate``, ``measure``, ``demo`` and ``benchmark``."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import ExodfError, option_error
from .detect import Channel, Plane
from .evaluate import edge_note


def parse_overrides(items: list[str], frames: Optional[int] = None, size: Optional[int] = None,
                    frame_interval: Optional[float] = None) -> dict[str, Any]:
    """``--set name=value`` items (ranges as ``lo,hi``) and the shortcut options as simulator overrides."""
    from ..simulate import SimParams

    types = {f.name: f.type for f in fields(SimParams)}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in types:
            raise ExodfError(f"--set {item!r}: give name=value with a simulator parameter name; known: "
                             f"{', '.join(sorted(types))}")
        kind = str(types[name])
        try:
            if kind == "Range":
                lo, _, hi = value.partition(",")
                out[name] = (float(lo), float(hi or lo))
            elif kind == "int":
                out[name] = int(value)
            elif kind == "bool":
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                out[name] = value.lower() in ("true", "1", "yes")
            else:
                out[name] = float(value)
        except ValueError:
            raise ExodfError(f"--set {item!r}: {name} needs {'lo,hi' if kind == 'Range' else kind}") from None
    for option, value, names in (("--frames", frames, ("n_frames",)), ("--size", size, ("height", "width")),
                                 ("--frame-interval", frame_interval, ("frame_interval_s",))):
        if value is None:
            continue
        both = [n for n in names if n in out and out[n] != value]
        if both:
            raise ExodfError(f"--set {both[0]}={out[both[0]]} and {option} {value} disagree; give one of them")
        out.update({n: value for n in names})
    return out


def make_params(preset: str, overrides: dict[str, Any]) -> Any:
    from ..simulate import preset as make_preset

    try:
        return make_preset(preset, **overrides)
    except ValueError as e:  # "SimParams.n_frames must be ..." -> "--frames must be ...", "--set fold must be ..."
        options = {"n_frames": "--frames", "height": "--size", "width": "--size",
                   "frame_interval_s": "--frame-interval"}
        msg = re.sub(r"\bSimParams\.([a-z_0-9]+)\b", lambda m: options.get(m.group(1), f"--set {m.group(1)}"), str(e))
        raise ExodfError(f"invalid simulation parameters: {msg}") from None


Preset = Annotated[str, typer.Option("--preset", "-p", help="control, control-low, control-high, hela, cd63, "
                                     "bafilomycin or histamine.")]
Seed = Annotated[int, typer.Option(min=0, help="Random seed (>= 0): the same seed gives the same movie.")]
Frames = Annotated[Optional[int], typer.Option("--frames", help="Number of frames (default 200).")]
Size = Annotated[Optional[int], typer.Option("--size", help="Frame width and height in px (default 200).")]
Interval = Annotated[Optional[float], typer.Option("--frame-interval", help="Seconds per frame (default 0.4).")]
Set = Annotated[Optional[list[str]], typer.Option("--set", help="Override any simulator parameter, e.g. "
                                                  "--set fold=1.5,3 --set events_per_frame=0.25 (repeatable).")]


def _check_edges(n_frames: int, exclude_edges: int) -> None:
    """demo and benchmark: the simulated movie must keep frames to score after the excluded edges."""
    if n_frames <= 2 * exclude_edges:
        raise ExodfError(f"--frames {n_frames} leaves nothing after excluding {exclude_edges} frames at each end; "
                         "give more frames or a smaller --exclude-edges")


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        out: Annotated[Path, typer.Argument(help="Folder to write movie.tif, ground_truth.csv, cell_mask.tif "
                                            "and simulation.json into.")],
        preset: Preset = "control", seed: Seed = 0, frames: Frames = None, size: Size = None,
        frame_interval: Interval = None, set_: Set = None,
    ) -> None:
        """Simulate a TIRF exocytosis movie with its ground truth and cell mask."""
        from ..atomic import check_output_folder
        from ..workflows import simulate_files

        check_output_folder(out)
        params = make_params(preset, parse_overrides(set_ or [], frames, size, frame_interval))
        files = simulate_files(out, params, seed)
        n = files.n_events
        typer.echo(f"{files.movie}: {params.n_frames} frames of {params.height}x{params.width} px, {n} events "
                   f"-> {files.truth}, mask {files.mask}")

    @app.command()
    def measure(
        movie: Annotated[Path, typer.Argument(help="The movie.", exists=True)],
        events: Annotated[Path, typer.Argument(help="Its event table (any format exodf reads).", exists=True,
                                               dir_okay=False)],
        out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Output table (default: "
                                                    "EVENTS_measured.csv).")] = None,
        frame_interval: Annotated[Optional[float], typer.Option(help="Seconds per frame: τ and half-life in s "
                                                                "(default: in frames).")] = None,
        window: Annotated[int, typer.Option(help="Window side (px).")] = 7,
        before: Annotated[int, typer.Option(help="F0 this many frames before the peak.")] = 5,
        n_fit: Annotated[int, typer.Option(help="Frames fitted from the peak on.")] = 16,
        peak_search: Annotated[int, typer.Option(help="Look for the peak this many frames either side of each "
                                                 "event's frame (exodf's detections sit a frame or two after "
                                                 "it); 0: measure at the given frame, as the paper.")] = 2,
        pixel_size: Annotated[Optional[float], typer.Option(help="The table's X/Y are calibrated (as `exodf "
                                                            "detect --pixel-size` writes them): size of a pixel "
                                                            "in their unit; the output keeps it.")] = None,
        channel: Channel = None,
        plane: Plane = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the cell summary as JSON.")] = False,
    ) -> None:
        """Per-event F/F0 and decay half-life (the paper's definitions), and their per-cell averages."""
        from ..atomic import check_output
        from ..events import check_table_path
        from ..measure import MeasureConfig
        from ..workflows import measure_file

        try:
            cfg = MeasureConfig(window, before, n_fit, frame_interval, peak_search)
        except ValueError as e:  # "MeasureConfig.n_fit must be ..." -> "--n-fit must be ..."
            raise option_error(e, {"frame_interval_s": "frame-interval"}) from None
        target = out or events.with_name(events.stem + "_measured.csv")
        if target.suffix.lower() == ".xml":
            raise ExodfError(f"-o {target}: the measured columns need an ImageJ table; name it .csv or .txt")
        check_output(target, [movie, events])
        check_table_path(target)
        summary = measure_file(movie, events, target, cfg, pixel_size, channel=channel, plane=plane)
        for w in summary.pop("warnings"):
            typer.echo(f"warning: {w}", err=True)
        if as_json:
            typer.echo(json.dumps(summary))
            return
        unit = "s" if frame_interval else "frames"

        def f(v: Optional[float]) -> str:
            return "n/a" if v is None else f"{v:.3g}"

        typer.echo(f"{summary['n_events']} events: F/F0 mean {f(summary['fold_mean'])} (median "
                   f"{f(summary['fold_median'])}) over {summary['n_fold']} events with an F0; half-life mean "
                   f"{f(summary['half_life_mean'])} {unit} over {summary['n_fitted']} fitted events -> {target}")

    @app.command()
    def demo(
        out: Annotated[Path, typer.Option("-o", "--out", help="Folder for the demo's files.")] = Path("exodf-demo"),
        preset: Preset = "control", seed: Seed = 0, frames: Frames = None, size: Size = None,
        set_: Set = None,
        weights: Annotated[Optional[Path], typer.Option(help="Network weights (default: the published "
                                                        "model).")] = None,
        exclude_edges: Annotated[int, typer.Option(min=0, help="Frames excluded at each end when scoring "
                                                   "(the paper: 25).")] = 25,
    ) -> None:
        """Simulate a movie, detect its events with the published network, score them, write a report."""
        from ..atomic import check_output_folder
        from ..workflows import demo as run_demo

        check_output_folder(out)  # before any work or message
        params = make_params(preset, parse_overrides(set_ or [], frames, size))
        _check_edges(params.n_frames, exclude_edges)
        from ..jobs import load_detector

        load_detector(weights)  # bad weights fail now, before anything is written
        typer.echo(f"simulating a {params.n_frames}x{params.height}x{params.width} '{preset}' movie and "
                   "detecting its events (a few minutes on 2 cores)...", err=True)
        s = run_demo(out, params, seed, weights, exclude_edges)

        def f(v: Optional[float]) -> str:
            return "undefined" if v is None else f"{v:.2f}"

        scored = (f"Slices {exclude_edges + 1}..{params.n_frames - exclude_edges}, {exclude_edges} frames left out at "
                  "each end" if exclude_edges else f"all {params.n_frames} frames")
        typer.echo(f"{s['n_pred']} detections, {s['n_gt']} true events ({scored}): TP {s['tp']} FP {s['fp']} FN "
                   f"{s['fn']}; precision {f(s['precision'])} recall {f(s['recall'])} F1 {f(s['f1'])}"
                   + edge_note(s["edge_split_fp"], s["edge_split_fn"]))
        typer.echo(f"report: {out / 'report.png'}  overlay: {out / 'overlay.tif'}  detections: "
                   f"{out / 'detections.csv'}  ground truth: {out / 'ground_truth.csv'}")

    @app.command()
    def benchmark(
        out: Annotated[Path, typer.Option("-o", "--out", help="Folder for movies, detections and the table.")]
        = Path("exodf-benchmark"),
        presets: Annotated[str, typer.Option(help="Comma-separated presets.")] =
        "control,control-low,control-high,hela,cd63,bafilomycin,histamine",
        n_movies: Annotated[int, typer.Option("-n", "--n-movies", help="Movies per preset.")] = 3,
        methods: Annotated[str, typer.Option(help="Comma-separated: exodf, exoj-like, adae-like.")] = "exodf",
        seed: Seed = 0, frames: Frames = None, size: Size = None, set_: Set = None,
        exclude_edges: Annotated[int, typer.Option(min=0, help="Frames excluded at each end.")] = 25,
        weights: Annotated[Optional[Path], typer.Option(help="Network weights for exodf.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
    ) -> None:
        """N simulated movies per preset x methods -> precision, recall, F1 (mean ± SD) per preset."""
        from ..atomic import check_output_folder
        from ..workflows import benchmark as run_benchmark

        check_output_folder(out)
        if n_movies < 1:
            raise ExodfError("--n-movies must be >= 1")
        names = [p.strip() for p in presets.split(",") if p.strip()]
        meths = [m.strip() for m in methods.split(",") if m.strip()]
        if not names or not meths:
            raise ExodfError(f"--{'presets' if not names else 'methods'} is empty: name at least one")
        overrides = parse_overrides(set_ or [], frames, size)
        for name in names:
            params = make_params(name, overrides)
            _check_edges(params.n_frames, exclude_edges)
        if "exodf" in meths:
            from ..jobs import load_detector

            load_detector(weights)  # bad weights fail now, before any movie is simulated
        import sys

        from .detect import _progress

        with _progress(not as_json and sys.stderr.isatty()) as prog:
            task = prog.add_task("movies x methods", total=len(names) * n_movies * len(meths)) if prog else None

            def report(stage: str, done: int, total: int) -> None:
                prog.update(task, completed=done, total=total)  # type: ignore[union-attr]

            rows = run_benchmark(out, names, n_movies, meths, overrides, seed, exclude_edges, weights,
                                 report if prog is not None else None)
        if as_json:
            typer.echo(json.dumps(rows))
            return

        def ms(m: Optional[float], s: Optional[float]) -> str:
            return "undefined" if m is None else f"{m:.2f} ± {s:.2f}" if s is not None else f"{m:.2f}"

        typer.echo(f"{'preset':<14}{'method':<11}{'n':>3}  {'precision':<13}{'recall':<13}{'F1':<13}pooled F1")
        for r in rows:
            pooled = "undefined" if r["f1"] is None else f"{r['f1']:.2f}"
            typer.echo(f"{r['preset']:<14}{r['method']:<11}{r['n_movies']:>3}  "
                       f"{ms(r['precision_mean'], r['precision_sd']):<13}{ms(r['recall_mean'], r['recall_sd']):<13}"
                       f"{ms(r['f1_mean'], r['f1_sd']):<13}{pooled}")
        typer.echo(f"table: {out / 'benchmark.csv'}", err=True)
