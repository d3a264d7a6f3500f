"""File-level jobs behind ``exodf simulate``, ``evaluate``, ``rates``, ``measure``, ``demo`` and ``benchmark``.

Each reads its inputs, calls the array-level library, and writes its outputs atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import warnings as warnings_module
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .atomic import atomic_path, check_output, check_output_folder, write_text_atomic
from .errors import ExodfError
from .evaluate import (Matching, Rule, _nearest_frame, beyond_mask, cohens_d, crowds_top_left, edge_split, event_rate,
                       exclude_events, mean_sd,
                       pearson_r, score_events, summarize, units_mismatch, units_warnings)
from .events import TABLE_SUFFIXES, EventTable, read_events, write_events
from .io import MOVIE_SUFFIXES, cell_name, file_stem, movie_paths, pairing_key, read_mask, read_movie, write_tiff
from .jobs import METHODS, method_detector
from .measure import MeasureConfig, measure_events, summarize_cell
from .simulate import SIMULATOR_REVISION, SimParams, simulate

__all__ = ["SimFiles", "simulate_files", "pair_tables", "EvaluateRequest", "evaluate_files", "rates_files",
           "measure_file", "demo", "benchmark", "METHODS"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SimFiles:
    movie: Path
    truth: Path
    mask: Path
    params: Path
    n_events: int = 0  # in the ground truth


def simulate_files(out: str | os.PathLike[str], params: SimParams, seed: int = 0,
                   progress: Progress | None = None) -> SimFiles:
    """Simulate a movie into folder ``out``: movie.tif, ground_truth.csv, cell_mask.tif, simulation.json.

    The four are written first and then moved into place together: an error or an interrupt replaces none of
    a folder's earlier files (a new movie beside an older ground truth would score wrongly)."""
    files = _sim_files(out)
    sim = simulate(params, seed, progress=progress)
    with contextlib.ExitStack() as stack:
        _write_simulation(_staged(stack, files), sim, params, seed)
    return dataclasses.replace(files, n_events=len(sim.truth))


def _sim_files(out: str | os.PathLike[str], more: Sequence[str] = ()) -> SimFiles:
    """The simulation's files in folder ``out``, checked writable (with ``more`` files there) before any work."""
    folder = Path(out)
    check_output_folder(folder)
    files = SimFiles(folder / "movie.tif", folder / "ground_truth.csv", folder / "cell_mask.tif",
                     folder / "simulation.json")
    for f in (files.movie, files.truth, files.mask, files.params, *(folder / m for m in more)):
        check_output(f)  # all writable, or nothing is written
    return files


def _staged(stack: contextlib.ExitStack, files: SimFiles) -> SimFiles:
    """Temporary paths beside ``files`` that replace them when ``stack`` closes without an error,
    simulation.json (what says which simulation a folder holds) last."""
    tmp = {f: stack.enter_context(atomic_path(f)) for f in (files.params, files.mask, files.truth, files.movie)}
    return SimFiles(tmp[files.movie], tmp[files.truth], tmp[files.mask], tmp[files.params])


def _write_simulation(files: SimFiles, sim: Any, params: SimParams, seed: int) -> None:
    write_tiff(files.movie, sim.movie, resolution_um=params.pixel_size_um, frame_interval_s=params.frame_interval_s)
    write_events(sim.truth, files.truth)
    write_tiff(files.mask, (sim.mask * 255).astype(np.uint8), axes="YX")
    meta = {"seed": seed, "bleach": sim.bleach, "n_events": len(sim.truth), "params": params.as_dict(),
            "simulator_revision": SIMULATOR_REVISION}
    write_text_atomic(files.params, json.dumps(meta, indent=2) + "\n")


_MASK_NAME = re.compile(r"(^|[_\-. ])(cell_?)?mask$", re.IGNORECASE)  # cell_mask.tif, cell1_mask.tif


