"""``exodf package``: the bioimage.io model package (rdf.yaml, model_package/, an optional zip)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ExodfError, pip_install


def register(app: typer.Typer) -> None:
    @app.command()
    def package(
        weights: Annotated[Optional[Path], typer.Option(help="Network weights (.h5/.keras, e.g. from exodf train). "
                                                        "Default: the published model.", exists=True,
                                                        dir_okay=False)] = None,
        out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Also write the package as this zip "
                                                    "(e.g. model.zip), ready for deepImageJ or bioimage.io.")]
        = None,
        root: Annotated[Optional[Path], typer.Option(help="Folder that receives rdf.yaml and model_package/. "
                                                     "Default: the exodf source tree.", file_okay=False)] = None,
        test: Annotated[bool, typer.Option("--test/--no-test", help="Then run `bioimageio test` on every weight "
                                           "format (minutes).")] = False,
    ) -> None:
        """Build the bioimage.io model package (rdf.yaml, model_package/) from the weights.

        Four weight formats checked against the Keras network, test tensors, sample TIFFs, cover; rdf.yaml
        validates once built."""
        from ..zoo.export import SOURCE_ROOT, TOLERANCE, build_package, missing_modules, test_package

        if test and missing_modules(["bioimageio.core"]):  # said before the minutes of building, not after them
            raise ExodfError(f"exodf package --test needs bioimageio.core: {pip_install('zoo')}, or build "
                             "without --test")
        if out is not None:  # before the minutes of building, and before rdf.yaml is rewritten
            from ..atomic import check_output

            if out.suffix.lower() != ".zip":
                raise ExodfError(f"-o {out}: the package is written as a zip; name it .zip (e.g. model.zip)")
            check_output(out, [weights])
        res = build_package(root or SOURCE_ROOT, weights=weights, zip_path=out,
                            progress=lambda msg: typer.echo(f"  {msg}", err=True))
        for fmt, diff in res.max_abs_diff.items():
            typer.echo(f"{fmt}: max |difference| to Keras {diff:.2e} (tolerance {TOLERANCE:g})")
        typer.echo(f"wrote {res.rdf} and {len(res.files) - 1} files" + (f"; zip {res.zip_path}" if res.zip_path
                                                                        else ""))
        if test:
            passed, failed = test_package(res.rdf)
            for line in failed:
                typer.echo(f"FAILED {line}", err=True)
            if not passed:
                raise ExodfError(f"{res.rdf}: bioimageio test failed ({len(failed)} checks); see above")
            typer.echo("bioimageio test: passed for every weight format")
