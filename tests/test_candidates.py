"""Candidate tiling: the network only around sudden brightenings, checked against the whole-volume pass."""

from __future__ import annotations

import numpy as np
import pytest

from exodf.candidates import (CELL, FALLBACK, CandidateConfig, brightening_scores,
                              candidate_boxes, work_fraction)
from exodf.detect import DetectConfig, collect_segmentation, detect_events
from exodf.evaluate import score_events
from exodf.normalize import normalize_frames
from exodf.predict import InferenceConfig, NormalizedFrames, predict_probabilities


def _puff_movie(t: int = 40, h: int = 50, w: int = 62, at: tuple[int, int, int] = (20, 30, 17)) -> np.ndarray:
    rng = np.random.default_rng(1)
    movie = rng.normal(100, 3, (t, h, w))
    yy, xx = np.mgrid[:h, :w]
    t0, y0, x0 = at
    for k, amp in enumerate((80, 40, 20)):  # flashes up, decays over 3 frames
        movie[t0 + k] += amp * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * 1.5 ** 2))
    return movie.astype(np.uint16)


def test_brightening_marks_the_puff_only() -> None:
    movie = _puff_movie()
    z = np.stack([s for _, _, _, s in brightening_scores(movie)])
    assert z[20, 30, 17] > 20  # the rise frame
    assert z[21:].max() < CandidateConfig().threshold  # the decay is no rise
    assert (z[1:20] > CandidateConfig().threshold).sum() == 0  # noise alone never reaches the threshold
    assert not z[0].any()  # no history for the first frame


def test_brightening_blocks_carry_the_history_across(monkeypatch: pytest.MonkeyPatch) -> None:
    import exodf.candidates as cand

    movie = _puff_movie()
    whole = [z for _, _, _, z in brightening_scores(movie)]
    monkeypatch.setattr(cand, "BLOCK", 3)  # frames 20 (the rise) and its history fall in different blocks
    for (t, lo, hi, z), ref in zip(brightening_scores(movie), whole):
        np.testing.assert_array_equal(z, ref)
    assert t == len(movie) - 1


def test_boxes_cover_the_puff_and_the_first_frames() -> None:
    movie = _puff_movie()
    cfg = CandidateConfig()
    boxes, lo, hi = candidate_boxes(movie, cfg)
    cover = np.zeros((40, 52, 64), dtype=int)  # the movie padded to multiples of 4
    for b in boxes:
        assert b.y0 % CELL == 0 and b.x0 % CELL == 0 and b.y1 % CELL == 0 and b.x1 % CELL == 0
        cover[b.t0:b.t1, b.y0:b.y1, b.x0:b.x1] += b.keep(slice(b.t0, b.t1), slice(b.y0, b.y1), slice(b.x0, b.x1))
    assert cover.max() == 1  # no voxel belongs to two boxes
    assert cover[: cfg.after + 1].all()  # the first frames, whole
    # the puff: from a frame before the rise to `after` frames after it, `margin` px around it
    m = cfg.margin
    assert cover[20 - cfg.before: 21 + cfg.after, 30 - m: 31 + m, 17 - m: 18 + m].all()
    assert not cover[21 + cfg.after:].any() and not cover[cfg.after + 1: 19].any()  # nothing else
    np.testing.assert_array_equal(lo, [np.percentile(f.astype(np.float32), 1) for f in movie])
    np.testing.assert_array_equal(hi, [np.percentile(f.astype(np.float32), 99) for f in movie])


@pytest.mark.parametrize("shape, hot", [((6, 50, 62), False), ((3, 3, 2), False), ((6, 50, 62), True)])
def test_crops_with_the_brightening_ranges_equal_the_normalised_padded_movie(shape: tuple[int, int, int],
                                                                             hot: bool) -> None:
    movie = np.random.default_rng(2).integers(0, 4000, shape).astype(np.uint16)
    movie[2] = 7  # a flat frame normalises to 0
    outliers = None
    if hot:  # hot pixels, one in the mirrored last rows: left out of the ranges and clipped, in every crop
        outliers = np.zeros(shape[1:], bool)
        outliers[[4, 48, 49], [6, 61, 30]] = True
        movie[:, outliers] = 65535
    _, h, w = shape
    padded = (-h % CELL, -w % CELL)
    mode = "reflect" if h > padded[0] and w > padded[1] else "edge"
    want = np.pad(normalize_frames(movie, outliers=outliers), ((0, 0), (0, padded[0]), (0, padded[1])), mode=mode)
    boxes, lo, hi = candidate_boxes(movie, outliers=outliers)
    frames = NormalizedFrames(movie, lo, hi, outliers)  # as the boxes read them: ranges from the brightening pass
    assert frames.shape == want.shape
    _, hp, wp = want.shape
    for ys, xs in [(slice(0, hp), slice(0, wp)), (slice(hp - 4, hp), slice(0, 4)),
                   (slice(0, min(hp, 8)), slice(wp - 4, wp))]:
        np.testing.assert_array_equal(frames[slice(1, shape[0]), ys, xs], want[1:, ys, xs])
        np.testing.assert_array_equal(NormalizedFrames(movie, outliers=outliers)[slice(1, shape[0]), ys, xs],
                                      want[1:, ys, xs])