def _files(p: Path, suffixes: Sequence[str], what: str) -> dict[str, Path]:
    if p.is_dir():
        found: dict[str, Path] = {}
        if what == "movie":  # as exodf detect finds them: a per-frame folder is one movie; masks passed over
            files = [f for f in movie_paths([p]) if not _MASK_NAME.search(file_stem(f))]
        else:
            files = [f for f in sorted(p.iterdir()) if f.is_file() and f.suffix.lower() in suffixes]
        if what == "mask" and any(_MASK_NAME.search(file_stem(f)) for f in files):
            files = [f for f in files if _MASK_NAME.search(file_stem(f))]  # a movie beside its mask is no mask
        for f in files:
            if pairing_key(f) in found:
                raise ExodfError(f"{p}: {found[pairing_key(f)].name} and {f.name} both stand for "
                                 f"{pairing_key(f)!r}; keep one "
                                 "(names are paired without _events/_gt and the suffix)")
            found[pairing_key(f)] = f
        if not found:
            raise ExodfError(f"{p}: the folder holds no {what} ({', '.join(suffixes)})")
        return found
    if not p.is_file():
        raise ExodfError(f"{p}: not found; give a {what} file or a folder of them")
    return {pairing_key(p): p}


def pair_tables(pred: Path, gt: Path, example: str = "each prediction and ground truth alike (e.g. cell1_events.csv "
                "and cell1_gt.csv)", unpaired_gt: list[Path] | None = None,
                roles: tuple[str, str] = ("the predictions", "their ground truth")) -> list[tuple[str, Path, Path]]:
    """(name, prediction, ground truth): two files, or two folders paired by name (``_events``/``_gt`` and the
    case of letters ignored; the name is the prediction's); ``example`` completes the error's "name ..." for
    unpaired files. With ``unpaired_gt`` (a list), ground truths without a prediction are put there rather
    than refused (one truth folder for several runs); a prediction without ground truth is always refused.
    The same file or folder given twice is refused (each table would be scored against itself); ``roles``
    name the two in that message."""
    if pred.exists() and gt.exists() and pred.resolve() == gt.resolve():
        raise ExodfError(f"{pred} and {gt} are the same {'folder' if pred.is_dir() else 'file'}: each table would "
                         f"be compared with itself; give {roles[0]} first and {roles[1]} second")
    if pred.is_file() and gt.is_file():
        return [(cell_name(pred), pred, gt)]
    ps, gs = _files(pred, TABLE_SUFFIXES, "event table"), _files(gt, TABLE_SUFFIXES, "event table")
    if unpaired_gt is not None and gt.is_dir() and any(k in gs for k in ps):
        unpaired_gt += [f for k, f in sorted(gs.items()) if k not in ps]
        gs = {k: f for k, f in gs.items() if k in ps}
    missing = [f.name for k, f in sorted({**ps, **gs}.items()) if (k in ps) != (k in gs)]  # names as written
    if missing:
        raise ExodfError(f"{pred} / {gt}: no partner for {', '.join(missing[:10])}; name {example}")
    return [(cell_name(ps[k]), ps[k], gs[k]) for k in sorted(ps)]


@dataclass(frozen=True)
class EvaluateRequest:
    """The options of ``exodf evaluate`` (see its ``--help``)."""

    rule: Rule = field(default_factory=Rule)
    exclude_edges: int = 0
    n_frames: Optional[int] = None
    movies: Optional[Path] = None
    masks: Optional[Path] = None
    pixel_size_um: Optional[float] = None
    frame_interval_s: Optional[float] = None
    calibrated: bool = False

    def __post_init__(self) -> None:
        _check_counts(self.exclude_edges, self.n_frames, self.pixel_size_um, self.frame_interval_s)
        if self.calibrated and self.pixel_size_um is None:
            raise ValueError("--calibrated needs --pixel-size (µm per pixel)")


def _past_the_end(path: Path, table: EventTable, n_frames: int) -> None:
    """ExodfError when ``table`` has events after ``n_frames`` frames (--frames shorter than the movies)."""
    slices = _nearest_frame(table.frame) + 1
    if (slices > n_frames).any():
        raise ExodfError(f"{path}: {int((slices > n_frames).sum())} event(s) at or after Slice {n_frames + 1} (up to "
                         f"Slice {int(slices.max())}), beyond --frames {n_frames}: give the movies' length")


def _check_counts(exclude_edges: int, n_frames: Optional[int], pixel_size_um: Optional[float] = None,
                  frame_interval_s: Optional[float] = None, area_px: Optional[float] = None) -> None:
    """ValueError, naming the command-line option, for a count or a calibration out of range."""
    if exclude_edges < 0:
        raise ValueError(f"--exclude-edges must be >= 0 (frames at each end), got {exclude_edges}")
    for option, v in (("--frames", n_frames), ("--pixel-size", pixel_size_um),
                      ("--frame-interval", frame_interval_s), ("--area", area_px)):
        if v is not None and not v > 0:
            raise ValueError(f"{option} must be > 0, got {v}")
    if n_frames is not None and n_frames - 2 * exclude_edges <= 0:
        raise ValueError(f"--frames {n_frames} leaves no frame after excluding {exclude_edges} at each end")


