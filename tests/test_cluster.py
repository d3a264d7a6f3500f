"""Mean-shift clustering: grouping far-apart voxels gives the same centres as one global MeanShift."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import MeanShift

from exodf.cluster import ClusterConfig, labels_to_events, points_to_events
from exodf.evaluate import exclude_events
from exodf.events import EventTable


def _blob(lab: np.ndarray, t: int, y: int, x: int, r: int = 2) -> None:
    tt, yy, xx = np.ogrid[: lab.shape[0], : lab.shape[1], : lab.shape[2]]
    lab[((tt - t) ** 2 + (yy - y) ** 2 + (xx - x) ** 2) <= r * r] = 2


def test_two_events_and_scores() -> None:
    lab = np.zeros((30, 40, 50), np.int8)
    _blob(lab, 5, 10, 12)
    _blob(lab, 20, 30, 40)
    lab[0, 0, 0] = 1  # bright spot voxels are not events
    prob = np.where(lab == 2, 0.8, 0.1).astype(np.float32)
    ev = labels_to_events(lab, prob)
    np.testing.assert_allclose(ev.coords(), [[5, 10, 12], [20, 30, 40]], atol=1e-9)
    np.testing.assert_array_equal(ev.columns["size"], [33, 33])
    np.testing.assert_allclose(ev.columns["score"], [0.8, 0.8], rtol=1e-6)
    assert len(labels_to_events(lab, prob, ClusterConfig(min_size=33, min_score=0.8))) == 2  # the bounds keep
    assert len(labels_to_events(lab, prob, ClusterConfig(min_size=34))) == 0
    assert len(labels_to_events(lab, prob, ClusterConfig(min_score=0.9))) == 0
    # a smaller, weaker third event: each filter drops it alone
    _blob(lab, 12, 30, 10, r=1)
    prob[lab == 2] = 0.8
    prob[10:15, 28:33, 8:13][lab[10:15, 28:33, 8:13] == 2] = 0.6
    ev = labels_to_events(lab, prob)
    np.testing.assert_array_equal(ev.columns["size"], [33, 7, 33])
    for config in (ClusterConfig(min_size=8), ClusterConfig(min_score=0.7)):
        np.testing.assert_allclose(labels_to_events(lab, prob, config).coords(), [[5, 10, 12], [20, 30, 40]])


def test_grouping_equals_global_meanshift() -> None:
    rng = np.random.default_rng(7)
    lab = np.zeros((60, 80, 80), np.int8)
    for _ in range(25):  # touching and far-apart blobs of various sizes
        _blob(lab, *rng.integers([2, 2, 2], [58, 78, 78]), r=int(rng.integers(1, 4)))
    ours = labels_to_events(lab)
    pts = np.argwhere(lab == 2).astype(float)
    ms = MeanShift(bandwidth=5, bin_seeding=True).fit(pts)
    ref = ms.cluster_centers_[np.lexsort(ms.cluster_centers_[:, ::-1].T)]
    assert len(ours) == len(ref)
    np.testing.assert_allclose(ours.coords(), ref, atol=1e-9)
    sizes = np.bincount(ms.labels_)[np.lexsort(ms.cluster_centers_[:, ::-1].T)]
    np.testing.assert_array_equal(ours.columns["size"], sizes)


def test_sparse_voxels_are_seeded_as_one_global_meanshift() -> None:
    """Scattered voxels (small groups where every voxel may have a bin of its own): the seeds are chosen for
    all the voxels at once, as scikit-learn does; a group's own fallback to its voxels split pairs of voxels
    6 px apart that the original's one MeanShift joins (about 1 cloud in 20 differed)."""
    import warnings

    rng = np.random.default_rng(0)
    for _ in range(120):
        pts = np.unique(np.c_[rng.integers(0, 40, 30), rng.integers(0, 60, 30), rng.integers(0, 60, 30)], axis=0)
        with warnings.catch_warnings():  # "Binning data failed": every voxel has its own bin
            warnings.simplefilter("ignore", UserWarning)
            ms = MeanShift(bandwidth=5, bin_seeding=True).fit(pts.astype(float))
        members = np.bincount(ms.labels_, minlength=len(ms.cluster_centers_))
        centres = ms.cluster_centers_[members > 0]  # a mode left without voxels is no event
        order = np.lexsort(centres[:, ::-1].T)
        ours = points_to_events(pts)
        assert len(ours) == len(centres)
        np.testing.assert_allclose(ours.coords(), centres[order], atol=1e-9)
        np.testing.assert_array_equal(ours.columns["size"], members[members > 0][order])
    # one pair alone: every voxel has its own bin, so the voxels are the seeds (two events, as scikit-learn)
    assert len(points_to_events(np.array([[5, 5, 5], [5, 5, 11]]))) == 2


def test_points_in_any_order_equal_the_label_volume() -> None:
    """The sparse path (exocytosis voxels as points, in block order) clusters exactly as the dense volume."""
    rng = np.random.default_rng(3)
    lab = np.zeros((40, 60, 60), np.int8)
    for _ in range(15):
        _blob(lab, *rng.integers([2, 2, 2], [38, 58, 58]), r=int(rng.integers(1, 4)))
    prob = rng.uniform(0.4, 1.0, lab.shape).astype(np.float32)
    want = labels_to_events(lab, prob)
    pts = np.argwhere(lab == 2)
    perm = rng.permutation(len(pts))
    got = points_to_events(pts[perm].astype(np.int32), prob[tuple(pts[perm].T)])
    np.testing.assert_array_equal(got.coords(), want.coords())
    np.testing.assert_array_equal(got.columns["size"], want.columns["size"])
    np.testing.assert_allclose(got.columns["score"], want.columns["score"], rtol=1e-12)
    assert len(points_to_events(np.empty((0, 3), np.int32))) == 0


def test_empty_and_filters() -> None:
    assert len(labels_to_events(np.zeros((4, 8, 8), np.int8))) == 0
    t = EventTable([1, 5, 5, 1], [1, 5, 5, 6], [0, 30, 90, 50])
    mask = np.zeros((8, 8), bool)
    mask[4:, 4:] = True
    kept = exclude_events(t, 100, exclude_edges=25, mask=mask)
    np.testing.assert_array_equal(kept.frame, [30])
    np.testing.assert_array_equal(exclude_events(t, mask=mask).frame, [30, 90])  # the mask alone: x 1 is outside
    np.testing.assert_array_equal(exclude_events(t, 100, exclude_edges=25).frame, [30, 50])  # the edges alone
