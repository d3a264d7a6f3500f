"""The paper's matching rule on hand-made cases, and the statistics of exodf.evaluate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from exodf.evaluate import (cohens_d, edge_split, event_rate, exclude_events, match_events, mean_sd, pearson_r,
                            score_events, summarize)
from exodf.events import EventTable, read_events



def ev(*rows: tuple[float, float, float]) -> EventTable:
    a = np.array(rows, dtype=float).reshape(-1, 3)
    return EventTable(a[:, 0], a[:, 1], a[:, 2])


GT = ev((50, 50, 100))


@pytest.mark.parametrize("dt, is_tp", [(-3, False), (-2, True), (0, True), (5, True), (6, False)])
def test_time_window_bounds(dt: int, is_tp: bool) -> None:
    m = match_events(ev((51, 50, 100 + dt)), GT)
    assert (m.tp, m.fp, m.fn) == ((1, 0, 0) if is_tp else (0, 1, 1))
    assert m.pred_to_gt.tolist() == ([0] if is_tp else [-1])
    if is_tp:
        assert m.dt[0] == dt and m.distance[0] == pytest.approx(1.0)


def test_time_window_is_asymmetric() -> None:
    # a prediction 3 frames *after* the peak is TP, 3 frames *before* is not
    assert match_events(ev((50, 50, 103)), GT).tp == 1
    assert match_events(ev((50, 50, 97)), GT).tp == 0


@pytest.mark.parametrize("d, is_tp", [(4.5, True), (4.51, False), (3.0, True)])
def test_distance_bound(d: float, is_tp: bool) -> None:
    m = match_events(ev((50 + d * 0.6, 50 + d * 0.8, 100)), GT)
    assert m.tp == int(is_tp)


def test_fractional_frames_compare_as_imagej_slices() -> None:
    # 105.4 rounds to frame 105 (Δt 5, TP); 105.5 rounds to 106 (Δt 6, FP)
    assert match_events(ev((50, 50, 105.4)), GT).tp == 1
    assert match_events(ev((50, 50, 105.5)), GT).tp == 0


def test_two_ground_truths_near_one_prediction_takes_the_nearest() -> None:
    gt = ev((50, 50, 100), (53, 50, 101))
    m = match_events(ev((52, 50, 100)), gt)
    assert m.pred_to_gt.tolist() == [1]
    assert m.gt_matched.tolist() == [False, True]
    assert (m.tp, m.fp, m.fn) == (1, 0, 1)
    assert m.distance[0] == pytest.approx(1.0)


def test_nearest_among_qualifying_only() -> None:
    # the spatially nearest ground truth is out of the time window: the farther one in the window wins
    gt = ev((50, 50, 100), (53, 50, 90))
    m = match_events(ev((52, 50, 100)), gt)
    assert m.pred_to_gt.tolist() == [0]


def test_many_to_one_counts_every_prediction_and_clamps_fn() -> None:
    pred = ev((50, 50, 100), (51, 50, 102), (80, 80, 100))
    m = match_events(pred, GT)
    assert (m.tp, m.fp, m.fn, m.gt_hit) == (2, 1, 0, 1)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == 1.0
    assert m.f1 == pytest.approx(4 / 5)


def test_one_to_one_allows_one_prediction_per_ground_truth() -> None:
    pred = ev((50, 50, 100), (51, 50, 102))
    m = match_events(pred, GT, one_to_one=True)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)
    assert m.pred_to_gt.tolist() == [0, -1]  # the nearer prediction keeps the ground truth


def test_hungarian_maximises_pairs_where_greedy_would_not() -> None:
    # prediction 0 is nearest to gt 0, but gt 0 is the only option of prediction 1
    gt = ev((50, 50, 100), (54, 50, 100))
    pred = ev((51, 50, 100), (47, 50, 100))
    m = match_events(pred, gt, one_to_one=True)
    assert m.pred_to_gt.tolist() == [1, 0]
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    greedy = match_events(pred, gt)
    assert greedy.pred_to_gt.tolist() == [0, 0] and greedy.fn == 0 and greedy.gt_hit == 1


def test_empty_inputs() -> None:
    e = EventTable.empty()
    m = match_events(e, e)
    assert (m.tp, m.fp, m.fn) == (0, 0, 0)
    assert m.precision is None and m.recall is None and m.f1 is None
    m = match_events(e, GT)
    assert (m.tp, m.fp, m.fn, m.precision, m.recall, m.f1) == (0, 0, 1, None, 0.0, 0.0)
    m = match_events(GT, e)
    assert (m.tp, m.fp, m.fn, m.precision, m.recall, m.f1) == (0, 1, 0, 0.0, None, 0.0)
    assert match_events(e, e, one_to_one=True).f1 is None


def test_custom_rule_and_bad_rule() -> None:
    assert match_events(ev((56, 50, 100)), GT, max_distance=6).tp == 1
    assert match_events(ev((50, 50, 93)), GT, dt_min=-10).tp == 1
    with pytest.raises(ValueError, match="dt_min"):
        match_events(GT, GT, dt_min=3, dt_max=2)


def test_edge_and_mask_exclusion_apply_to_both_tables() -> None:
    gt = ev((10, 10, 5), (10, 10, 50), (90, 90, 50), (10, 10, 96))
    pred = ev((10, 10, 5), (10, 10, 51), (90, 90, 50), (10, 10, 97))
    mask = np.zeros((100, 100), dtype=bool)
    mask[:50, :50] = True
    m = score_events(pred, gt, n_frames=100, exclude_edges=10, mask=mask)
    assert (m.n_pred, m.n_gt, m.tp, m.fp, m.fn) == (1, 1, 1, 0, 0)
    assert len(exclude_events(gt, 100, 4)) == 3  # frame 96 is one of the last 4 frames (96..99)
    with pytest.raises(ValueError, match="n_frames"):
        exclude_events(gt, None, 4)
    # another movie's mask (smaller) dropped every event in silence; a 3D mask was a numpy IndexError
    with pytest.warns(UserWarning, match=r"1 of 4 events lie beyond the 20 x 20 px mask \(e.g. x 90, y 90\)"):
        assert len(exclude_events(gt, mask=np.ones((20, 20), bool))) == 3
    with pytest.raises(ValueError, match=r"must be 2D \(Y, X\) like a frame, got shape \(2, 100, 100\)"):
        exclude_events(gt, mask=np.ones((2, 100, 100), bool))


def test_pairs_split_by_the_edge_are_named(tmp_path: Path) -> None:
    """The demo's one false positive was a detection a frame inside the scored range whose true event lay a
    frame outside: the paper's rule scores each table's edges apart; edge_split counts such pairs."""
    from typer.testing import CliRunner

    from exodf.cli import app
    from exodf.events import write_events

    gt = ev((10, 10, 24), (50, 50, 100), (80, 80, 174), (30, 30, 10))
    pred = ev((10.5, 10, 25), (50, 50, 101), (80.2, 80, 175), (60, 60, 30))  # the last: a plain FP
    m = score_events(pred, gt, 200, 25)
    assert (m.tp, m.fp, m.fn) == (1, 2, 1)
    assert edge_split(pred, gt, 200, 25) == (1, 1)  # (10, 10): FP by the edge; (80, 80): FN by the edge
    assert edge_split(pred, gt, 200, 0) == (0, 0) and edge_split(pred, ev(), 200, 25) == (0, 0)
    mask = np.ones((100, 100), bool)
    mask[:20, :20] = False  # (10, 10) outside the cell: not scored at all, so not split either
    assert edge_split(pred, gt, 200, 25, mask) == (0, 1)
    only_fp = np.zeros((100, 100), bool)
    only_fp[55:65, 55:65] = True  # the plain FP's cell holds no true event: an IndexError before
    assert edge_split(pred, gt, 200, 25, only_fp) == (0, 0)
    write_events(pred, tmp_path / "p.csv")
    write_events(gt, tmp_path / "g.csv")
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "p.csv"), str(tmp_path / "g.csv"), "--frames", "200",
                                 "--exclude-edges", "25"])
    assert r.exit_code == 0 and "TP 1 FP 2 FN 1" in r.output and "(1 FP and 1 FN: a detection and its true " \
        "event on either side of the excluded edge frames" in r.output, r.output
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "p.csv"), str(tmp_path / "g.csv"), "--frames", "200",
                                 "--exclude-edges", "25", "--json"])
    row = __import__("json").loads(r.output)["movies"][0]
    assert (row["edge_split_fp"], row["edge_split_fn"]) == (1, 1)


def test_reference_movie_matches_the_published_figures(reference_dir: Path) -> None:
    # the original ExoDeepFinder's events on the reference movie (see the reference README)
    pred = read_events(reference_dir / "original_events.xml")
    gt = read_events(reference_dir / "ground_truth.csv")
    full = score_events(pred, gt)
    assert (full.tp, full.fp, full.fn) == (29, 38, 3)
    m = score_events(pred, gt, n_frames=200, exclude_edges=25)
    assert (m.tp, m.fp, m.fn) == (19, 9, 2)
    assert round(m.precision, 2) == 0.68 and round(m.recall, 2) == 0.90 and round(m.f1, 2) == 0.78


def test_summarize_pools_counts_and_averages_defined_scores() -> None:
    a = match_events(ev((50, 50, 100)), GT)                     # P 1, R 1
    b = match_events(ev((50, 50, 100), (90, 90, 9)), GT)        # P 0.5, R 1
    c = match_events(EventTable.empty(), EventTable.empty())  # undefined: left out
    s = summarize([a, b, c])
    assert (s.n_movies, s.tp, s.fp, s.fn) == (3, 2, 1, 0)
    assert s.precision == pytest.approx(2 / 3)
    assert s.precision_mean == pytest.approx(0.75)
    assert s.precision_sd == pytest.approx(math.sqrt(0.125))
    assert s.recall_mean == 1.0 and s.recall_sd == 0.0
    assert s.as_dict()["f1"] == pytest.approx(0.8)
    assert mean_sd([None, 2.0]) == (2.0, None, 1)


def test_event_rate() -> None:
    r = event_rate(ev((1, 1, 1), (2, 2, 2), (3, 3, 3)), n_frames=150, area_px=10000, pixel_size_um=0.16,
                   frame_interval_s=0.5)
    assert r.per_frame == pytest.approx(0.02)
    # 3 events / (10000 * 0.0256 µm²) / 75 s
    assert r.per_um2_per_s == pytest.approx(3 / 256 / 75)
    assert event_rate(GT, 10, 100).per_um2_per_s is None


def test_cohens_d_known_examples() -> None:
    before, after = [1, 2, 3, 4, 5], [2, 4, 3, 6, 7]
    # differences 1,2,0,2,2: mean 1.4, SD sqrt(0.8)
    assert cohens_d(before, after) == pytest.approx(1.4 / math.sqrt(0.8))
    # unpaired: means 3 and 4.4, variances 2.5 and 4.3: pooled SD sqrt(3.4)
    assert cohens_d(before, after, paired=False) == pytest.approx(1.4 / math.sqrt(3.4))
    assert math.isnan(cohens_d([1, 2], [2, 3]))  # constant difference: SD 0
    # the same change in floating point leaves an SD of ~1e-17: still no spread (it gave d = -2.5e15)
    before = np.array([1 / 40, 4 / 40])
    assert float((before - 1 / 40 - before).std(ddof=1)) > 0  # the rounding this case is about
    assert math.isnan(cohens_d(before, before - 1 / 40))
    assert math.isnan(cohens_d([0.3, 0.3], [0.3, 0.3], paired=False))
    with pytest.raises(ValueError, match="equal lengths"):
        cohens_d([1, 2], [1, 2, 3])


def test_pearson_r() -> None:
    assert pearson_r([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson_r([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson_r([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(pearson_r([1, 1, 1], [1, 2, 3]))


def test_units_warnings_and_mismatch() -> None:
    from exodf.evaluate import units_mismatch, units_warnings

    rng = np.random.default_rng(0)
    px = EventTable(rng.uniform(5, 95, 20), rng.uniform(5, 95, 20), rng.uniform(0, 39, 20))
    um = EventTable(px.x * 0.16, px.y * 0.16, px.frame)  # the same events written with --pixel-size 0.16
    shape = (40, 100, 100)
    assert units_warnings(px, "a.csv", shape) == [] and units_mismatch(px, px) is None
    # µm read as pixels stay inside the movie, in its top-left corner, and the two tables' ranges differ 6x
    (corner,) = units_warnings(um, "um.csv", shape)
    assert "all 20 events of um.csv lie in the top-left quarter" in corner
    assert units_warnings(um, "um.csv", shape, calibrated=True) == []
    # a table whose unit no option changes (ExoJ's export, in pixels) gets its own advice
    (corner,) = units_warnings(um, "exoj.csv", shape, xy_hint="ExoJ writes pixels: this movie's export?")
    assert corner.endswith("as calibrated X/Y (e.g. µm) read as pixels would: ExoJ writes pixels: this movie's "
                           "export?") and "--pixel-size" not in corner
    msg = units_mismatch(um, px, "um.csv", "gt.csv")
    assert msg is not None and "um.csv reach" in msg and "different units" in msg
    # pixels divided by a pixel size (--calibrated on a pixel table) land outside the movie
    over = EventTable(px.x / 0.16, px.y / 0.16, px.frame)
    (w,) = units_warnings(over, "gt.csv", shape, calibrated=True)
    assert "of gt.csv lie outside the movie's 100 x 100 pixels" in w and "leave out --pixel-size" in w
    late = EventTable([10.0], [10.0], [80.0])
    assert "outside the movie's 40 frames" in units_warnings(late, "x.csv", shape)[0]
    assert units_mismatch(um.select(np.arange(20) < 2), px) is None  # too few events to tell
    few = um.select(np.arange(20) < 4)  # a short movie's 4 detections in µm: already told
    assert units_mismatch(few, px) is not None and "all 4 events" in units_warnings(few, "um.csv", shape)[0]