def _partner(files: dict[str, Path], names: Sequence[str], where: Optional[Path], single: bool,
             what: str) -> Optional[Path]:
    """The movie or mask of a pair in ``files`` (from ``where``): by one of the pair's ``names`` (its
    prediction's, its ground truth's), or the only one for a single pair."""
    if where is None:
        return None
    for name in names:
        if name.lower() in files:
            return files[name.lower()]
    name = names[0]
    if single and len(files) == 1:
        return next(iter(files.values()))
    raise ExodfError(f"{where}: no {what} named like {name!r} (found {', '.join(sorted(files)[:10])}); name it "
                     f"after the tables (e.g. {name}.tif), or give the {what} file itself")


def _movie_shape(path: Path) -> tuple[int, int, int]:
    """(T, Y, X) of a movie, whichever its channels and planes (0 fits every movie; each has that shape)."""
    return tuple(int(v) for v in read_movie(path, check_finite=False, channel=0, plane=0).shape)  # type: ignore


def evaluate_files(pred: Path, gt: Path, req: EvaluateRequest = EvaluateRequest()) -> dict[str, Any]:
    """Score predictions against ground truth per movie and pooled; rates and their correlation. Ground truths
    without a prediction (a truth folder that covers more movies) are listed under ``unscored_truth``."""
    unscored: list[Path] = []
    pairs = pair_tables(pred, gt, unpaired_gt=unscored)
    single = len(pairs) == 1
    movies = _files(req.movies, MOVIE_SUFFIXES, "movie") if req.movies else {}
    masks = _files(req.masks, (".tif", ".tiff"), "mask") if req.masks else {}
    px = req.pixel_size_um if req.calibrated else None
    rows, matchings, rates_pred, rates_gt = [], [], [], []
    for name, pp, gp in pairs:
        mpath = _partner(movies, [name, pairing_key(gp)], req.movies, single, "movie")
        shape = _movie_shape(mpath) if mpath is not None else None
        n_frames = req.n_frames or (shape[0] if shape else None)
        if req.exclude_edges and n_frames is None:
            raise ExodfError(f"{gp}: --exclude-edges needs the movie length; give --frames N or --movie")
        if n_frames is not None and n_frames - 2 * req.exclude_edges <= 0:
            raise ExodfError(f"{mpath}: its {n_frames} frames leave none after --exclude-edges {req.exclude_edges} "
                             "at each end")
        kpath = _partner(masks, [name, pairing_key(gp)], req.masks, single, "mask")
        mask = read_mask(kpath, shape[1:] if shape else None) if kpath is not None else None
        pred_t, gt_t = read_events(pp, px), read_events(gp, px)
        if req.n_frames is not None and shape is None:  # (with the movie, units_warnings below says more)
            for path, t in ((pp, pred_t), (gp, gt_t)):
                _past_the_end(path, t, req.n_frames)
        warnings = [*units_warnings(pred_t, str(pp), shape, req.calibrated, _units_hint(pp)),
                    *units_warnings(gt_t, str(gp), shape, req.calibrated, _units_hint(gp))]
        mismatch = units_mismatch(pred_t, gt_t, str(pp), str(gp))
        if mismatch:
            warnings.append(mismatch)
        if mask is not None and shape is None:  # without the movie, the mask's size is the only check
            warnings += _outside_mask(pred_t, str(pp), mask, kpath) + _outside_mask(gt_t, str(gp), mask, kpath)
        with warnings_module.catch_warnings():  # beyond the mask: said above, naming the files
            warnings_module.simplefilter("ignore")
            rule = dict(max_distance=req.rule.max_distance, dt_min=req.rule.dt_min, dt_max=req.rule.dt_max,
                        one_to_one=req.rule.one_to_one)
            m = score_events(pred_t, gt_t, n_frames, req.exclude_edges, mask, **rule)
            split = edge_split(pred_t, gt_t, n_frames, req.exclude_edges, mask, **rule) if n_frames else (0, 0)
        matchings.append(m)
        row: dict[str, Any] = {"movie": name, **m.as_dict(), "edge_split_fp": split[0], "edge_split_fn": split[1],
                               "warnings": warnings}
        if n_frames is not None:
            frames = n_frames - 2 * req.exclude_edges
            area = float(mask.sum()) if mask is not None else (float(shape[1] * shape[2]) if shape else None)
            if frames > 0:
                px_um = req.pixel_size_um if area else None  # per µm² needs the counted area
                rp = event_rate(m.pred, frames, area or 1.0, px_um, req.frame_interval_s)
                rg = event_rate(m.gt, frames, area or 1.0, px_um, req.frame_interval_s)
                row.update(rate_pred=rp.per_frame, rate_gt=rg.per_frame,
                           rate_pred_um2_s=rp.per_um2_per_s, rate_gt_um2_s=rg.per_um2_per_s)
                rates_pred.append(rp.per_frame)
                rates_gt.append(rg.per_frame)
        rows.append(row)
    out: dict[str, Any] = {"rule": {"max_distance": req.rule.max_distance, "dt_min": req.rule.dt_min,
                                    "dt_max": req.rule.dt_max, "one_to_one": req.rule.one_to_one},
                           "exclude_edges": req.exclude_edges, "movies": rows,
                           "pooled": summarize(matchings).as_dict(), "unscored_truth": [str(f) for f in unscored]}
    if len(rates_pred) >= 2:
        r = pearson_r(rates_pred, rates_gt)
        out["rate_pearson_r"] = None if np.isnan(r) else r
    return out


