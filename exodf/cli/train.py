"""``exodf spots`` and ``exodf train``: counter-examples and (re-)training from point annotations."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from ..errors import ExodfError, option_error
from .detect import Channel, Plane


@contextlib.contextmanager
def _bar(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as prog:
        yield prog


def _callback(prog: Any) -> Any:
    if prog is None:
        return None
    tasks: dict[str, Any] = {}

    def cb(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = prog.add_task(stage, total=total)
        prog.update(tasks[stage], completed=done, total=total)

    return cb


def _fmt(v: Any) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def register(app: typer.Typer) -> None:
    @app.command()
    def spots(
        movie: Annotated[Path, typer.Argument(help="Movie (TIFF, OME-TIFF, .h5, folder of frames).", exists=True)],
        out: Annotated[Path, typer.Option("-o", "--out", help="Label map (.tif, one label per spot and frame) "
                                          "or table of spot centroids (.csv ImageJ Results, .xml).")],
        window: Annotated[float, typer.Option(help="σ of the local-statistics window (px).")] = 21.0,
        pfa: Annotated[float, typer.Option(help="Probability of false alarm per pixel.")] = 0.001,
        min_area: Annotated[int, typer.Option(help="Smallest spot kept (px).")] = 3,
        scales: Annotated[str, typer.Option(help="LoG scales σ (px), comma-separated.")] = "1,1.5,2",
        channel: Channel = None,
        plane: Plane = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Detect bright spots in each frame: the counter-examples (class 1) for exodf train.

        ATLAS-like: multiscale LoG, local statistics, false-alarm threshold. exodf train learns to tell these
        spots from exocytosis."""
        from ..spots import SpotConfig
        from ..training_files import spots_file

        try:
            sigmas = tuple(float(s) for s in scales.split(","))
        except ValueError:
            raise ExodfError(f"invalid option: --scales {scales!r}: give LoG scales in px separated by commas, "
                             "e.g. 1,1.5,2") from None
        try:
            config = SpotConfig(scales=sigmas, window=window, pfa=pfa, min_area=min_area)
        except ValueError as e:  # "SpotConfig.pfa must be ..." -> "--pfa must be ..."
            raise option_error(e) from None
        from ..atomic import check_output

        check_output(out, [movie])
        with _bar(not quiet) as prog:
            n = spots_file(movie, out, config, _callback(prog), channel=channel, plane=plane)
        typer.echo(f"{movie.name}: {n} bright spots -> {out}")

    @app.command()
    def train(
        movies: Annotated[list[Path], typer.Argument(help="Annotated movies (the last ones are held out for "
                                                     "validation, see --val).", exists=True)],
        events: Annotated[list[Path], typer.Option("--events", "-e", help="Event table of each movie, in the "
                                                   "same order (ImageJ Results X, Y, Slice; the original's "
                                                   ".xml/.csv). Repeat the option per movie.", exists=True,
                                                   dir_okay=False)],
        out: Annotated[Path, typer.Option("-o", "--out", help="Output folder: model.weights.h5 (last "
                                          "epoch), best.weights.h5 (lowest validation loss of the last stage), "
                                          "stageN_patchP.weights.h5 (end of each stage), checkpoint/, "
                                          "history.csv, training_curves.png, config.json.")],
        spots: Annotated[Optional[list[Path]], typer.Option("--spots", help="Your bright spots per movie (label "
                                                            "TIFF or point table); default: exodf spots.",
                                                            exists=True, dir_okay=False)] = None,
        no_spots: Annotated[bool, typer.Option("--no-spots", help="Train without the bright-spot class.")] = False,
        init: Annotated[str, typer.Option(help="published (fine-tune the published model), scratch, or a "
                                          "weights file.")] = "published",
        patch_sizes: Annotated[str, typer.Option(help="Curriculum patch sides (frames and px), one stage each; "
                                                 "shorter lists of the options below repeat their last value."
                                                 )] = "8,16,32,48",
        batch_sizes: Annotated[Optional[str], typer.Option(
            help="Batch size of each stage (default: the original's 256,128,32,10 for the stages given).")] = None,
        shifts: Annotated[Optional[str], typer.Option(
            help="Random shift of each stage, voxels (default: the original's 4,8,16,32 for the stages given).")
        ] = None,
        epochs: Annotated[str, typer.Option(help="Epochs of each stage.")] = "100",
        steps: Annotated[str, typer.Option(help="Steps per epoch of each stage.")] = "100",
        learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
        val: Annotated[Optional[int], typer.Option(help="Movies held out for validation (default: 20 %, at "
                                                   "least 1 of 2 or more).")] = None,
        val_batches: Annotated[int, typer.Option(help="Validation batches per epoch.")] = 10,
        seed: Annotated[int, typer.Option(min=0, help="Seed of the patch sampler (and of the initial weights "
                                           "with --init scratch).")] = 0,
        resume: Annotated[bool, typer.Option(help="Continue the training checkpointed in --out.")] = False,
        until_step: Annotated[Optional[int], typer.Option(min=1, help="Stop (checkpointed) at the end of the epoch "
                                                          "reaching this step; continue with --resume.")] = None,
        max_minutes: Annotated[Optional[float], typer.Option(help="Time budget: stop (checkpointed) at the end "
                                                             "of the epoch that passes it.")] = None,
        pixel_size: Annotated[Optional[float], typer.Option(help="Event tables are calibrated: size of a pixel "
                                                            "(e.g. 0.16 for µm). --spots tables stay in "
                                                            "pixels, as exodf spots writes them.")] = None,
        target_offset: Annotated[int, typer.Option(min=0, help="Paint each event's training target this many frames "
                                                   "after its table frame: 1 (default) as the published network "
                                                   "marks events (its detections sit a frame after the "
                                                   "brightest frame), so that fine-tuning keeps its timing; 0 "
                                                   "paints at the table's frame.")] = 1,
        channel: Channel = None,
        plane: Plane = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Train or fine-tune the network on annotated movies.

        Patches centred on events and bright spots, Tversky loss, Adam, the original's patch-size curriculum,
        validation on held-out movies, checkpoints."""
        from ..atomic import check_output_folder
        from ..training_files import TrainRequest, accelerator, parse_stages, train_files

        if spots and no_spots:
            raise ExodfError("give either --spots or --no-spots")
        check_output_folder(out)  # before the message below
        req = TrainRequest(movies=tuple(movies), events=tuple(events), out=out, spots=tuple(spots or ()),
                           detect_spots=not no_spots, init=init,
                           stages=parse_stages(patch_sizes, batch_sizes, shifts, epochs, steps),
                           learning_rate=learning_rate, val=val, val_batches=val_batches, seed=seed,
                           resume=resume, until_step=until_step, max_minutes=max_minutes,
                           pixel_size=pixel_size, target_offset=target_offset, channel=channel, plane=plane)
        typer.echo(f"{sum(s.epochs * s.steps for s in req.stages)} training steps in {len(req.stages)} stage(s) "
                   f"on {accelerator()}; checking the tables and movies first")

        def on_epoch(row: dict[str, Any]) -> None:
            typer.echo(f"step {row['step']:>6}  patch {row['patch']:>2}  epoch {row['epoch']:>3}  "
                       f"loss {row['loss']:.4f}  val loss {_fmt(row.get('val_loss'))}  "
                       f"val F1 exocytosis {_fmt(row.get('val_f1_exocytosis'))}  "
                       f"spot {_fmt(row.get('val_f1_spot'))}  ({row['seconds']:.0f} s)")

        existed = req.out.exists()
        try:
            with _bar(not quiet) as prog:
                res = train_files(req, _callback(prog), on_epoch)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM: the last checkpoint is complete and kept
            from ..checkpoint import has_checkpoint

            kept = has_checkpoint(req.out)
            if not kept and not existed and req.out.is_dir() and {f.name for f in req.out.iterdir()} <= {
                    "config.json"}:  # a folder this run made, with nothing to resume from: not left behind
                (req.out / "config.json").unlink(missing_ok=True)
                req.out.rmdir()
            typer.echo("exodf: training interrupted; " + (
                f"{req.out} keeps its last checkpoint: continue with the same command and --resume" if kept
                else "no checkpoint was written yet"), err=True)
            raise SystemExit(130) from None
        if res.finished:
            typer.echo(f"weights: {res.weights} (use exodf detect --weights {res.weights})")
            if res.best is not None and res.best_step is not None:
                last = "the last epoch" if res.best_step == res.step else f"step {res.best_step} of {res.step}"
                typer.echo(f"lowest validation loss of the last stage: {last}, {res.best}")
        else:
            typer.echo(f"stopped at step {res.step}; continue with the same command and --resume")
