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
from .evaluate import Matching, exclude_events, match_events, score_events, scored_frames, summarize
from .events import EventTable
from .io import movie_stem, table_stem
from .jobs import METHODS, method_detector

__all__ = ["MethodSpec", "parse_methods", "venn_counts", "MovieResult", "Comparison", "compare_movies",
           "comparison_rows", "comparison_figure", "venn_totals", "compare_files", "BUILTIN_METHODS"]

BUILTIN_METHODS = METHODS  # the detectors exodf runs itself
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
            where = item.split("=", 1)[1].strip()
            if not where:
                raise ExodfError("--methods: exoj-export= needs a path: ExoJ's exported list, or a folder of them")
            out.append(MethodSpec("exoj", Path(where).expanduser()))
        elif item in BUILTIN_METHODS:
            out.append(MethodSpec(item))
        else:
            raise ExodfError(f"--methods: unknown method {item!r}; choose from {', '.join(BUILTIN_METHODS)} "
                             "or exoj-export=FILE_OR_FOLDER")
    names = [m.name for m in out]
    if not out or len(set(names)) != len(names):
        raise ExodfError(f"--methods {spec!r}: give at least one method, each once (one exoj-export=)")
    return out


def venn_counts(matchings: dict[str, Matching], max_distance: float = 4.5, dt_min: int = -2,
                dt_max: int = 5) -> dict[str, dict[str, int]]:
    """Overlap counts between methods for one movie (see the module docstring).

    Returns ``{"tp": {...}, "fn": {...}, "fp": {...}}`` keyed by ``"a&b"`` (methods in the given order): in
    ``tp`` the methods that found a ground truth, in ``fn`` those that missed it (missed by all: every
    method's name joined), in ``fp`` the methods in a merged group of false positives (one count per
    group, however many of its false positives come from one method).
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
        frames = sum(scored_frames(r.n_frames, c.exclude_edges) for r in c.movies)
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
    ax.set_ylim(0, 1.2)  # (room for the legend above the bars; no tick above 1)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score (pooled counts)")
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
    ax.set_xlabel("events, pooled over movies (a true event found by A and B counts under 'A & B')")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_title(f"Overlaps between methods (missed by all: {tot['fn'].get('&'.join(c.methods), 0)})",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2]
    for meth in c.methods:
        tr = [r.matchings[meth].n_gt / scored_frames(r.n_frames, c.exclude_edges) for r in c.movies]
        pr = [r.matchings[meth].n_pred / scored_frames(r.n_frames, c.exclude_edges) for r in c.movies]
        ax.scatter(tr, pr, label=meth)
    lim = max([0.01] + [r.matchings[m].n_pred / scored_frames(r.n_frames, c.exclude_edges)
                        for r in c.movies for m in c.methods] + [r.matchings[c.methods[0]].n_gt /
                                                                 scored_frames(r.n_frames, c.exclude_edges)
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


_WORKBOOKS = (".xlsx", ".xlsm", ".ods", ".numbers")
_WORKBOOK = "a workbook: save it as CSV (ExoJ's own export is a .csv)"


def _exocytosis_lists(folder: Path) -> tuple[list[Path], dict[Path, str]]:
    """The ExoJ exocytosis lists in ``folder``, and the tables passed over with the reason (ExoJ's tracking
    list, an empty file, a workbook, a header that is not ExoJ's); movies and other files are left out."""
    from .exoj import header_line, is_exocytosis_list, looks_like_exoj

    out, passed = [], {}
    for f in sorted(folder.iterdir()):
        if not f.is_file():
            continue
        if f.suffix.lower() in _WORKBOOKS:
            passed[f] = _WORKBOOK
        elif f.suffix.lower() in (".csv", ".txt", ".tsv", ".xls"):
            with open(f, "rb") as fh:
                raw = fh.read(4096)
            if raw.startswith(b"\xd0\xcf\x11\xe0"):  # Excel's binary .xls
                passed[f] = _WORKBOOK
            elif is_exocytosis_list(raw):
                out.append(f)
            elif not raw.strip():
                passed[f] = "empty"
            elif looks_like_exoj(raw):
                passed[f] = "ExoJ's tracking list (no Peak Frame): export the exocytosis list"
            else:
                passed[f] = f"header {header_line(raw)[:60]!r} is not ExoJ's"
    return out, passed


def find_export(export: Path, movie: Path, n_movies: int, shared_stem: bool = False) -> Path:
    """The ExoJ export of ``movie``: ``export`` itself (a file, one movie), or the exocytosis list in folder
    ``export`` named after the movie (``cell1.tif`` -> ``cell1.tif_secretions.csv``, ExoJ's default, or
    ``cell1.csv``; not ``cell10...``) or, when movies share a file name (``shared_stem``:
    ``sim/cell1/movie.tif``), after the movie's folder (``cell1.csv``)."""
    if export.is_file():
        if n_movies > 1:
            raise ExodfError(f"exoj-export={export}: one file for {n_movies} movies; give a folder of exports "
                             "named after the movies")
        return export
    if not export.is_dir():
        raise ExodfError(f"exoj-export={export}: not found; give ExoJ's exported list or a folder of them")
    files, passed = _exocytosis_lists(export)

    def candidates(files: Sequence[Path], narrow: bool = True) -> list[Path]:
        def named(word: str) -> list[Path]:  # the name starts with ``word`` as a whole word
            pat = re.compile(rf"^{re.escape(word)}([^A-Za-z0-9]|$)", re.IGNORECASE)
            return [f for f in files if pat.match(f.name)]

        def inside(word: str) -> list[Path]:  # ``word`` anywhere in the name, as a whole word
            pat = re.compile(rf"(^|[^A-Za-z0-9]){re.escape(word)}([^A-Za-z0-9]|$)", re.IGNORECASE)
            return [f for f in files if pat.search(f.name)]

        tries = ([inside(folder)] if folder else []) if shared_stem else [named(stem)]
        if not shared_stem and folder and not tries[0]:
            tries.append(inside(folder))
        cands = next((c for c in tries if c), [])
        if narrow and len(cands) > 1 and not shared_stem:  # control.tif: control.csv, not control_2.csv
            exact = [f for f in cands if table_stem(f).lower() == stem.lower()]
            cands = exact if len(exact) == 1 else cands
        return cands

    stem, folder = movie_stem(movie), movie.resolve().parent.name
    cands = candidates(files)
    if len(cands) != 1:
        rule = f"named after its folder {folder!r}" if shared_stem else f"named {stem}*"
        why = "; ".join(f"{f.name}: {passed[f]}" for f in candidates(list(passed), False)) if not cands else ""
        raise ExodfError(f"exoj-export={export}: expected one ExoJ exocytosis list for {movie} ({rule}), found "
                         f"{', '.join(f.name for f in cands) if cands else 'none'} among {len(files)} ExoJ "
                         "list(s) there; " + (f"passed over {why}" if why else "name each export after its movie"))
    return cands[0]


class _Movies(Sequence[tuple[str, np.ndarray, EventTable]]):
    """(name, movie, ground truth) read when asked for: one movie in memory at a time."""

    def __init__(self, names: Sequence[str], movies: Sequence[Path], truths: Sequence[EventTable],
                 channel: Optional[int], plane: Optional[int]) -> None:
        self.names, self.movies, self.truths, self.channel, self.plane = names, movies, truths, channel, plane

    def __len__(self) -> int:
        return len(self.movies)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray, EventTable]:  # type: ignore[override]
        from .io import read_movie

        return (self.names[i], np.asarray(read_movie(self.movies[i], channel=self.channel, plane=self.plane)),
                self.truths[i])