def _units_hint(path: Path) -> Optional[str]:
    """The advice for a table whose positions do not fit its movie, when no option changes its unit (ExoJ's
    exports are read in pixels whatever --pixel-size says)."""
    from .exoj import EXPORT_UNITS_HINT, looks_like_exoj

    with open(path, "rb") as fh:
        return EXPORT_UNITS_HINT if looks_like_exoj(fh.read(4096)) else None


def _outside_mask(table: EventTable, name: str, mask: np.ndarray, path: Optional[Path],
                  movie_option: bool = True) -> list[str]:
    h, w = mask.shape
    out = int(beyond_mask(table, mask).sum())
    if not out:
        return []
    return [f"{out} of the {len(table)} events of {name} lie outside the mask's {w} x {h} pixels ({path}): they "
            "count as outside the cell; is it this movie's mask?" + (" (--movie checks the sizes)" if movie_option
                                                                    else "")]


def _outside_cell(table: EventTable, name: str, mask: np.ndarray, path: Optional[Path],
                  calibrated: bool) -> list[str]:
    """A message when most (over half, at least 3) of a table's events lie outside the cell of its mask (left
    out of the cell's rate): X/Y in µm read as pixels (they crowd into the top-left corner), or another cell's
    mask. A detector's events outside the cell (a neighbour's) are a minority."""
    inside = np.asarray(mask, dtype=bool)[np.rint(table.y).astype(int), np.rint(table.x).astype(int)]
    out = int((~inside).sum())
    if len(table) < 3 or 2 * out <= len(table):
        return []
    h, w = mask.shape
    why = (" - all in the frame's top-left corner, as X/Y in µm read as pixels would be: give --calibrated "
           "--pixel-size" if not calibrated and crowds_top_left(table, (0, h, w)) else ": is it this cell's mask?")
    return [f"{out} of the {len(table)} events of {name} lie outside the cell of {path} and are left out of its "
            f"rate{why}"]


