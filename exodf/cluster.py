"""From a segmentation to events: mean-shift clustering of exocytosis voxels, as the original.

The original runs scikit-learn's ``MeanShift(bandwidth=5, bin_seeding=True)`` on the (t, y, x)
coordinates of all exocytosis voxels at once. exodf runs the same algorithm on groups of voxels that are
more than two bandwidths apart from every other group: mean-shift with a flat kernel never lets such
groups interact, and bin seeds sit on the same global grid, so the centres are the same, while the work
shrinks from quadratic in the whole movie's voxels to the sum over groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from .events import EventTable

__all__ = ["ClusterConfig", "labels_to_events", "EXOCYTOSIS"]

EXOCYTOSIS = 2


@dataclass(frozen=True)
class ClusterConfig:
    """Coordinate extraction settings (the original's: bandwidth 5 voxels, bin seeding, no filter)."""

    bandwidth: float = 5.0
    min_size: int = 1
    min_score: float = 0.0

    def __post_init__(self) -> None:
        if not self.bandwidth > 0:
            raise ValueError(f"ClusterConfig.bandwidth must be > 0, got {self.bandwidth}")
        if self.min_size < 1:
            raise ValueError(f"ClusterConfig.min_size must be >= 1, got {self.min_size}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"ClusterConfig.min_score must be within [0, 1], got {self.min_score}")


def _groups(mask: np.ndarray, gap: float) -> list[np.ndarray]:
    """Voxel coordinates of ``mask`` split into groups whose bounding boxes, grown by ``gap``, do not touch."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    boxes = ndimage.find_objects(lab)
    lo = np.array([[s.start for s in b] for b in boxes], dtype=float) - gap
    hi = np.array([[s.stop - 1 for s in b] for b in boxes], dtype=float) + gap
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    order = np.argsort(lo[:, 0])
    active: list[int] = []
    for i in order:  # sweep along t; compare with components whose t-range can still overlap
        active = [j for j in active if hi[j, 0] >= lo[i, 0]]
        for j in active:
            if np.all(lo[i] <= hi[j]) and np.all(lo[j] <= hi[i]):
                parent[find(i)] = find(j)
        active.append(int(i))
    roots = np.array([find(i) for i in range(n)])
    coords = np.argwhere(lab > 0)
    comp_root = roots[lab[tuple(coords.T)] - 1]
    order = np.argsort(comp_root, kind="stable")
    coords, comp_root = coords[order], comp_root[order]
    splits = np.flatnonzero(np.diff(comp_root)) + 1
    return np.split(coords, splits)


def labels_to_events(labels: np.ndarray, exo_probability: np.ndarray | None = None,
                     config: ClusterConfig = ClusterConfig(), label: int = EXOCYTOSIS,
                     progress: Callable[[int, int], None] | None = None) -> EventTable:
    """Cluster the voxels of ``labels == label`` into events.

    Parameters
    ----------
    labels
        (T, Y, X) segmentation (0 background, 1 bright spot, 2 exocytosis).
    exo_probability
        Optional (T, Y, X) exocytosis probability; each event's ``score`` is its voxels' mean.
    config
        Bandwidth and the size/score filters.

    Returns
    -------
    EventTable
        One event per cluster: x, y, frame = the cluster centre; ``size`` = voxels; ``score``.
    """
    from sklearn.cluster import MeanShift

    if labels.ndim != 3:
        raise ValueError(f"labels_to_events: expected (T, Y, X) labels, got shape {labels.shape}")
    groups = _groups(np.asarray(labels) == label, 2 * config.bandwidth)
    centres, sizes, scores = [], [], []
    for k, pts in enumerate(groups):
        ms = MeanShift(bandwidth=config.bandwidth, bin_seeding=True).fit(pts.astype(np.float64))
        for c in range(ms.cluster_centers_.shape[0]):
            members = pts[ms.labels_ == c]
            centres.append(ms.cluster_centers_[c])
            sizes.append(members.shape[0])
            scores.append(float(np.mean(exo_probability[tuple(members.T)], dtype=np.float64))
                          if exo_probability is not None else np.nan)
        if progress is not None:
            progress(k + 1, len(groups))
    if not centres:
        return EventTable.empty(("size", "score"))
    c = np.array(centres)
    table = EventTable(c[:, 2], c[:, 1], c[:, 0], {"size": np.array(sizes, dtype=np.int64),
                                                  "score": np.array(scores, dtype=np.float64)})
    keep = table.columns["size"] >= config.min_size
    if exo_probability is not None:
        keep &= table.columns["score"] >= config.min_score
    return table.select(keep).sorted()