def test_collect_segmentation_keeps_only_the_masked_voxels() -> None:
    probs = np.zeros((2, 4, 4, 3), np.float32)
    probs[..., 2] = 0.9
    probs[..., 0] = 0.1
    keep_a = np.zeros((2, 4, 4), bool)
    keep_a[:, :2] = True
    region = (slice(0, 2), slice(0, 4), slice(0, 4))
    # two overlapping regions with disjoint masks: each voxel counted once; unmasked voxels stay background
    out = np.full((2, 3, 4, 4), -1, np.float32)
    out[:, 0] = 1
    out[:, 1:] = 0
    seg = collect_segmentation((2, 4, 4), [(region, probs, keep_a), (region, probs * 0 + [1, 0, 0], ~keep_a)], out)
    assert seg.labels is not None and (seg.labels[:, :2] == 2).all() and (seg.labels[:, 2:] == 0).all()
    assert len(seg.points) == 16 and len({tuple(p) for p in seg.points}) == 16
    assert (out[:, 2, :2] == np.float32(0.9)).all() and (out[:, 0, 2:] == 1).all()


def test_candidates_find_the_events_of_the_whole_volume_pass(published_net) -> None:  # type: ignore[no-untyped-def]
    from exodf.simulate import preset, simulate

    sim = simulate(preset("control", n_frames=200, height=128, width=128, events_per_frame=0.1), seed=4)
    movie = sim.movie
    boxes, _, _ = candidate_boxes(movie)
    assert work_fraction(boxes, movie.shape, published_net) < FALLBACK  # the boxes, not the fallback, are tested
    whole = np.empty((movie.shape[0], 3) + movie.shape[1:], np.float32)
    full = detect_events(movie, published_net, DetectConfig(), probabilities_out=whole)
    cand_cfg = DetectConfig(inference=InferenceConfig(tiling="candidates"))
    probs = np.empty((movie.shape[0], 3) + movie.shape[1:], np.float32)
    fast = detect_events(movie, published_net, cand_cfg, probabilities_out=probs)
    assert len(full.events) >= 10
    agreement = score_events(fast.events, full.events, max_distance=1.5, dt_min=-1, dt_max=1, one_to_one=True)
    assert agreement.f1 >= 0.99, (len(fast.events), len(full.events))
    # the network ran on a small part of the movie, and everything else is background
    covered = np.zeros(movie.shape, bool)
    for b in boxes:
        covered[b.t0:b.t1, b.y0:b.y1, b.x0:b.x1] |= b.keep(slice(b.t0, b.t1), slice(b.y0, b.y1),
                                                           slice(b.x0, b.x1))[:, :128, :128]
    assert covered.mean() < 0.5
    outside = ~covered
    assert (probs[:, 0][outside] == 1).all() and (probs[:, 1:].transpose(1, 0, 2, 3)[:, outside] == 0).all()
    assert fast.segmentation.labels is not None and full.segmentation.labels is not None
    assert (fast.segmentation.labels[outside] == 0).all()
    # inside the boxes (halo = the receptive field), probabilities and labels are the whole-volume pass's, to
    # float32 rounding (bit for bit where the CPU's convolution kernels do not depend on the block's shape;
    # on an AVX2-only EPYC 0.3 % of the values differed by up to 4e-7)
    np.testing.assert_allclose(probs.transpose(1, 0, 2, 3)[:, covered], whole.transpose(1, 0, 2, 3)[:, covered],
                               rtol=0, atol=1e-5)
    assert (fast.segmentation.labels[covered] == full.segmentation.labels[covered]).all()
    ref = predict_probabilities(movie, published_net, cand_cfg.inference)
    np.testing.assert_array_equal(np.moveaxis(ref, -1, 1), probs)


def test_brightenings_everywhere_fall_back_to_the_exact_pass(published_net) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    movie = rng.normal(100, 2, (36, 64, 64))
    yy, xx = np.mgrid[:64, :64]
    for t in range(1, 36):  # a dozen puffs rising in every frame
        for y, x in rng.uniform(0, 64, (12, 2)):
            movie[t] += 60 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4.5)
    movie = movie.astype(np.uint16)
    boxes, _, _ = candidate_boxes(movie)
    assert work_fraction(boxes, movie.shape, published_net) > FALLBACK
    fast = predict_probabilities(movie, published_net, InferenceConfig(tiling="candidates"))
    np.testing.assert_array_equal(fast, predict_probabilities(movie, published_net, InferenceConfig()))


def test_candidates_clip_hot_pixels_as_the_whole_pass_does(published_net) -> None:  # type: ignore[no-untyped-def]
    from puffs import puff_movie

    hot = puff_movie(0)
    for y, x in ((5, 5), (33, 30), (58, 40), (10, 30), (45, 58), (25, 50)):
        hot[:, y, x] = 65535
    whole = detect_events(hot, published_net)
    fast = detect_events(hot, published_net, DetectConfig(inference=InferenceConfig(tiling="candidates")))
    assert len(whole.events) == len(fast.events) == 3  # (0 with the hot pixels fed as they are)
    np.testing.assert_allclose(fast.events.coords(), whole.events.coords())


def test_with_a_mask_a_brighter_neighbour_does_not_hide_the_cell_s_events(published_net) -> None:  # type: ignore
    """A neighbour 5x brighter beside the masked cell set each frame's range: 0 of the cell's 2 puffs found;
    clipped, both, by the whole pass and by candidates."""
    from puffs import puff_movie

    movie = puff_movie(0).astype(np.float64)
    movie[:, :, 36:] *= 5
    movie = movie.astype(np.uint16)
    mask = np.zeros((64, 64), bool)
    mask[:, :32] = True  # the cell, with the puffs at x 20 and 12
    kept = detect_events(movie, published_net, DetectConfig(inference=InferenceConfig(clip_outliers=False)), mask)
    assert len(kept.events) == 0
    whole = detect_events(movie, published_net, mask=mask)
    np.testing.assert_allclose(whole.events.coords(), [[9, 20, 20], [23, 30, 12]], atol=0.5)
    fast = detect_events(movie, published_net, DetectConfig(inference=InferenceConfig(tiling="candidates")), mask)
    np.testing.assert_allclose(fast.events.coords(), whole.events.coords())