def rates_files(before: Path, after: Path, n_frames: int, exclude_edges: int = 0,
                pixel_size_um: Optional[float] = None, frame_interval_s: Optional[float] = None,
                area_px: Optional[float] = None, masks: Optional[Path] = None,
                calibrated: bool = False) -> dict[str, Any]:
    """Per-cell rates before and after a treatment (tables paired by name), and the paired Cohen's d.

    ``masks``: one cell mask for every cell, or a folder of them named like the tables (``cell1.tif``,
    ``cell1_mask.tif``): each cell's area is its mask's, and events outside it are left out (instead of one
    ``area_px`` for all cells). ``calibrated``: the tables' X/Y are in µm (divided by ``pixel_size_um``);
    without ``frame_interval_s`` or ``area_px``, the pixel size then only reads them (events/frame, inside each
    mask), as for tables in pixels.
    """
    if calibrated and pixel_size_um is None:
        raise ExodfError("--calibrated tables (X/Y in µm) need --pixel-size to be read in pixels")
    read_um = pixel_size_um if calibrated else None
    if calibrated and frame_interval_s is None and area_px is None:
        pixel_size_um = None  # to read the tables only: no rate per µm² asked for
    try:
        _check_counts(exclude_edges, n_frames, pixel_size_um, frame_interval_s, area_px)
    except ValueError as e:
        raise ExodfError(str(e)) from None
    if area_px is not None and masks is not None:
        raise ExodfError("give --area (one area for every cell) or --mask (each cell's own), not both")
    given = {"--area (or --mask)": area_px if masks is None else masks, "--pixel-size": pixel_size_um,
             "--frame-interval": frame_interval_s}  # (--mask alone: events/frame inside each cell)
    if (area_px is not None or pixel_size_um is not None or frame_interval_s is not None) and \
            any(v is None for v in given.values()):
        raise ExodfError("rates per µm² per s need --area (or --mask), --pixel-size and --frame-interval together; "
                         "missing " + ", ".join(k for k, v in given.items() if v is None)
                         + " (without them: events/frame)")
    pairs = pair_tables(before, after, "each cell's tables before and after alike (e.g. before/cell1.csv and "
                        "after/cell1.csv)", roles=("the tables before the treatment", "those after it"))
    mask_files = _files(masks, (".tif", ".tiff"), "mask") if masks is not None else {}
    frames = n_frames - 2 * exclude_edges
    use_um = pixel_size_um is not None  # (with --frame-interval and an area: checked above)
    rows, b, a, warnings = [], [], [], []
    for name, pb, pa in pairs:
        kpath = _partner(mask_files, [name], masks, masks is not None and masks.is_file(), "mask")
        mask = read_mask(kpath) if kpath is not None else None
        area = float(mask.sum()) if mask is not None else (float(area_px) if area_px else 1.0)
        if mask is not None and not area:
            raise ExodfError(f"{kpath}: the mask of {name} is empty (no pixel inside the cell)")
        tables = []
        for path in (pb, pa):
            t = read_events(path, read_um)
            _past_the_end(path, t, n_frames)
            if mask is not None:
                warnings += (_outside_mask(t, str(path), mask, kpath, movie_option=False)
                             or _outside_cell(t, str(path), mask, kpath, calibrated))
            with warnings_module.catch_warnings():  # beyond the mask: said above, naming the files
                warnings_module.simplefilter("ignore")
                tables.append(exclude_events(t, n_frames, exclude_edges, mask))
        rb = event_rate(tables[0], frames, area, pixel_size_um, frame_interval_s)
        ra = event_rate(tables[1], frames, area, pixel_size_um, frame_interval_s)
        vb, va = (rb.per_um2_per_s, ra.per_um2_per_s) if use_um else (rb.per_frame, ra.per_frame)
        rows.append({"cell": name, "before": vb, "after": va, **({"area_px": area} if mask is not None else {})})
        b.append(vb)
        a.append(va)
    mb, sb, _ = mean_sd(b)
    ma, sa, _ = mean_sd(a)
    d = cohens_d(b, a, paired=True)
    if masks is not None and not use_um and len({r["area_px"] for r in rows}) > 1:
        warnings.append(f"{masks}: the cells' masks differ in area ({min(r['area_px'] for r in rows):g} to "
                        f"{max(r['area_px'] for r in rows):g} px) but the rates are events/frame, not per area: "
                        "give --pixel-size and --frame-interval for events/µm²/s")
    return {"unit": "events/µm²/s" if use_um else "events/frame", "cells": rows, "before_mean": mb,
            "before_sd": sb, "after_mean": ma, "after_sd": sa, "cohens_d": None if np.isnan(d) else d,
            "warnings": warnings}


