"""Side-by-side comparison of detectors on movies with ground truth (the paper's comparison with ExoJ).

For each movie, each method's events are scored with the paper's rule (:func:`exodf.evaluate.score_events`,
same exclusions for every method). Over all movies it reports, per method, TP/FP/FN, precision, recall and
F1 (pooled, and mean ± SD over movies), the predicted vs true exocytosis rate, and the seconds each method
took per movie; and the overlaps between methods (the paper's Venn diagrams):

- TP/FN: each ground-truth event is labelled by the set of methods that found it (the empty set: missed
  by all);
- FP: false positives of different methods are merged when the rule would match them to each other
  (one taken as the "truth"), and each merged group is labelled by the methods it contains.

Methods: ``exodf`` (the network), ``exoj-like``, ``adae-like`` (:mod:`exodf.baselines`), and
``exoj-export=PATH`` (an ExoJ export: a file for one movie, or a folder holding one export per movie whose
name starts with the movie's name).
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .errors import ExodfError
from .evaluate import Matching, exclude_events, match_events, score_events, summarize
from .events import EventTable

__all__ = ["MethodSpec", "parse_methods", "venn_counts", "MovieResult", "Comparison", "compare_movies",
           "comparison_rows", "comparison_figure", "venn_totals", "compare_files", "BUILTIN_METHODS"]

BUILTIN_METHODS = ("exodf", "exoj-like", "adae-like")
Detector = Callable[[np.ndarray], EventTable]


@dataclass(frozen=True)
class MethodSpec:
    """A method to compare: a built-in detector, or ExoJ exports read from ``export``."""

    name: str
    export: Optional[Path] = None


def parse_methods(spec: str) -> list[MethodSpec]:
    """``"exodf,exoj-like,exoj-export=/data/exoj"`` -> method specs (names unique, known)."""
    out: list[MethodSpec] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item.startswith("exoj-export="):
            out.append(MethodSpec("exoj", Path(item.split("=", 1)[1]).expanduser()))
        elif item in BUILTIN_METHODS:
            out.append(MethodSpec(item))
        else:
            raise ExodfError(f"--methods: unknown method {item!r}; choose from {', '.join(BUILTIN_METHODS)} "
                             "or exoj-export=FILE_OR_FOLDER")
    names = [m.name for m in out]
    if not out or len(set(names)) != len(names):
        raise ExodfError(f"--methods {spec!r}: give at least one method, each once")
    return out


def venn_counts(matchings: dict[str, Matching], max_distance: float = 4.5, dt_min: int = -2,
                dt_max: int = 5) -> dict[str, dict[str, int]]:
    """Overlap counts between methods for one movie (see the module docstring).

    Returns ``{"tp": {...}, "fn": {...}, "fp": {...}}`` keyed by ``"a&b"`` (methods in the given order),
    ``"none"`` for ground truths no method found (in ``fn`` only, which holds each method-set's misses).
    """
    names = list(matchings)
    n_gt = next(iter(matchings.values())).n_gt if matchings else 0
    found = np.zeros((len(names), n_gt), dtype=bool)
    for k, n in enumerate(names):
        found[k] = matchings[n].gt_matched
    tp: dict[str, int] = {}
    fn: dict[str, int] = {}
    for g in range(n_gt):
        who = [names[k] for k in range(len(names)) if found[k, g]]
        key = "&".join(who) if who else "none"
        tp[key] = tp.get(key, 0) + (1 if who else 0)
        missed = [names[k] for k in range(len(names)) if not found[k, g]]
        fn_key = "&".join(missed) if missed else "none"
        if missed:
            fn[fn_key] = fn.get(fn_key, 0) + 1
    tp = {k: v for k, v in tp.items() if v}
    # false positives merged across methods
    fps = [(n, matchings[n].pred.select(~matchings[n].pred_tp)) for n in names]
    offsets = np.cumsum([0] + [len(t) for _, t in fps])
    parent = np.arange(int(offsets[-1]))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return int(i)

    for (a, (_, ta)), (b, (_, tb)) in itertools.combinations(enumerate(fps), 2):
        m = match_events(ta, tb, max_distance=max_distance, dt_min=dt_min, dt_max=dt_max)
        m2 = match_events(tb, ta, max_distance=max_distance, dt_min=dt_min, dt_max=dt_max)
        for i in np.flatnonzero(m.pred_tp):
            parent[find(int(offsets[a] + i))] = find(int(offsets[b] + m.pred_to_gt[i]))
        for j in np.flatnonzero(m2.pred_tp):
            parent[find(int(offsets[b] + j))] = find(int(offsets[a] + m2.pred_to_gt[j]))
    groups: dict[int, set[int]] = {}
    for k in range(len(fps)):
        for i in range(int(offsets[k]), int(offsets[k + 1])):
            groups.setdefault(find(i), set()).add(k)
    fp: dict[str, int] = {}
    for members in groups.values():
        key = "&".join(names[k] for k in sorted(members))
        fp[key] = fp.get(key, 0) + 1
    return {"tp": tp, "fn": fn, "fp": fp}


@dataclass
class MovieResult:
    """One movie: per method, its matching and the seconds it took (None for read exports)."""

    name: str
    n_frames: int
    area_px: float
    truth: EventTable
    matchings: dict[str, Matching] = field(default_factory=dict)
    seconds: dict[str, Optional[float]] = field(default_factory=dict)
    venn: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class Comparison:
    """All movies, and the settings they were scored with."""

    methods: list[str]
    movies: list[MovieResult]
    exclude_edges: int


def _scored_frames(n_frames: int, exclude_edges: int) -> int:
    return max(1, n_frames - 2 * exclude_edges)


def compare_movies(movies: Sequence[tuple[str, np.ndarray, EventTable]], detectors: dict[str, Detector | EventTable
                   | Sequence[EventTable]], exclude_edges: int = 0,
                   progress: Optional[Callable[[str, int, int], None]] = None) -> Comparison:
    """Run or read every method on every movie and score it against that movie's ground truth.

    Parameters
    ----------
    movies
        (name, (T, Y, X) movie, ground truth) per movie.
    detectors
        Per method: a function movie -> EventTable (timed), or precomputed tables (one per movie).
    exclude_edges
        Frames ignored at each end, for every method and the ground truth alike (the paper: 25).
    """
    results: list[MovieResult] = []
    total = len(movies) * len(detectors)
    done = 0
    for mi, (name, movie, truth) in enumerate(movies):
        n_frames = int(movie.shape[0])
        res = MovieResult(name, n_frames, float(movie.shape[1] * movie.shape[2]), truth)
        for meth, det in detectors.items():
            if callable(det):
                t0 = time.perf_counter()
                pred = det(movie)
                res.seconds[meth] = time.perf_counter() - t0
            else:
                pred = det if isinstance(det, EventTable) else det[mi]
                res.seconds[meth] = None
            res.matchings[meth] = score_events(pred, truth, n_frames, exclude_edges)
            done += 1
            if progress is not None:
                progress("compare", done, total)
        res.venn = venn_counts(res.matchings)
        results.append(res)
    return Comparison(list(detectors), results, exclude_edges)


def comparison_rows(c: Comparison) -> list[dict[str, Any]]:
    """One row per method: pooled and mean ± SD scores, rates (events per frame) and seconds per movie."""
    rows = []
    for meth in c.methods:
        ms = [r.matchings[meth] for r in c.movies]
        s = summarize(ms)
        frames = sum(_scored_frames(r.n_frames, c.exclude_edges) for r in c.movies)
        secs = [r.seconds[meth] for r in c.movies if r.seconds.get(meth) is not None]
        rows.append({"method": meth, **s.as_dict(),
                     "pred_rate": sum(m.n_pred for m in ms) / frames, "true_rate": sum(m.n_gt for m in ms) / frames,
                     "seconds_per_movie": (float(np.mean(secs)) if secs else None)})
    return rows


def venn_totals(c: Comparison) -> dict[str, dict[str, int]]:
    """The per-movie overlap counts summed over movies."""
    out: dict[str, dict[str, int]] = {"tp": {}, "fn": {}, "fp": {}}
    for r in c.movies:
        for kind, d in r.venn.items():
            for k, v in d.items():
                out[kind][k] = out[kind].get(k, 0) + v
    return out


def comparison_figure(c: Comparison) -> Any:
    """A matplotlib figure: P/R/F1 per method, TP/FP overlap counts, predicted vs true rate per movie."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = comparison_rows(c)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    w = 0.25
    xs = np.arange(len(rows))
    for k, key in enumerate(("precision", "recall", "f1")):
        vals = [r[key] if r[key] is not None else 0.0 for r in rows]
        ax.bar(xs + (k - 1) * w, vals, w, label=key.upper() if key == "f1" else key.capitalize())
    ax.set_xticks(xs, [r["method"] for r in rows])
    ax.set_ylim(0, 1.2)
    ax.set_title(f"Paper's rule: {len(c.movies)} movie(s), {c.exclude_edges} edge frames excluded", fontsize=10)
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    ax = axes[1]
    tot = venn_totals(c)
    labels, tp_v, fp_v = [], [], []
    for key in sorted(set(tot["tp"]) | set(tot["fp"]), key=lambda k: (k.count("&"), k)):
        labels.append(key.replace("&", " & "))
        tp_v.append(tot["tp"].get(key, 0))
        fp_v.append(tot["fp"].get(key, 0))
    ys = np.arange(len(labels))
    ax.barh(ys - 0.2, tp_v, 0.4, label="true positives (ground truths found)")
    ax.barh(ys + 0.2, fp_v, 0.4, label="false positives (merged)")
    ax.set_yticks(ys, labels)
    ax.set_title(f"Overlaps between methods (missed by all: {tot['fn'].get('&'.join(c.methods), 0)})",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2]
    for meth in c.methods:
        tr = [r.matchings[meth].n_gt / _scored_frames(r.n_frames, c.exclude_edges) for r in c.movies]
        pr = [r.matchings[meth].n_pred / _scored_frames(r.n_frames, c.exclude_edges) for r in c.movies]
        ax.scatter(tr, pr, label=meth)
    lim = max([0.01] + [r.matchings[m].n_pred / _scored_frames(r.n_frames, c.exclude_edges)
                        for r in c.movies for m in c.methods] + [r.matchings[c.methods[0]].n_gt /
                                                                 _scored_frames(r.n_frames, c.exclude_edges)
                                                                 for r in c.movies]) * 1.1
    ax.plot([0, lim], [0, lim], "k:", lw=1)
    ax.set_xlabel("true events per frame")
    ax.set_ylabel("predicted events per frame")
    ax.set_title("Exocytosis rate per movie", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def exclude_truth(truth: EventTable, n_frames: int, exclude_edges: int) -> EventTable:
    """The ground truth as scored (edges excluded)."""
    return exclude_events(truth, n_frames, exclude_edges)


def find_export(export: Path, movie: Path, n_movies: int) -> Path:
    """The ExoJ export of ``movie``: ``export`` itself (a file, one movie) or the file in folder ``export``
    whose name starts with the movie's name (without extension)."""
    if export.is_file():
        if n_movies > 1:
            raise ExodfError(f"exoj-export={export}: one file for {n_movies} movies; give a folder of exports "
                             "named after the movies")
        return export
    if not export.is_dir():
        raise ExodfError(f"exoj-export={export}: not found; give ExoJ's exported list or a folder of them")
    stem = movie.name.split(".")[0]
    files = sorted(f for f in export.iterdir() if f.is_file())
    cands = [f for f in files if f.name.startswith(stem)]
    if len(cands) != 1 and movie.parent.name:
        # movies that share a file name (sim/cell1/movie.tif, sim/cell2/movie.tif): their folder's name,
        # as a whole word of the export's name (cell1.csv, movie_cell1.csv)
        word = re.compile(rf"(^|[^A-Za-z0-9]){re.escape(movie.parent.name)}([^A-Za-z0-9]|$)")
        by_folder = [f for f in files if word.search(f.stem)]
        cands = by_folder if len(by_folder) == 1 else cands
    if len(cands) != 1:
        raise ExodfError(f"exoj-export={export}: expected one export for {movie}, named {stem}* or after its folder "
                         f"({movie.parent.name or '-'}), found {len(cands) or 'none'}; name each ExoJ export after "
                         "its movie")
    return cands[0]


def _detector(name: str, weights: Optional[Path]) -> Detector:
    if name == "exodf":
        from .detect import detect_events
        from .jobs import load_detector

        net = load_detector(weights)
        return lambda movie: detect_events(movie, net).events
    if name == "exoj-like":
        from .baselines import detect_exoj_like

        return detect_exoj_like
    from .baselines import detect_adae_like

    return detect_adae_like


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def compare_files(movies: Sequence[Path], gts: Sequence[Path], methods: Sequence[MethodSpec], out: Path,
                  exclude_edges: int = 0, weights: Optional[Path] = None,
                  progress: Optional[Callable[[str, int, int], None]] = None) -> Comparison:
    """Read movies and ground truths, compare the methods, write ``out/compare.csv``, ``compare.json``
    (rows, overlaps, per-movie scores and seconds) and ``compare.png``."""
    import json

    from .atomic import atomic_path, write_text_atomic
    from .events import read_events
    from .exoj import parse_exoj
    from .io import read_movie

    if len(gts) != len(movies):
        raise ExodfError(f"--gt: {len(gts)} ground-truth table(s) for {len(movies)} movie(s); give one per movie "
                         "in the same order (or put ground_truth.csv beside each movie)")
    loaded = [(Path(m).stem, np.asarray(read_movie(m)), read_events(g)) for m, g in zip(movies, gts)]
    detectors: dict[str, Any] = {}
    for spec in methods:
        if spec.export is not None:
            detectors[spec.name] = [parse_exoj(f.read_bytes(), f) for f in
                                    (find_export(spec.export, Path(m), len(movies)) for m in movies)]
        else:
            detectors[spec.name] = _detector(spec.name, weights)
    c = compare_movies(loaded, detectors, exclude_edges, progress)
    rows = comparison_rows(c)
    header = ["method", "n_movies", "tp", "fp", "fn", "precision", "recall", "f1", "precision_mean",
              "precision_sd", "recall_mean", "recall_sd", "f1_mean", "f1_sd", "pred_rate", "true_rate",
              "seconds_per_movie"]
    lines = [",".join(header)] + [",".join(_fmt(r[h]) for h in header) for r in rows]
    out = Path(out)
    write_text_atomic(out / "compare.csv", "\n".join(lines) + "\n")
    per_movie = [{"movie": r.name, "n_frames": r.n_frames, "venn": r.venn,
                  "methods": {m: {**r.matchings[m].as_dict(), "seconds": r.seconds[m]} for m in c.methods}}
                 for r in c.movies]
    doc = {"exclude_edges": exclude_edges, "rule": "paper (4.5 px, -2 <= dt <= 5 frames)", "methods": rows,
           "overlaps": venn_totals(c), "movies": per_movie}
    write_text_atomic(out / "compare.json", json.dumps(doc, indent=2) + "\n")
    fig = comparison_figure(c)
    with atomic_path(out / "compare.png") as tmp:
        fig.savefig(tmp, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return c