def movie_names(movies: Sequence[Path]) -> list[str]:
    """Names that tell movies apart: the file's stem, or as many of its folders as it takes when stems
    repeat (sim/cell1/movie; a/x/movie and b/x/movie)."""
    paths = [Path(m).resolve() for m in movies]
    names = [movie_stem(p) for p in paths]
    depth = 0
    while len(set(names)) < len(names) and depth < max(len(p.parts) for p in paths):
        depth += 1
        names = ["/".join([*p.parent.parts[-depth:], movie_stem(p)]) if
                 [movie_stem(q) for q in paths].count(movie_stem(p)) > 1 else movie_stem(p) for p in paths]
    return names


def _detector(name: str, weights: Optional[Path]) -> Detector:
    return method_detector(name, weights)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4f}" if isinstance(v, float) else str(v)


OUTPUTS = ("compare.csv", "compare.json", "compare.png")


def compare_files(movies: Sequence[Path], gts: Sequence[Path], methods: Sequence[MethodSpec], out: Path,
                  exclude_edges: int = 0, weights: Optional[Path] = None,
                  progress: Optional[Callable[[str, int, int], None]] = None, *, channel: Optional[int] = None,
                  plane: Optional[int] = None, pixel_size: Optional[float] = None,
                  warn: Optional[Callable[[str], None]] = None) -> Comparison:
    """Read movies and ground truths, compare the methods, write ``out/compare.csv``, ``compare.json``
    (rows, overlaps, per-movie scores, seconds and the ExoJ export used) and ``compare.png``, together.

    Everything is checked before any detector runs: the outputs, each movie's length against
    ``exclude_edges``, one ground truth and one ExoJ export per movie. ``pixel_size``: the ground truths'
    X/Y are in µm (divided by it). ``warn`` receives doubts about units (events outside the movie).
    """
    import contextlib
    import json

    from .atomic import atomic_path, check_output, check_output_folder
    from .evaluate import units_warnings
    from .events import read_events
    from .exoj import EXPORT_UNITS_HINT, parse_exoj
    from .io import read_movie

    movies, gts, out = [Path(m) for m in movies], [Path(g) for g in gts], Path(out)
    if len(gts) != len(movies):
        raise ExodfError(f"--gt: {len(gts)} ground-truth table(s) for {len(movies)} movie(s); give one per movie "
                         "in the same order (or put ground_truth.csv beside each movie)")
    if exclude_edges < 0:
        raise ExodfError(f"--exclude-edges must be >= 0, got {exclude_edges}")
    seen: dict[Path, Path] = {}
    for m, g in zip(movies, gts):
        if g.resolve() in seen:
            raise ExodfError(f"{g}: the ground truth of both {seen[g.resolve()]} and {m}; give each movie its own "
                             "(--gt per movie, or ground_truth.csv in each movie's folder)")
        seen[g.resolve()] = m
    inputs = [*movies, *gts, weights, *(s.export for s in methods)]
    check_output_folder(out)
    for name in OUTPUTS:
        check_output(out / name, inputs)
    names = movie_names(movies)
    shapes = [tuple(read_movie(m, channel=channel, plane=plane, check_finite=False).shape) for m in movies]
    for m, shape in zip(movies, shapes):
        if shape[0] - 2 * exclude_edges <= 0:
            raise ExodfError(f"{m}: its {shape[0]} frames leave none after --exclude-edges {exclude_edges} at each "
                             "end")
    truths = [read_events(g, pixel_size) for g in gts]
    doubts = [w for g, t, shape in zip(gts, truths, shapes) for w in units_warnings(t, str(g), shape,
                                                                                     pixel_size is not None)]
    stems = [movie_stem(m) for m in movies]
    detectors: dict[str, Any] = {}
    exports: dict[str, list[str]] = {}
    for spec in methods:
        if spec.export is None:
            continue
        found = [find_export(spec.export, m, len(movies), stems.count(s) > 1) for m, s in zip(movies, stems)]
        twice = {f for f in found if found.count(f) > 1}
        if twice:
            f = sorted(twice)[0]
            who = [str(m) for m, g in zip(movies, found) if g == f]
            raise ExodfError(f"exoj-export={spec.export}: {f.name} would be the export of {' and '.join(who)}; "
                             "name each export after its own movie (or its folder)")
        detectors[spec.name] = [parse_exoj(f.read_bytes(), f) for f in found]
        exports[spec.name] = [str(f) for f in found]
        doubts += [w for f, t, shape in zip(found, detectors[spec.name], shapes)
                   for w in units_warnings(t, str(f), shape, xy_hint=EXPORT_UNITS_HINT)]
    for w in doubts:
        if warn is not None:
            warn(w)
    for spec in methods:  # the built-in detectors last: a missing export fails before the network loads
        if spec.export is None:
            detectors[spec.name] = _detector(spec.name, weights)
    detectors = {spec.name: detectors[spec.name] for spec in methods}
    c = compare_movies(_Movies(names, movies, truths, channel, plane), detectors, exclude_edges, progress)
    rows = comparison_rows(c)
    header = ["method", "n_movies", "tp", "fp", "fn", "precision", "recall", "f1", "precision_mean",
              "precision_sd", "recall_mean", "recall_sd", "f1_mean", "f1_sd", "pred_rate", "true_rate",
              "seconds_per_movie"]
    lines = [",".join(header)] + [",".join(_fmt(r[h]) for h in header) for r in rows]
    per_movie = [{"movie": r.name, "path": str(m), "ground_truth": str(g), "n_frames": r.n_frames, "venn": r.venn,
                  "methods": {meth: {**r.matchings[meth].as_dict(), "seconds": r.seconds[meth],
                                     **({"export": exports[meth][i]} if meth in exports else {})}
                              for meth in c.methods}}
                 for i, (r, m, g) in enumerate(zip(c.movies, movies, gts))]
    doc = {"exclude_edges": exclude_edges, "rule": "paper (4.5 px, -2 <= dt <= 5 frames)", "methods": rows,
           "overlaps": venn_totals(c), "movies": per_movie, "warnings": doubts}
    if "exodf" in c.methods:  # which network made the exodf column
        from .pretrained import PUBLISHED, resolve_weights, sha256_file

        used = resolve_weights(weights)
        sha = sha256_file(used)
        doc["exodf_weights"] = {"path": str(used), "sha256": sha, "published": sha == PUBLISHED.sha256}
    import matplotlib.pyplot as plt

    fig = comparison_figure(c)
    try:  # all three written first, then moved into place: an error while writing replaces none of them
        with contextlib.ExitStack() as stack:
            tmp = {name: stack.enter_context(atomic_path(out / name)) for name in OUTPUTS}
            tmp["compare.csv"].write_text("\n".join(lines) + "\n", encoding="utf-8")
            tmp["compare.json"].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
            fig.savefig(tmp["compare.png"], dpi=100, format="png")
    finally:
        plt.close(fig)
    return c
