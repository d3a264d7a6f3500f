"""``exodf bench``: seconds, peak memory and agreement of ``exodf detect`` on a simulated movie."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .detect import _progress


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        frames: Annotated[int, typer.Option(help="Frames of the simulated movie.")] = 1000,
        size: Annotated[int, typer.Option(help="Frame width and height in px.")] = 300,
        seed: Annotated[int, typer.Option(min=0, help="Simulation seed (>= 0).")] = 0,
        work: Annotated[Path, typer.Option(help="Folder for the movie and the event tables (a movie there is "
                                           "reused).")] = Path("exodf-bench"),
        reference: Annotated[bool, typer.Option(help="Also compute the independent whole-volume reference and "
                                                "the agreement with it (takes about twice as long).")] = True,
        tiling: Annotated[str, typer.Option(help="The --tiling of exodf detect to time (context, candidates or "
                                            "original).")] = "context",
        dtype: Annotated[str, typer.Option(help="The --dtype of exodf detect to time (float32, bfloat16, "
                                           "float16); the reference stays float32.")] = "float32",
        weights: Annotated[Optional[Path], typer.Option(help="Network weights (default: the published model).")]
        = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
        quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress display.")] = False,
    ) -> None:
        """Time `exodf detect` on a simulated movie (default 1000 x 300 x 300): seconds, memory, agreement.

        Prints seconds, frames per second, its peak RSS, F1 against the simulation's truth and agreement (F1,
        <= 1.5 px, <= 1 frame) with an independent whole-volume inference."""
        from ..atomic import check_output_folder
        from ..bench import run_bench

        check_output_folder(work)  # before the progress display starts
        with _progress(not quiet and not as_json) as prog:
            tasks: dict[str, object] = {}

            def report(stage: str, done: int, total: int) -> None:
                if prog is None:
                    return
                if stage not in tasks:
                    tasks[stage] = prog.add_task(stage, total=total)  # type: ignore[attr-defined]
                prog.update(tasks[stage], completed=done, total=total)  # type: ignore[attr-defined]

            res = run_bench(frames, size, seed, work, reference, tiling, weights, report, dtype)
        if as_json:
            typer.echo(res.to_json())
            return
        agree = "not computed" if res.agreement_f1 is None else (
            f"F1 {res.agreement_f1:.3f} ({res.events} vs {res.reference_events} events, reference "
            f"{res.reference_seconds:.0f} s)")
        truth = "undefined" if res.f1_vs_truth is None else f"{res.f1_vs_truth:.3f}"
        scored = (f"first/last {res.truth_exclude_edges} frames left out" if res.truth_exclude_edges else
                  "all frames")
        typer.echo(f"exodf detect, {res.frames} x {res.size} x {res.size} px ({res.tiling}, {res.dtype}) on "
                   f"{res.cpus} CPU cores, {res.device}:\n"
                   f"  seconds          {res.seconds:.1f} ({res.frames_per_second:.2f} frames/s; the whole run, "
                   "start-up and network loading included)\n"
                   f"  peak RSS         {res.peak_rss_gb:.2f} GB\n"
                   f"  events           {res.events} (F1 vs the simulation's truth {truth}, {scored})\n"
                   f"  agreement        {agree}")
