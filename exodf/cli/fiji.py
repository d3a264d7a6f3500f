"""``exodf fiji ...``: install the macro set into Fiji, draw events as ImageJ overlays, run macros, run ExoJ."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ExodfError, option_error

FIJI_HELP = "Fiji.app folder (default: $EXODF_FIJI)."
JAR_HELP = "ImageJ 1.x jar when no Fiji is named (default: $EXODF_IJ_JAR or /usr/share/java/ij.jar)."


def register(app: typer.Typer) -> None:
    fiji_app = typer.Typer(help="Fiji/ImageJ: macro set, overlays, batch macros, ExoJ side by side.",
                           no_args_is_help=True)
    app.add_typer(fiji_app, name="fiji")

    @fiji_app.command("install")
    def install(
        fiji: Annotated[Optional[Path], typer.Option(help=FIJI_HELP)] = None,
        exodf_command: Annotated[Optional[str], typer.Option(help="How Fiji runs exodf, elements separated by "
                                                             "'|' (default: this Python with -m exodf).")] = None,
    ) -> None:
        """Install the exodf toolset and the headless batch macro into a Fiji.

        The toolset appears in the toolbar's >> menu; then its tool and Plugins > Macros commands."""
        from ..fiji import find_fiji, install_macros

        root = find_fiji(fiji)
        if root is None:
            raise ExodfError("exodf fiji install: name the Fiji with --fiji Fiji.app (or set EXODF_FIJI)")
        cmd = exodf_command.split("|") if exodf_command else None
        if cmd is not None:  # Fiji would only say so on the first click
            import shutil

            if not cmd[0] or (shutil.which(cmd[0]) is None and not Path(cmd[0]).is_file()):
                raise ExodfError(f"--exodf-command: {cmd[0]!r} is not a program here; give the path of the Python "
                                 "(or of the exodf program) that has exodf installed, e.g. /path/to/python|-m|exodf")
        files = install_macros(root, cmd)
        for f in files:
            typer.echo(f"installed {f}")
        typer.echo("restart Fiji and choose 'exodf' in the toolbar's >> menu: its Detect tool joins the toolbar "
                   "and its commands (detect, open a table and draw it, save the overlay) appear under Plugins > "
                   f"Macros; {files[-1].name} is for headless runs: exodf fiji macro {shlex.quote(str(files[-1]))} "
                   "--arg ...")

    @fiji_app.command("overlay")
    def overlay(
        movie: Annotated[Path, typer.Argument(help="The movie (TIFF).", exists=True, dir_okay=False)],
        events: Annotated[Path, typer.Argument(help="Its event table (any format exodf reads).", exists=True,
                                               dir_okay=False)],
        out: Annotated[Path, typer.Option("-o", "--out", help="ROI set (.zip) or movie with overlay (.tif).")],
        radius: Annotated[float, typer.Option(help="Circle radius (px).")] = 4.5,
        before: Annotated[int, typer.Option(help="Show each circle from this many frames before the event.")] = 2,
        after: Annotated[int, typer.Option(help="... to this many frames after it.")] = 5,
        pixel_size: Annotated[Optional[float], typer.Option(help="The table's X/Y are calibrated (as `exodf "
                                                            "detect --pixel-size` writes them): size of a pixel "
                                                            "in their unit (e.g. 0.16 for µm).")] = None,
        fiji: Annotated[Optional[Path], typer.Option(help=FIJI_HELP)] = None,
        ij_jar: Annotated[Optional[Path], typer.Option(help=JAR_HELP)] = None,
    ) -> None:
        """Draw events as ImageJ circles (one ROI per event and frame) and save them."""
        from ..atomic import check_output
        from ..evaluate import units_warnings
        from ..events import read_events
        from ..fiji import OverlayStyle, add_overlay, check_overlay_path, save_overlay, start_imagej
        from ..io import read_movie

        try:
            style = OverlayStyle(radius=radius, before=before, after=after)
        except ValueError as e:  # "OverlayStyle.radius must be ..." -> "--radius must be ..."
            raise option_error(e) from None
        check_output(out, [movie, events])
        check_overlay_path(out)  # (before ImageJ starts and opens the movie)
        table = read_events(events, pixel_size)
        # the checks exodf detect makes (damaged, a single image, not intensities), before ImageJ opens it
        shape = read_movie(movie, check_finite=False, channel=0, plane=0).shape
        t, h, w = shape
        inside = ((table.x >= -0.5) & (table.x < w - 0.5) & (table.y >= -0.5) & (table.y < h - 0.5)
                  & (table.frame >= -0.5) & (table.frame < t - 0.5))
        if len(table) and not inside.any():  # (ImageJ would draw them off the image and save the set)
            raise ExodfError(f"{events}: none of its {len(table)} events lies in {movie} ({w} x {h} pixels, {t} "
                             "frames), so there is nothing to draw: is it this movie's table? (calibrated X/Y: "
                             "give --pixel-size)")
        for msg in units_warnings(table, events.name, shape, calibrated=pixel_size is not None):
            typer.echo(f"warning: {msg}", err=True)
        ij = start_imagej(fiji=fiji, ij_jar=ij_jar)
        imp = ij.open_movie(movie)
        ov = add_overlay(imp, table, style, ij)
        save_overlay(imp, out, ij)
        typer.echo(f"{len(table)} events, {int(ov.size())} ROIs -> {out}")

    @fiji_app.command("macro")
    def macro(
        macro_file: Annotated[Path, typer.Argument(help="ImageJ macro (.ijm).", exists=True, dir_okay=False)],
        argument: Annotated[str, typer.Option("--arg", help="The macro's getArgument().")] = "",
        ij_jar: Annotated[Optional[Path], typer.Option(help=JAR_HELP)] = None,
        timeout: Annotated[float, typer.Option(help="Seconds before ImageJ is stopped.")] = 600.0,
        fiji: Annotated[Optional[Path], typer.Option(help="Run it with this Fiji.app's ImageJ (and bundled Java) "
                                                     "instead of an ij.jar.")] = None,
    ) -> None:
        """Run a macro in a headless ImageJ (-batch; under xvfb-run without a display); print its output."""
        from ..fiji import run_batch_macro

        p = run_batch_macro(macro_file, argument, ij_jar=ij_jar, timeout=timeout, fiji=fiji)
        typer.echo(p.stdout, nl=False)
        if p.returncode != 0:
            raise ExodfError(f"{macro_file}: ImageJ exited with status {p.returncode}: {p.stderr.strip()[-500:]}")
        # ImageJ ends a macro's exit("...") with status 0: exodf's macros print "exodf_NAME: done" at the end
        for name in set(re.findall(r'print\("(exodf_\w+): done', macro_file.read_text("utf-8", "replace"))):
            if f"{name}: done" not in p.stdout:
                lines = p.stdout.strip().splitlines() or ["(no output)"]
                why = next((ln for ln in lines if ln.startswith("exodf: error:")), None)  # exodf's own
                if why is None:  # the macro's message: from its last line that names exodf, else the last line
                    at = max((i for i, ln in enumerate(lines) if ln.startswith("exodf")), default=len(lines) - 1)
                    why = "\n".join(lines[at:at + 6])
                raise ExodfError(f"{macro_file}: the macro stopped before the end: {why}")

    @fiji_app.command("exoj")
    def exoj(
        movie: Annotated[Path, typer.Argument(help="The movie to analyse with ExoJ.", exists=True, dir_okay=False)],
        fiji: Annotated[Optional[Path], typer.Option(help=FIJI_HELP + " ExoJ must be installed in it.")] = None,
        watch: Annotated[Optional[Path], typer.Option(help="Folder ExoJ's export is saved into (default: the "
                                                      "movie's folder).")] = None,
        gt: Annotated[Optional[Path], typer.Option(help="Ground truth to score ExoJ's events against.",
                                                   exists=True, dir_okay=False)] = None,
        out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Also write ExoJ's events as an "
                                                    "ImageJ table here.")] = None,
        exclude_edges: Annotated[int, typer.Option(min=0, help="Scoring: ignore the first and last N frames.")] = 0,
        timeout: Annotated[float, typer.Option(help="Seconds to wait for ExoJ's export.")] = 3600.0,
    ) -> None:
        """Open MOVIE in your Fiji, start ExoJ's wizard, wait for its exported list and score it."""
        from ..atomic import check_output
        from ..events import check_table_path, read_events, write_events
        from ..exoj import run_exoj

        if out is not None:  # before ExoJ's wizard, not after
            check_output(out, [movie])
            check_table_path(out)
        truth = read_events(gt) if gt is not None else None  # a bad table said before the wizard too
        table, export = run_exoj(movie, fiji, watch, timeout, progress=typer.echo)
        typer.echo(f"ExoJ: {len(table)} events in {export}")
        if out is not None:
            write_events(table, out)
            typer.echo(f"-> {out}")
        if truth is not None:
            from ..evaluate import score_events
            from ..io import read_movie

            n_frames = int(read_movie(movie, check_finite=False).shape[0])
            m = score_events(table, truth, n_frames, exclude_edges)
            f = {k: ("undefined" if v is None else f"{v:.3f}") for k, v in
                 (("p", m.precision), ("r", m.recall), ("f1", m.f1))}
            typer.echo(f"TP {m.tp}  FP {m.fp}  FN {m.fn}  precision {f['p']}  recall {f['r']}  F1 {f['f1']}")