def measure_file(movie: Path, events: Path, out: Path, config: MeasureConfig = MeasureConfig(),
                 pixel_size: Optional[float] = None, channel: Optional[int] = None,
                 plane: Optional[int] = None) -> dict[str, Any]:
    """Measure F/F0 and decay of each event of ``events`` in ``movie``; write the table; per-cell summary.

    ``pixel_size``: the table's X/Y are calibrated (µm per pixel); the output keeps that unit. The summary's
    ``warnings`` say when the table does not seem to be in the movie's pixels.
    """
    arr = read_movie(movie, channel=channel, plane=plane)
    if config.window > min(arr.shape[1:]):
        raise ExodfError(f"{movie}: the {config.window}-px window is larger than its {arr.shape[2]} x "
                         f"{arr.shape[1]}-px frames, so F and F0 would average the whole frame; give a --window "
                         "about the size of one event (default 7)")
    table = read_events(events, pixel_size)
    warnings = units_warnings(table, str(events), tuple(arr.shape), calibrated=pixel_size is not None)
    measured = measure_events(arr, table, config)
    f0 = measured.columns["f0"]
    dark = int(np.sum(f0 <= 0))  # (NaN, e.g. F0 before the movie's start, is not counted here)
    if dark:
        warnings.append(f"{movie}: {dark} of {len(measured)} events have F0 <= 0 (a background-subtracted or "
                        "offset movie?), so their F/F0 is undefined (NaN); measure the raw movie")
    write_events(measured, out, pixel_size=pixel_size)
    return {**summarize_cell(measured).as_dict(), "time_unit": "s" if config.frame_interval_s else "frames",
            "warnings": warnings}


# ------------------------------------------------------------------------------------------------
# demo and benchmark
# ------------------------------------------------------------------------------------------------
def _detect(method: str, movie: np.ndarray, weights: Optional[Path], progress: Progress | None) -> EventTable:
    return method_detector(method, weights)(movie, progress=progress)


def _fmt(v: Optional[float]) -> str:
    return "undefined" if v is None else f"{v:.2f}"


def demo(out: Path, params: SimParams, seed: int = 0, weights: Optional[Path] = None, exclude_edges: int = 25,
         method: str = "exodf", progress: Progress | None = None) -> dict[str, Any]:
    """Simulate a movie, detect its events, score them (edges excluded), measure them, write the report.

    Writes into ``out``: the simulation files, detections.csv (measured), scores.json, overlay.tif and
    report.png. Returns the scores.
    """
    from .report import overlay_movie, report_figure, write_overlay, write_report

    outputs = ("detections.csv", "scores.json", "overlay.tif", "report.png")
    files = _sim_files(out, outputs)
    sim = simulate(params, seed, progress=progress)
    # everything written first, then moved into place: a failed detection leaves the folder's earlier
    # movie and results together (not a new movie beside an older movie's scores)
    with contextlib.ExitStack() as stack:
        tmp = {name: stack.enter_context(atomic_path(Path(out) / name)) for name in outputs}
        staged = _staged(stack, files)
        _write_simulation(staged, sim, params, seed)
        movie = sim.movie  # (the movie as written; reading it back held a second copy during detection)
        del sim
        truth = read_events(staged.truth)
        events = _detect(method, movie, weights, progress)
        events = measure_events(movie, events, MeasureConfig(frame_interval_s=params.frame_interval_s))
        write_events(events, tmp["detections.csv"])
        m: Matching = score_events(events, truth, movie.shape[0], exclude_edges)
        full = score_events(events, truth)
        split = edge_split(events, truth, movie.shape[0], exclude_edges)
        scores: dict[str, Any] = {"preset_seed": seed, "method": method, "exclude_edges": exclude_edges,
                                  **m.as_dict(), "edge_split_fp": split[0], "edge_split_fn": split[1],
                                  "all_frames": full.as_dict(),
                                  "cell": {**summarize_cell(events).as_dict(),
                                           "time_unit": "s" if params.frame_interval_s else "frames"}}
        write_text_atomic(tmp["scores.json"], json.dumps(scores, indent=2) + "\n")
        write_overlay(tmp["overlay.tif"], overlay_movie(movie, matching=full), params.pixel_size_um,
                      params.frame_interval_s)
        fig = report_figure(events, movie.shape[0], background=movie.mean(axis=0), matching=m,
                            title=f"exodf demo: {method} on a simulated movie (seed {seed}), first/last "
                                  f"{exclude_edges} frames excluded",
                            scores={"P": m.precision, "R": m.recall, "F1": m.f1})
        write_report(tmp["report.png"], fig)
    return scores


