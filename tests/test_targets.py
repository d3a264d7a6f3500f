"""Training targets: the footprint voxel by voxel, spot dropping near events, class precedence, objects."""

from __future__ import annotations

import numpy as np
import pytest

from exodf.events import EventTable
from exodf.targets import (EXOCYTOSIS, SPOT, drop_matched_spots, exocytosis_footprint, make_target,
                           paint_events, training_objects)

# The original's footprint, written out: a disk of radius 4 (49 px), of radius 2 (13 px), one pixel.
DISK4 = np.array([
    [0, 0, 0, 0, 1, 0, 0, 0, 0],
    [0, 0, 1, 1, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 1, 1, 1, 1, 0],
    [0, 1, 1, 1, 1, 1, 1, 1, 0],
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
    [0, 1, 1, 1, 1, 1, 1, 1, 0],
    [0, 1, 1, 1, 1, 1, 1, 1, 0],
    [0, 0, 1, 1, 1, 1, 1, 0, 0],
    [0, 0, 0, 0, 1, 0, 0, 0, 0]], dtype=bool)
DISK2 = np.zeros((9, 9), dtype=bool)
DISK2[2:7, 2:7] = np.array([
    [0, 0, 1, 0, 0],
    [0, 1, 1, 1, 0],
    [1, 1, 1, 1, 1],
    [0, 1, 1, 1, 0],
    [0, 0, 1, 0, 0]], dtype=bool)
DOT = np.zeros((9, 9), dtype=bool)
DOT[4, 4] = True


def test_footprint_voxel_by_voxel() -> None:
    foot = exocytosis_footprint()
    assert foot.shape == (3, 9, 9)
    np.testing.assert_array_equal(foot[0], DISK4)
    np.testing.assert_array_equal(foot[1], DISK2)
    np.testing.assert_array_equal(foot[2], DOT)
    assert [int(f.sum()) for f in foot] == [49, 13, 1]


def test_event_painted_at_nearest_voxel_in_three_frames() -> None:
    ev = EventTable([10.4], [12.6], [5.2])  # x, y, frame -> voxel (5, 13, 10)
    target = make_target((12, 24, 24), ev)
    assert target.dtype == np.int8
    assert int((target == EXOCYTOSIS).sum()) == 63
    assert set(np.flatnonzero((target == EXOCYTOSIS).reshape(12, -1).any(axis=1))) == {5, 6, 7}
    np.testing.assert_array_equal(target[5, 9:18, 6:15] == EXOCYTOSIS, DISK4)
    np.testing.assert_array_equal(target[6, 9:18, 6:15] == EXOCYTOSIS, DISK2)
    np.testing.assert_array_equal(target[7, 9:18, 6:15] == EXOCYTOSIS, DOT)
    assert int((target == EXOCYTOSIS).sum()) == 63 and int((target == SPOT).sum()) == 0


def test_footprint_clipped_at_borders() -> None:
    ev = EventTable([0.0, 23.0], [0.0, 23.0], [10.0, 0.0])
    target = paint_events(np.zeros((12, 24, 24), dtype=np.int8), ev)
    # the corner event keeps a quarter disk of radius 4 (17 px) and of radius 2 (6 px) at frames 10, 11;
    # its dot would be at frame 12, past the end
    assert int((target[10] == 2)[:5, :5].sum()) == 17
    assert int((target[11] == 2)[:5, :5].sum()) == 6
    assert int((target[0] == 2)[19:, 19:].sum()) == 17
    assert int((target == 2).sum()) == 17 + 6 + 17 + 6 + 1


def test_spots_near_events_dropped_and_events_win() -> None:
    shape = (10, 40, 40)
    spots = np.zeros(shape, dtype=np.int32)
    spots[3:6, 19:22, 19:22] = 1   # a spot component centred on (4, 20, 20): the event itself
    spots[2:4, 5:8, 30:33] = 2     # a docked vesicle far away, centred on (2.5, 6, 31)
    spots[3:10, 20:23, 23:26] = 3  # a 7-frame spot centred on (6, 21, 24), 5.10 voxels from the event: kept
    ev = EventTable([20.0], [20.0], [3.0])
    kept = drop_matched_spots(spots, ev, match_distance=5.0)
    assert int(kept.sum()) == 18 + 63
    assert not kept[3:6, 19:22, 19:22].any()
    target = make_target(shape, ev, spots)
    # 4 voxels of spot 3 lie under the radius-4 disk at frame 3: exocytosis is written last and wins
    assert int((target == SPOT).sum()) == 18 + 63 - 4
    assert target[3, 20, 24] == EXOCYTOSIS and target[3, 20, 25] == SPOT and target[3, 22, 24] == SPOT
    np.testing.assert_array_equal(target[3, 16:25, 16:25] == EXOCYTOSIS, DISK4)
    # a larger distance drops the third spot as well
    assert int(drop_matched_spots(spots, ev, match_distance=5.2).sum()) == 18


def test_training_objects_per_class() -> None:
    shape = (10, 40, 40)
    spots = np.zeros(shape, dtype=np.int32)
    spots[2:4, 5:8, 30:33] = 1
    ev = EventTable([20.0, 100.0], [20.0, 5.0], [3.0, 1.0])  # the second lies outside the frame
    obj = training_objects(make_target(shape, ev, spots), ev)
    np.testing.assert_array_equal(obj.events, [[3, 20, 20]])
    np.testing.assert_array_equal(obj.spots, [[2, 6, 31], [3, 6, 31]])
    assert obj.of_class(SPOT) is obj.spots and obj.of_class(EXOCYTOSIS) is obj.events


def test_spot_map_shape_checked() -> None:
    with pytest.raises(ValueError, match="spot map shape"):
        make_target((4, 8, 8), EventTable.empty(), np.zeros((4, 8, 9)))


def test_spot_centroids_are_the_components_centres_of_mass() -> None:
    """drop_matched_spots finds centroids from the foreground voxels (ndi.center_of_mass needs float64
    volumes); a component is dropped exactly when its centre of mass lies within the distance."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(1)
    spots = ndi.binary_dilation(rng.random((30, 40, 40)) > 0.995, iterations=1)
    lab, n = ndi.label(spots, structure=np.ones((3, 3, 3), dtype=bool))
    cents = np.asarray(ndi.center_of_mass(spots, lab, np.arange(1, n + 1)))
    ev = EventTable(cents[::3, 2] + 1.0, cents[::3, 1], cents[::3, 0])  # 1 px from every third component
    for distance, dropped in ((0.9, set()), (1.1, set(range(1, n + 1, 3)))):
        kept = drop_matched_spots(spots, ev, match_distance=distance)
        gone = set(np.unique(lab[spots & ~kept]).tolist()) - {0}
        assert gone == dropped, distance
