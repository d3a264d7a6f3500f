"""Training targets from point annotations, as the original ExoDeepFinder builds them.

- Each annotated exocytosis event (x, y, frame) paints class 2 into three frames: at its frame a disk of
  radius 4 (49 px), at the next frame a disk of radius 2 (13 px), at the one after a single pixel
  (:func:`exocytosis_footprint`). Positions are taken at the nearest pixel and frame.
- Bright spots (the output of :func:`exodf.spots.spot_labels`, or a user's own label map) are class 1,
  except the 3D-connected spot components whose centroid lies within ``match_distance`` (5) voxels of an
  annotated event: those are the event itself, seen by the spot detector, and are dropped.
- Class 2 is written last, so it wins where it overlaps a spot.

:func:`training_objects` lists the voxels that patches are centred on: every annotated event (class 2)
and the centroid of every remaining 2D spot component (class 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .events import EventTable

__all__ = ["exocytosis_footprint", "nearest_voxels", "paint_events", "drop_matched_spots", "make_target",
           "TrainingObjects", "training_objects", "BACKGROUND", "SPOT", "EXOCYTOSIS"]

BACKGROUND, SPOT, EXOCYTOSIS = 0, 1, 2
RADII = (4, 2, 0)  # disk radius at frame t, t+1, t+2 (0: the centre pixel only)


def exocytosis_footprint() -> np.ndarray:
    """The class-2 footprint of one event: (3, 9, 9) bool, frames t, t+1, t+2, centred at [:, 4, 4]."""
    r = max(RADII)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    d2 = yy * yy + xx * xx
    return np.stack([d2 <= rad * rad for rad in RADII])


def nearest_voxels(table: EventTable) -> np.ndarray:
    """(N, 3) int64 (frame, row, column) of each event at the nearest voxel."""
    return np.floor(table.coords() + 0.5).astype(np.int64)


def paint_events(target: np.ndarray, events: EventTable, label: int = EXOCYTOSIS) -> np.ndarray:
    """Paint the footprint of each event into ``target`` (T, Y, X) in place (clipped at the borders)."""
    foot = exocytosis_footprint()
    ft, fh, fw = foot.shape
    cy, cx = fh // 2, fw // 2
    t_n, h, w = target.shape
    for t, y, x in nearest_voxels(events):
        t0, t1 = max(0, t), min(t_n, t + ft)
        y0, y1 = max(0, y - cy), min(h, y - cy + fh)
        x0, x1 = max(0, x - cx), min(w, x - cx + fw)
        if t0 >= t1 or y0 >= y1 or x0 >= x1:
            continue
        sub = foot[t0 - t:t1 - t, y0 - (y - cy):y1 - (y - cy), x0 - (x - cx):x1 - (x - cx)]
        target[t0:t1, y0:y1, x0:x1][sub] = label
    return target


def drop_matched_spots(spots: np.ndarray, events: EventTable, match_distance: float = 5.0) -> np.ndarray:
    """Bright-spot mask (T, Y, X) bool without the 3D components that match an annotated event.

    A component (26-connected over frames and pixels) matches when its centroid (frame, y, x) lies within
    ``match_distance`` voxels of an event.
    """
    mask = np.asarray(spots) > 0
    if not mask.any() or len(events) == 0:
        return mask
    lab, n = ndi.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    # centroids from the foreground voxels only (ndi.center_of_mass builds float64 volumes: 21 B/voxel)
    where = np.nonzero(lab)
    ids = lab[where]
    counts = np.bincount(ids, minlength=n + 1)[1:]
    cents = np.column_stack([np.bincount(ids, weights=w, minlength=n + 1)[1:] / counts for w in where])
    del where, ids
    tree = cKDTree(events.coords())
    near = np.array([len(hits) > 0 for hits in tree.query_ball_point(cents, r=match_distance)], dtype=bool)
    drop = np.zeros(n + 1, dtype=bool)
    drop[1:] = near
    return mask & ~drop[lab]


def make_target(shape: tuple[int, int, int], events: EventTable, spots: np.ndarray | None = None,
                match_distance: float = 5.0) -> np.ndarray:
    """The training target (T, Y, X) int8: 0 background, 1 bright spot, 2 exocytosis.

    Parameters
    ----------
    shape
        Movie shape (T, Y, X).
    events
        Annotated exocytosis events.
    spots
        Bright spots: a label map or mask of the movie's shape (e.g. :func:`exodf.spots.spot_labels`), or None.
    match_distance
        Spot components whose centroid is this close (voxels) to an event are dropped.
    """
    target = np.zeros(shape, dtype=np.int8)
    if spots is not None:
        if spots.shape != tuple(shape):
            raise ValueError(f"make_target: spot map shape {spots.shape} differs from the movie shape {tuple(shape)}")
        target[drop_matched_spots(spots, events, match_distance)] = SPOT
    return paint_events(target, events, EXOCYTOSIS)


@dataclass(frozen=True)
class TrainingObjects:
    """Voxels (frame, row, column) that training patches are centred on, per class."""

    spots: np.ndarray
    events: np.ndarray

    def of_class(self, label: int) -> np.ndarray:
        return self.spots if label == SPOT else self.events


def training_objects(target: np.ndarray, events: EventTable) -> TrainingObjects:
    """Patch centres: each annotated event inside the movie, and the centroid of each 2D spot component."""
    t_n, h, w = target.shape
    ev = nearest_voxels(events).reshape(-1, 3)
    inside = (ev >= 0).all(axis=1) & (ev[:, 0] < t_n) & (ev[:, 1] < h) & (ev[:, 2] < w)
    rows: list[np.ndarray] = []
    spot = target == SPOT
    structure = np.ones((3, 3), dtype=bool)
    for t in np.flatnonzero(spot.reshape(t_n, -1).any(axis=1)):
        lab, n = ndi.label(spot[t], structure=structure)
        c = np.asarray(ndi.center_of_mass(spot[t], lab, np.arange(1, n + 1)), dtype=np.float64).reshape(-1, 2)
        rows.append(np.column_stack([np.full(n, t), np.floor(c + 0.5)]).astype(np.int64))
    spots = np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)
    return TrainingObjects(spots, ev[inside])