def _same_simulation(folder: Path, params: Any, seed: int) -> bool:
    """Whether ``folder`` holds the movie of these parameters and seed (its simulation.json says so)."""
    try:
        meta = json.loads((folder / "simulation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    want = json.loads(json.dumps(params.as_dict()))  # tuples as JSON lists, as stored
    return (isinstance(meta, dict) and meta.get("seed") == seed and meta.get("params") == want
            and meta.get("simulator_revision") == SIMULATOR_REVISION
            and all((folder / f).is_file() for f in ("movie.tif", "ground_truth.csv")))


def _made_by(folder: Path) -> dict[str, str]:
    """Method -> what made its stored detections (``detections.json``), empty when unknown."""
    try:
        made = json.loads((folder / "detections.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in made.items()} if isinstance(made, dict) else {}


def _method_identity(method: str, weights: Optional[Path]) -> str:
    """What a method's detections depend on: exodf's version and, for the network, its weights' sha256."""
    from . import __version__

    if method != "exodf":
        return f"{method} (exodf {__version__})"
    from .pretrained import resolve_weights, sha256_file

    return f"exodf {__version__}, weights sha256 {sha256_file(resolve_weights(weights))}"


def benchmark(out: Path, presets: Sequence[str], n_movies: int, methods: Sequence[str],
              overrides: dict[str, Any] | None = None, seed: int = 0, exclude_edges: int = 25,
              weights: Optional[Path] = None, progress: Progress | None = None) -> list[dict[str, Any]]:
    """N movies per preset × methods -> P/R/F1 (mean ± SD over movies, and pooled) per preset and method.

    Movies and detections are kept under ``out/<preset>/seed_<k>/`` and reused when they were made with
    the same parameters, seed and weights (``simulation.json``, ``detections.json``), so an interrupted
    benchmark resumes where it stopped; changed options re-simulate or re-detect. Writes
    ``out/benchmark.csv`` and ``benchmark.json``.
    """
    from .simulate import preset as make_preset

    for meth in methods:
        if meth not in METHODS:
            raise ExodfError(f"--methods: unknown method {meth!r}; choose from {', '.join(METHODS)}")
    out = Path(out)
    check_output_folder(out)
    rows: list[dict[str, Any]] = []
    idents = {meth: _method_identity(meth, weights) for meth in methods}
    total, done = len(presets) * n_movies * len(methods), 0
    for name in presets:
        try:
            params = make_preset(name, **(overrides or {}))
        except ValueError as e:
            raise ExodfError(f"benchmark: {e}") from None
        per_method: dict[str, list[Matching]] = {m: [] for m in methods}
        for k in range(n_movies):
            folder = out / name / f"seed_{seed + k}"
            made = _made_by(folder)
            if not _same_simulation(folder, params, seed + k):
                for stale in [folder / f"{m}_events.csv" for m in METHODS] + [folder / "detections.json"]:
                    stale.unlink(missing_ok=True)  # detections of the movie about to be replaced
                simulate_files(folder, params, seed + k)
                made = {}
            movie = np.asarray(read_movie(folder / "movie.tif"))
            truth = read_events(folder / "ground_truth.csv")
            for meth in methods:
                pred_path = folder / f"{meth}_events.csv"
                ident = idents[meth]
                if pred_path.is_file() and made.get(meth) == ident:
                    pred = read_events(pred_path)
                else:
                    pred = _detect(meth, movie, weights, None)
                    write_events(pred, pred_path)
                    made[meth] = ident
                    write_text_atomic(folder / "detections.json", json.dumps(made, indent=2) + "\n")
                per_method[meth].append(score_events(pred, truth, movie.shape[0], exclude_edges))
                done += 1
                if progress:
                    progress("benchmark", done, total)
        for meth, ms in per_method.items():  # (with what made the figures: movies, scoring, method)
            rows.append({"preset": name, "method": meth, "n_movies": len(ms), **summarize(ms).as_dict(),
                         "frames": params.n_frames, "height": params.height, "width": params.width,
                         "seeds": [seed + k for k in range(n_movies)], "exclude_edges": exclude_edges,
                         "rule": asdict(Rule()), "method_identity": idents[meth]})
    header = ["preset", "method", "n_movies", "tp", "fp", "fn", "precision", "recall", "f1", "precision_mean",
              "precision_sd", "recall_mean", "recall_sd", "f1_mean", "f1_sd"]
    lines = [",".join(header)] + [",".join("" if r[h] is None else (f"{r[h]:.4f}" if isinstance(r[h], float)
                                                                     else str(r[h])) for h in header) for r in rows]
    write_text_atomic(out / "benchmark.csv", "\n".join(lines) + "\n")
    write_text_atomic(out / "benchmark.json", json.dumps(rows, indent=2) + "\n")
    return rows
