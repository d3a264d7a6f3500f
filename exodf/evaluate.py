"""Scoring detections against ground truth, and the statistics of the ExoDeepFinder paper.

The paper's rule
----------------
A prediction is a true positive (TP) if a ground-truth event lies within ``max_distance`` (4.5 px) of it
and ``dt_min <= Δt <= dt_max`` (−2 ≤ Δt ≤ 5 frames), where ``Δt = prediction frame − ground-truth frame``
(positive: the prediction comes after the ground truth's peak). When several ground truths qualify, the
prediction is assigned to the spatially nearest one. Every other prediction is a false positive (FP), and
``FN = N − TP`` with N the number of ground-truth events, exactly as the paper defines it.

The rule is many-to-one: two predictions may both be TP on the same ground truth. FN is then clamped at 0
(so recall never exceeds 1); :attr:`Matching.gt_hit` counts the distinct ground truths that were hit.
``one_to_one=True`` instead pairs predictions and ground truths with the Hungarian algorithm (at most one
prediction per ground truth, as many pairs as possible, smallest total distance among those), so that
``FN = N − TP`` counts exactly the ground truths left unmatched.

Frames are compared as ImageJ reports them: each event's frame is rounded to the nearest frame (a
mean-shift centroid at 12.6 is frame 13), so a table scores the same before and after a round trip
through an ImageJ Results file. Distances use the sub-pixel x, y.

Precision, recall and F1 are ``None`` ("undefined") when their denominator is 0; F1 is
``2 TP / (2 TP + FP + FN)``, undefined only when TP = FP = FN = 0.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .events import EventTable

__all__ = ["Rule", "Matching", "match_events", "score_events", "exclude_events", "edge_split", "Summary",
           "summarize", "Rate", "event_rate", "cohens_d", "pearson_r", "mean_sd", "units_warnings", "units_mismatch"]


@dataclass(frozen=True)
class Rule:
    """The matching rule (defaults: the paper's).

    Attributes
    ----------
    max_distance
        Largest distance in pixels between a prediction and its ground truth.
    dt_min, dt_max
        Allowed range of ``prediction frame − ground-truth frame``, inclusive.
    one_to_one
        Hungarian one-to-one matching instead of the paper's many-to-one rule.
    """

    max_distance: float = 4.5
    dt_min: int = -2
    dt_max: int = 5
    one_to_one: bool = False

    def __post_init__(self) -> None:
        if not self.max_distance >= 0:
            raise ValueError(f"Rule.max_distance must be >= 0, got {self.max_distance}")
        if self.dt_min > self.dt_max:
            raise ValueError(f"Rule.dt_min ({self.dt_min}) must be <= Rule.dt_max ({self.dt_max})")


_EPS = 1e-9  # distances equal to max_distance up to rounding still match


def _ratio(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


class _Scores:
    """Precision, recall and F1 from ``tp``, ``fp`` and ``fn`` (``None`` where the denominator is 0)."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)


@dataclass(frozen=True, eq=False)
class Matching(_Scores):
    """The outcome of matching one movie's predictions with its ground truth.

    Attributes
    ----------
    tp, fp, fn
        Counts as the rule defines them (see the module docstring).
    pred_tp : ndarray of bool
        Per prediction: is it a TP.
    gt_matched : ndarray of bool
        Per ground truth: did at least one prediction match it.
    pred_to_gt : ndarray of int
        Per prediction: index of its ground truth, or −1.
    distance, dt : ndarray of float
        Per prediction: distance (px) and Δt (frames) to its ground truth, NaN when unmatched.
    pred, gt
        The tables that were matched (after any exclusion).
    """

    tp: int
    fp: int
    fn: int
    pred_tp: np.ndarray
    gt_matched: np.ndarray
    pred_to_gt: np.ndarray
    distance: np.ndarray
    dt: np.ndarray
    pred: EventTable = field(repr=False)
    gt: EventTable = field(repr=False)

    @property
    def n_pred(self) -> int:
        return int(self.pred_tp.shape[0])

    @property
    def n_gt(self) -> int:
        return int(self.gt_matched.shape[0])

    @property
    def gt_hit(self) -> int:
        """Number of distinct ground-truth events matched by at least one prediction."""
        return int(self.gt_matched.sum())

    def as_dict(self) -> dict[str, float | int | None]:
        """Counts and scores (``None`` where undefined), for JSON."""
        return {"n_pred": self.n_pred, "n_gt": self.n_gt, "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "gt_hit": self.gt_hit, "precision": self.precision, "recall": self.recall, "f1": self.f1}


def _nearest_frame(frame: np.ndarray) -> np.ndarray:
    return np.floor(frame + 0.5)


def _candidates(pred: EventTable, gt: EventTable, rule: Rule) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """All (prediction, ground truth) pairs that satisfy the rule: indices, distance and Δt."""
    if len(pred) == 0 or len(gt) == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0), np.zeros(0)
    from scipy.spatial import cKDTree

    tree = cKDTree(np.stack([gt.x, gt.y], axis=1))
    near = tree.query_ball_point(np.stack([pred.x, pred.y], axis=1), r=rule.max_distance + _EPS)
    pi = np.array([i for i, js in enumerate(near) for _ in js], dtype=np.int64)
    gi = np.array([j for js in near for j in js], dtype=np.int64)
    if pi.size == 0:
        return pi, gi, np.zeros(0), np.zeros(0)
    dist = np.hypot(pred.x[pi] - gt.x[gi], pred.y[pi] - gt.y[gi])
    dt = _nearest_frame(pred.frame)[pi] - _nearest_frame(gt.frame)[gi]
    ok = (dist <= rule.max_distance + _EPS) & (dt >= rule.dt_min) & (dt <= rule.dt_max)
    return pi[ok], gi[ok], dist[ok], dt[ok]


def _assign_nearest(n_pred: int, pi: np.ndarray, gi: np.ndarray, dist: np.ndarray) -> np.ndarray:
    to_gt = np.full(n_pred, -1, dtype=np.int64)
    best = np.full(n_pred, np.inf)
    for p, g, d in zip(pi, gi, dist):
        if d < best[p] or (d == best[p] and g < to_gt[p]):
            best[p], to_gt[p] = d, g
    return to_gt


def _assign_hungarian(n_pred: int, n_gt: int, pi: np.ndarray, gi: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Maximum-cardinality, then minimum-distance, one-to-one assignment, solved per connected group."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    to_gt = np.full(n_pred, -1, dtype=np.int64)
    if pi.size == 0:
        return to_gt
    graph = coo_matrix((np.ones(pi.size), (pi, n_pred + gi)), shape=(n_pred + n_gt,) * 2)
    _, comp = connected_components(graph, directed=False)
    big = 1.0 + 2.0 * float(dist.max(initial=0.0)) * max(1, min(n_pred, n_gt))
    for c in np.unique(comp[pi]):
        sel = comp[pi] == c
        ps, gs = np.unique(pi[sel]), np.unique(gi[sel])
        cost = np.full((ps.size, gs.size), big)
        cost[np.searchsorted(ps, pi[sel]), np.searchsorted(gs, gi[sel])] = dist[sel]
        rows, cols = linear_sum_assignment(cost)
        good = cost[rows, cols] < big
        to_gt[ps[rows[good]]] = gs[cols[good]]
    return to_gt


def match_events(pred: EventTable, gt: EventTable, *, max_distance: float = 4.5, dt_min: int = -2,
                 dt_max: int = 5, one_to_one: bool = False) -> Matching:
    """Match predictions to ground truth with the paper's rule (or one-to-one).

    Parameters
    ----------
    pred, gt
        Predicted and ground-truth events of one movie.
    max_distance, dt_min, dt_max, one_to_one
        See :class:`Rule`.

    Returns
    -------
    Matching
    """
    rule = Rule(max_distance, dt_min, dt_max, one_to_one)
    pi, gi, dist, dt = _candidates(pred, gt, rule)
    if one_to_one:
        to_gt = _assign_hungarian(len(pred), len(gt), pi, gi, dist)
    else:
        to_gt = _assign_nearest(len(pred), pi, gi, dist)
    pred_tp = to_gt >= 0
    gt_matched = np.zeros(len(gt), dtype=bool)
    gt_matched[to_gt[pred_tp]] = True
    d_out = np.full(len(pred), np.nan)
    t_out = np.full(len(pred), np.nan)
    if pred_tp.any():
        idx = np.flatnonzero(pred_tp)
        d_out[idx] = np.hypot(pred.x[idx] - gt.x[to_gt[idx]], pred.y[idx] - gt.y[to_gt[idx]])
        t_out[idx] = _nearest_frame(pred.frame[idx]) - _nearest_frame(gt.frame[to_gt[idx]])
    tp = int(pred_tp.sum())
    return Matching(tp=tp, fp=len(pred) - tp, fn=max(0, len(gt) - tp), pred_tp=pred_tp, gt_matched=gt_matched,
                    pred_to_gt=to_gt, distance=d_out, dt=t_out, pred=pred, gt=gt)


def scored_frames(n_frames: int, exclude_edges: int = 0) -> int:
    """The frames an event rate counts: those left after ``exclude_edges`` at each end (at least 1)."""
    return max(1, n_frames - 2 * exclude_edges)


def beyond_mask(table: EventTable, mask: np.ndarray) -> np.ndarray:
    """Which events' rounded positions fall outside a (Y, X) mask's extent."""
    h, w = np.shape(mask)
    return (table.x < -0.5) | (table.y < -0.5) | (table.x >= w - 0.5) | (table.y >= h - 0.5)


def _in_scored_frames(table: EventTable, n_frames: int, exclude_edges: int) -> np.ndarray:
    """Which events' nearest frames lie outside the first/last ``exclude_edges`` frames."""
    f = _nearest_frame(table.frame)
    return (f >= exclude_edges) & (f < n_frames - exclude_edges)


def exclude_events(table: EventTable, n_frames: int | None = None, exclude_edges: int = 0,
                   mask: np.ndarray | None = None) -> EventTable:
    """Drop events in the first/last ``exclude_edges`` frames (by nearest frame) or outside ``mask``.

    ``mask`` is a 2D bool array (True inside the cell) of the movie's frame size, looked up at the rounded
    position. Events beyond the mask's extent count as outside it, with a warning: the mask is probably not
    the movie's (``warnings.catch_warnings`` silences it).
    """
    if exclude_edges < 0:
        raise ValueError(f"exclude_events: exclude_edges must be >= 0, got {exclude_edges}")
    keep = np.ones(len(table), dtype=bool)
    if exclude_edges:
        if n_frames is None:
            raise ValueError("exclude_events: exclude_edges needs n_frames (the movie's length)")
        keep &= _in_scored_frames(table, n_frames, exclude_edges)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.ndim != 2:
            raise ValueError(f"exclude_events: the mask must be 2D (Y, X) like a frame, got shape {m.shape}")
        beyond = beyond_mask(table, m)
        if beyond.any():
            k = int(np.argmax(beyond))
            warnings.warn(f"exclude_events: {int(beyond.sum())} of {len(table)} events lie beyond the "
                          f"{m.shape[1]} x {m.shape[0]} px mask (e.g. x {table.x[k]:g}, y {table.y[k]:g}) and count as "
                          "outside it: is it the mask of the movie the events come from?", stacklevel=2)
        r = np.floor(table.y + 0.5).astype(np.int64)
        c = np.floor(table.x + 0.5).astype(np.int64)
        inside = (r >= 0) & (r < m.shape[0]) & (c >= 0) & (c < m.shape[1])
        hit = np.zeros(len(table), dtype=bool)
        hit[inside] = m[r[inside], c[inside]]
        keep &= hit
    return table.select(keep)


def score_events(pred: EventTable, gt: EventTable, n_frames: int | None = None, exclude_edges: int = 0,
                 mask: np.ndarray | None = None, **rule: float | int | bool) -> Matching:
    """Apply the same exclusions to both tables, then :func:`match_events` (``rule``: its keywords)."""
    return match_events(exclude_events(pred, n_frames, exclude_edges, mask),
                        exclude_events(gt, n_frames, exclude_edges, mask), **rule)  # type: ignore[arg-type]


def edge_split(pred: EventTable, gt: EventTable, n_frames: int, exclude_edges: int,
               mask: np.ndarray | None = None, **rule: float | int | bool) -> tuple[int, int]:
    """How many false positives and false negatives of :func:`score_events` are pairs split by the edge.

    The paper's rule drops each table's events in the first/last ``exclude_edges`` frames on its own, so a
    detection a frame or two inside the scored frames whose true event lies just outside counts as a false
    positive, and the reverse as a false negative. Returns (such false positives, such false negatives):
    the scored detections and true events left unmatched that match across the edge when no frame is left
    out.
    """
    if not exclude_edges or not len(pred) or not len(gt):
        return 0, 0
    with warnings.catch_warnings():  # (score_events has said it about the mask)
        warnings.simplefilter("ignore")
        pred, gt = exclude_events(pred, mask=mask), exclude_events(gt, mask=mask)
    if not len(pred) or not len(gt):  # (the mask may leave one table empty)
        return 0, 0
    full = match_events(pred, gt, **rule)  # type: ignore[arg-type]
    sp, sg = _in_scored_frames(pred, n_frames, exclude_edges), _in_scored_frames(gt, n_frames, exclude_edges)
    inner = match_events(pred.select(sp), gt.select(sg), **rule)  # type: ignore[arg-type]
    fp = np.zeros(len(pred), dtype=bool)
    fp[np.flatnonzero(sp)[~inner.pred_tp]] = True  # scored detections left unmatched...
    fp &= full.pred_tp & ~sg[np.maximum(full.pred_to_gt, 0)]  # ...that match a true event beyond the edge
    fn = np.zeros(len(gt), dtype=bool)
    fn[np.flatnonzero(sg)[~inner.gt_matched]] = True  # scored true events left unmatched...
    hit = np.zeros(len(gt), dtype=bool)
    hit[full.pred_to_gt[full.pred_tp & ~sp]] = True  # ...that a detection beyond the edge matches
    return int(fp.sum()), int((fn & hit).sum())


# ---------------------------------------------------------------------------------------------------
# statistics over movies
# ---------------------------------------------------------------------------------------------------
def mean_sd(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample SD (ddof 1) of the defined values, and how many there were."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return None, None, 0
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None), int(v.size)


@dataclass(frozen=True)
class Summary(_Scores):
    """Scores over several movies: per-movie mean ± SD (the paper's Table 1) and pooled counts."""

    n_movies: int
    tp: int
    fp: int
    fn: int
    precision_mean: float | None
    precision_sd: float | None
    recall_mean: float | None
    recall_sd: float | None
    f1_mean: float | None
    f1_sd: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        d: dict[str, float | int | None] = {k: getattr(self, k) for k in (
            "n_movies", "tp", "fp", "fn", "precision", "recall", "f1", "precision_mean", "precision_sd",
            "recall_mean", "recall_sd", "f1_mean", "f1_sd")}
        return d


def summarize(matchings: Sequence[Matching]) -> Summary:
    """Pool several movies' matchings; undefined per-movie scores are left out of the mean ± SD."""
    pm, ps, _ = mean_sd(m.precision for m in matchings)
    rm, rs, _ = mean_sd(m.recall for m in matchings)
    fm, fs, _ = mean_sd(m.f1 for m in matchings)
    return Summary(len(matchings), sum(m.tp for m in matchings), sum(m.fp for m in matchings),
                   sum(m.fn for m in matchings), pm, ps, rm, rs, fm, fs)


@dataclass(frozen=True)
class Rate:
    """Exocytosis rate of one movie: per frame, and per µm² per second when calibrated."""

    n_events: int
    n_frames: int
    area_px: float
    per_frame: float
    per_um2_per_s: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"n_events": self.n_events, "n_frames": self.n_frames, "area_px": self.area_px,
                "per_frame": self.per_frame, "per_um2_per_s": self.per_um2_per_s}


def event_rate(table: EventTable, n_frames: int, area_px: float, pixel_size_um: float | None = None,
               frame_interval_s: float | None = None) -> Rate:
    """Events per frame, and per µm² per s given the pixel size (µm) and frame interval (s).

    ``n_frames`` and ``area_px`` describe the region the events were counted in (after any exclusion:
    e.g. ``n_frames − 2·exclude_edges`` frames and the mask's pixel count).
    """
    if n_frames <= 0:
        raise ValueError(f"event_rate: n_frames must be > 0, got {n_frames}")
    if not area_px > 0:
        raise ValueError(f"event_rate: area_px must be > 0, got {area_px}")
    per_um2_s = None
    if pixel_size_um is not None and frame_interval_s is not None:
        per_um2_s = len(table) / (area_px * pixel_size_um ** 2) / (n_frames * frame_interval_s)
    return Rate(len(table), int(n_frames), float(area_px), len(table) / n_frames, per_um2_s)


def cohens_d(before: Sequence[float], after: Sequence[float], paired: bool = True) -> float:
    """Cohen's d of ``after − before``.

    Paired (the same cells before and after a treatment): ``d_z = mean(diff) / SD(diff)``. Unpaired: the
    difference of means over the pooled SD. SDs are sample SDs (ddof 1). NaN when the SD is 0 or there are
    fewer than 2 values.
    """
    a = np.asarray(before, dtype=np.float64)
    b = np.asarray(after, dtype=np.float64)
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"cohens_d: paired samples need equal lengths, got {a.size} and {b.size}")
        diff = b - a
        if diff.size < 2:
            return math.nan
        sd = float(diff.std(ddof=1))
        # an SD at rounding level (every cell changed by the same 0.025) is 0: d would be ~1e15
        return float(diff.mean()) / sd if sd > _ROUNDING * float(np.abs(diff).max()) else math.nan
    if a.size < 2 or b.size < 2:
        return math.nan
    pooled = math.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2))
    scale = float(max(np.abs(a).max(), np.abs(b).max()))
    return float(b.mean() - a.mean()) / pooled if pooled > _ROUNDING * scale else math.nan


