"""Visual quality control: an overlay movie with a circle at each event, and a one-page PNG report.

The overlay colours: with ground truth, green = true positive, red = false positive, yellow = missed
ground truth (false negative); without, every detection is cyan. A circle is drawn from 2 frames before
to 5 frames after the event's frame (the rule's time window), so it can be seen appearing in Fiji.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .atomic import atomic_path
from .evaluate import Matching
from .events import EventTable

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["COLOURS", "overlay_movie", "write_overlay", "report_figure", "write_report"]

COLOURS = {"tp": (0, 230, 0), "fp": (255, 40, 40), "fn": (255, 220, 0), "event": (0, 220, 255)}


def _to_grey8(movie: np.ndarray) -> np.ndarray:
    sample = np.asarray(movie[:: max(1, movie.shape[0] // 20)], dtype=np.float32)
    lo, hi = np.percentile(sample, [0.5, 99.8])
    scale = 255.0 / max(float(hi - lo), 1e-6)
    out = np.empty(movie.shape, dtype=np.uint8)
    for t in range(movie.shape[0]):
        out[t] = np.clip((np.asarray(movie[t], dtype=np.float32) - lo) * scale, 0, 255).astype(np.uint8)
    return out


def _circles(rgb: np.ndarray, table: EventTable, colour: tuple[int, int, int], radius: int,
             before: int, after: int) -> None:
    from skimage.draw import circle_perimeter

    t_n, h, w, _ = rgb.shape
    for x, y, f in zip(table.x, table.y, np.floor(table.frame + 0.5).astype(int)):
        rr, cc = circle_perimeter(int(round(y)), int(round(x)), radius, shape=(h, w))
        for t in range(max(0, f - before), min(t_n, f + after + 1)):
            rgb[t, rr, cc] = colour


def overlay_movie(movie: np.ndarray, events: EventTable | None = None, matching: Matching | None = None,
                  radius: int = 6, before: int = 2, after: int = 5) -> np.ndarray:
    """The movie as 8-bit RGB (T, Y, X, 3) with a circle around each event.

    Give ``matching`` (from :func:`exodf.evaluate.match_events`) for TP/FP/FN colours, or ``events`` alone.
    """
    grey = _to_grey8(movie)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if matching is not None:
        _circles(rgb, matching.gt.select(~matching.gt_matched), COLOURS["fn"], radius, before, after)
        _circles(rgb, matching.pred.select(~matching.pred_tp), COLOURS["fp"], radius, before, after)
        _circles(rgb, matching.pred.select(matching.pred_tp), COLOURS["tp"], radius, before, after)
    elif events is not None:
        _circles(rgb, events, COLOURS["event"], radius, before, after)
    return rgb


def write_overlay(path: str | os.PathLike[str], rgb: np.ndarray, resolution_um: float | None = None,
                  frame_interval_s: float | None = None) -> Path:
    """Write an RGB overlay (T, Y, X, 3) uint8 as an ImageJ RGB stack, atomically, calibrated as its movie
    when ``resolution_um`` (µm per pixel) and ``frame_interval_s`` are given."""
    import tifffile

    from .io import imagej_calibration

    p = Path(path)
    md, kw = imagej_calibration(resolution_um, frame_interval_s)
    with atomic_path(p) as tmp:
        tifffile.imwrite(tmp, rgb, imagej=True, photometric="rgb", metadata={"axes": "TYXS", **md}, **kw)
    return p


def _bins_scores(gt: Sequence[float], gt_hit: Sequence[bool], pred: Sequence[float], pred_tp: Sequence[bool],
                 edges: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    g, gh, p, pt = (np.asarray(a) for a in (gt, gt_hit, pred, pred_tp))
    prec, rec, f1 = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        gs, ps = (g >= lo) & (g < hi), (p >= lo) & (p < hi)
        r = gh[gs].mean() if gs.any() else math.nan
        pr = pt[ps].mean() if ps.any() else math.nan
        rec.append(float(r))
        prec.append(float(pr))
        f1.append(2 * pr * r / (pr + r) if (pr + r) > 0 else (0.0 if pr == r == 0 else math.nan))
    return prec, rec, f1


def report_figure(events: EventTable, n_frames: int, background: np.ndarray | None = None,
                  matching: Matching | None = None, title: str = "",
                  scores: dict[str, Any] | None = None) -> "Figure":
    """A 2×2 figure: event map, rate over time, F/F0 histogram, and P/R/F1 by F/F0 bin.

    ``events`` (and the tables of ``matching``) may carry a ``fold`` column (from
    :func:`exodf.measure.measure_events`, or the simulator's ground truth); the F/F0 panels need it.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 9), layout="constrained")
    ax = fig.subplots(2, 2)
    if title:
        fig.suptitle(title)
    # event map
    a = ax[0, 0]
    if background is not None:
        a.imshow(background, cmap="gray")
    if matching is not None:
        for tab, sel, key, label in ((matching.pred, matching.pred_tp, "tp", "TP"),
                                     (matching.pred, ~matching.pred_tp, "fp", "FP"),
                                     (matching.gt, ~matching.gt_matched, "fn", "FN")):
            t = tab.select(sel)
            a.scatter(t.x, t.y, s=30, facecolors="none", edgecolors=np.array(COLOURS[key]) / 255,
                      label=f"{label} ({len(t)})")
        a.legend(loc="upper right", fontsize=8)
    else:
        a.scatter(events.x, events.y, s=30, facecolors="none", edgecolors=np.array(COLOURS["event"]) / 255,
                  label=f"events ({len(events)})")
        a.legend(loc="upper right", fontsize=8)
    a.set_title("Event map")
    a.set_xlabel("x (px)")
    a.set_ylabel("y (px)")
    # rate over time
    a = ax[0, 1]
    width = max(1, n_frames // 20)
    edges = np.arange(0, n_frames + width, width)
    # with a matching: the scored events of both tables (the same frames and mask excluded from each)
    a.hist(events.frame if matching is None else matching.pred.frame, bins=edges, histtype="step", lw=2,
           label="detected")
    if matching is not None:  # dashed and dark: visible where it runs over the detections' line
        a.hist(matching.gt.frame, bins=edges, histtype="step", lw=1.5, ls="--", color="black", label="ground truth")
        a.legend(fontsize=8)
    a.set_title(f"Events over time (per {width} frames{', scored' if matching is not None else ''})")
    a.set_xlabel("frame (from 0; ImageJ's Slice = frame + 1)")
    a.set_xlim(0, n_frames)  # (the last bin may reach past the movie's end)
    a.set_ylabel("events")
    a.yaxis.set_major_locator(MaxNLocator(integer=True))  # (counts: no 2.5 events)
    # F/F0 histogram
    a = ax[1, 0]
    fold = (events if matching is None else matching.pred).columns.get("fold")  # the scored set, as above
    det_f = fold[np.isfinite(fold)] if fold is not None else np.zeros(0)
    gt_fold = matching.gt.columns.get("fold") if matching is not None else None
    gt_f = gt_fold[np.isfinite(gt_fold)] if gt_fold is not None else np.zeros(0)
    both = np.concatenate([det_f, gt_f])
    fold_bins = np.linspace(float(both.min()), float(both.max()) + 1e-9, 21) if both.size else 20
    if det_f.size:
        a.hist(det_f, bins=fold_bins, alpha=0.6, label="detected (measured)")
    if gt_f.size:
        a.hist(gt_f, bins=fold_bins, alpha=0.6, label="ground truth")
    a.set_title("F/F0" + (" (scored events)" if matching is not None else ""))
    a.set_xlabel("F/F0")
    a.set_ylabel("events")
    a.yaxis.set_major_locator(MaxNLocator(integer=True))
    if a.get_legend_handles_labels()[0]:
        a.legend(fontsize=8)
    # P/R/F1 by F/F0 bin: a TP counts at its ground truth's F/F0, an FP at its own measured F/F0
    a = ax[1, 1]
    pred_fold = matching.pred.columns.get("fold") if matching is not None else None
    if matching is not None and gt_fold is not None and np.isfinite(gt_fold).any():
        pf = np.full(matching.n_pred, np.nan) if pred_fold is None else np.array(pred_fold, dtype=float)
        tp = matching.pred_tp
        pf[tp] = gt_fold[matching.pred_to_gt[tp]]
        g = gt_fold[np.isfinite(gt_fold)]
        edges = np.linspace(float(g.min()), float(g.max()) + 1e-9, 5)
        edges[0], edges[-1] = min(edges[0], 1.0), max(edges[-1], float(np.nanmax(pf, initial=0)) + 1e-9)
        unmeasured = int(np.sum(~np.isfinite(pf) & ~tp))  # FPs with no F/F0 (e.g. F0 before the movie)
        pf = np.clip(pf, edges[0], edges[-1] - 1e-9)  # FPs dimmer than any true event count in the first bin
        prec, rec, f1 = _bins_scores(gt_fold, matching.gt_matched, pf, tp, edges)
        mid = (edges[:-1] + edges[1:]) / 2
        for vals, name in ((prec, "precision"), (rec, "recall"), (f1, "F1")):
            v = np.asarray(vals)  # a bin without events has no score: the line joins the bins that have one
            a.plot(mid[np.isfinite(v)], v[np.isfinite(v)], "o-", label=name)
        empty = int(np.sum(~np.isfinite(f1)))
        a.set_ylim(0, 1.05)
        n_gt, _ = np.histogram(np.clip(g, edges[0], edges[-1] - 1e-9), edges)
        n_det, _ = np.histogram(pf[np.isfinite(pf)], edges)
        for xm, ng, nd in zip(mid, n_gt, n_det):  # how many events each bin's scores rest on
            a.text(xm, 0.02, f"{ng} true\n{nd} det.", ha="center", va="bottom", fontsize=7, color="0.3")
        a.legend(fontsize=8)
        a.set_xlabel("F/F0 (bin centre; TP at their ground truth's F/F0)"
                     + (f"\n{empty} of {len(mid)} bins without detections or true events: no F1" if empty else "")
                     + (f"\n{unmeasured} FP without F/F0 not binned" if unmeasured else ""))
    else:
        a.text(0.5, 0.5, "needs ground truth with F/F0\n(simulated movies have it)", ha="center", va="center",
               transform=a.transAxes)
    head = ""
    if scores:
        head = "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items())
    a.set_title("Scores by F/F0" + (f"\n{head}" if head else ""))
    return fig


def write_report(path: str | os.PathLike[str], fig: "Figure", dpi: int = 100) -> Path:
    """Save a report figure as PNG, atomically."""
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return p