_ROUNDING = 1e-12  # relative size of a standard deviation that is floating-point rounding, not spread


def pearson_r(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of ``x`` and ``y`` (e.g. predicted vs true rates over movies); NaN if undefined."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"pearson_r: x and y differ in length ({a.size} and {b.size})")
    if a.size < 2:
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    den = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    return float((da * db).sum()) / den if den > 0 else math.nan


def crowds_top_left(table: EventTable, shape: tuple[int, int, int]) -> bool:
    """Whether all of at least 3 events lie in the top-left quarter of a (T, Y, X) movie, as a table in µm
    read as pixels would (0.16 µm pixels: within a sixth of the frame). Events spread over a cell land there
    by chance with odds of about 1 in 16 each: 3 of them in 4,000."""
    return len(table) >= 3 and bool(np.max(table.x) < shape[2] / 4 and np.max(table.y) < shape[1] / 4)


def units_warnings(table: EventTable, name: str, shape: tuple[int, int, int] | None,
                   calibrated: bool = False, xy_hint: str | None = None) -> list[str]:
    """Why ``table`` may not be in the movie's pixels and frames: events outside a (T, Y, X) movie.

    An ImageJ Results table does not say whether its X/Y are pixels or calibrated units (µm); read in the
    wrong unit, events land outside the movie, or (µm read as pixels) crowd into its top-left corner; see
    also :func:`units_mismatch`. One message per problem, with the option that fixes it (``xy_hint``
    instead, for tables whose unit no option changes, e.g. ExoJ's exports).
    """
    if shape is None or len(table) == 0:
        return []
    t, h, w = shape
    out_xy = int(np.sum((table.x < -1.5) | (table.y < -1.5) | (table.x > w + 0.5) | (table.y > h + 0.5)))
    out_t = int(np.sum((table.frame < -1.5) | (table.frame > t + 0.5)))
    msgs = []
    if out_xy:
        hint = xy_hint or ("is it in pixels? then leave out --pixel-size/--calibrated" if calibrated else
                           "are its X/Y calibrated (e.g. µm)? then give the pixel size (--pixel-size, with "
                           "--calibrated for exodf evaluate)")
        msgs.append(f"{out_xy} of the {len(table)} events of {name} lie outside the movie's {w} x {h} pixels: "
                    f"{hint}")
    elif not calibrated and crowds_top_left(table, shape):
        msgs.append(f"all {len(table)} events of {name} lie in the top-left quarter of the movie's {w} x {h} "
                    "pixels, as calibrated X/Y (e.g. µm) read as pixels would: "
                    + (xy_hint or "if they are calibrated, give the pixel size (--pixel-size)"))
    if out_t:
        msgs.append(f"{out_t} of the {len(table)} events of {name} lie outside the movie's {t} frames "
                    "(Slice is 1-based in ImageJ tables): is it the table of this movie?")
    return msgs


def units_mismatch(pred: EventTable, gt: EventTable, pred_name: str = "the predictions",
                   gt_name: str = "the ground truth", min_events: int = 3, factor: float = 3.0) -> str | None:
    """A message when the two tables' X/Y ranges differ by more than ``factor`` (µm vs pixels?), else None.

    Both tables cover the same cells, so their coordinates reach about as far; a calibrated table read
    as pixels (or the reverse) reaches ``pixel size`` times as far (0.16 µm: 6 times). Needs ``min_events``
    in each (3 events spread over a cell all within a third of its reach: odds of about 1 in 700).
    """
    if len(pred) < min_events or len(gt) < min_events:
        return None
    reach_p = float(max(np.max(pred.x), np.max(pred.y)))
    reach_g = float(max(np.max(gt.x), np.max(gt.y)))
    if min(reach_p, reach_g) <= 0 or max(reach_p, reach_g) / min(reach_p, reach_g) <= factor:
        return None
    return (f"the X/Y of {pred_name} reach {reach_p:.4g} and those of {gt_name} {reach_g:.4g}: the tables look "
            "like different units (one calibrated, e.g. in µm, one in pixels). Both are read in the same unit "
            "(pixels, or µm with --calibrated --pixel-size): write both in one unit (exodf detect without "
            "--pixel-size writes pixels)")
