"""From a segmentation to events: mean-shift clustering of exocytosis voxels, as the original.

The original runs scikit-learn's ``MeanShift(bandwidth=5, bin_seeding=True)`` on the (t, y, x)
coordinates of all exocytosis voxels at once. exodf runs the same algorithm on groups of voxels that are
more than two bandwidths apart from every other group: mean-shift with a flat kernel never lets such
groups interact, and the seeds are chosen once for all the voxels, as scikit-learn chooses them (the
centres of the bandwidth grid's bins holding a voxel, or the voxels themselves when every voxel has a bin of
its own), so the centres are the same, while the work shrinks from quadratic in the whole movie's voxels to
the sum over groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .events import EventTable

__all__ = ["ClusterConfig", "labels_to_events", "points_to_events", "EXOCYTOSIS"]

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


def _groups(points: np.ndarray, gap: float) -> list[np.ndarray]:
    """Indices into ``points`` (N, 3), split into groups whose bounding boxes, grown by ``gap``, do not touch.

    Groups start as the 26-connected components of the voxels, found from the points themselves (no dense
    volume is needed, so memory follows the number of exocytosis voxels, not the movie's size).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n_pts = points.shape[0]
    if n_pts == 0:
        return []
    pairs = cKDTree(points).query_pairs(r=1.0, p=np.inf, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n_pts, n_pts))
    n, comp = connected_components(graph, directed=False)
    lo = np.full((n, 3), np.inf)
    hi = np.full((n, 3), -np.inf)
    np.minimum.at(lo, comp, points)
    np.maximum.at(hi, comp, points)
    lo -= gap
    hi += gap
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    active: list[int] = []
    for i in np.argsort(lo[:, 0], kind="stable"):  # sweep along t; compare with groups whose t-range can overlap
        active = [j for j in active if hi[j, 0] >= lo[i, 0]]
        for j in active:
            if np.all(lo[i] <= hi[j]) and np.all(lo[j] <= hi[i]):
                parent[find(i)] = find(j)
        active.append(int(i))
    roots = np.array([find(i) for i in range(n)])[comp]
    order = np.lexsort(points.T[::-1])  # C order (t, then y, then x), as np.argwhere of a volume gives
    order = order[np.argsort(roots[order], kind="stable")]
    splits = np.flatnonzero(np.diff(roots[order])) + 1
    return np.split(order, splits)


def labels_to_events(labels: np.ndarray, exo_probability: np.ndarray | None = None,
                     config: ClusterConfig = ClusterConfig(), label: int = EXOCYTOSIS,
                     progress: Callable[[int, int], None] | None = None) -> EventTable:
    """Cluster the voxels of ``labels == label`` (a dense (T, Y, X) segmentation) into events.

    ``exo_probability``, an optional (T, Y, X) exocytosis probability, gives each event's ``score`` (its
    voxels' mean). See :func:`points_to_events`.
    """
    if labels.ndim != 3:
        raise ValueError(f"labels_to_events: expected (T, Y, X) labels, got shape {labels.shape}")
    points = np.argwhere(np.asarray(labels) == label)
    scores = None if exo_probability is None else np.asarray(exo_probability)[tuple(points.T)]
    return points_to_events(points, scores, config, progress)


def points_to_events(points: np.ndarray, scores: np.ndarray | None = None, config: ClusterConfig = ClusterConfig(),
                     progress: Callable[[int, int], None] | None = None) -> EventTable:
    """Cluster exocytosis voxels into events, as the original does on its label volume.

    Parameters
    ----------
    points
        (N, 3) integer (t, y, x) coordinates of the exocytosis voxels, in any order.
    scores
        Optional (N,) exocytosis probability of each voxel; each event's ``score`` is its voxels' mean.
    config
        Bandwidth and the size/score filters.

    Returns
    -------
    EventTable
        One event per cluster: x, y, frame = the cluster centre; ``size`` = voxels; ``score``.
    """
    from sklearn.cluster import MeanShift

    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_to_events: expected (N, 3) t, y, x coordinates, got shape {points.shape}")
    if scores is not None and len(scores) != len(points):
        raise ValueError(f"points_to_events: {len(scores)} scores for {len(points)} points")
    bw = config.bandwidth
    groups = _groups(points, 2 * bw)
    # seeds as scikit-learn's get_bin_seeds picks them for all the voxels at once (groups never share a bin:
    # they are more than two bandwidths apart): a group's own fallback to its voxels would differ
    bins = np.round(points / bw)
    voxel_seeds = len(points) > 0 and len(np.unique(bins, axis=0)) == len(points)
    centres, sizes, means = [], [], []
    for k, idx in enumerate(groups):
        pts = points[idx].astype(np.float64)
        seeds = pts if voxel_seeds else np.unique(bins[idx], axis=0).astype(np.float32) * bw
        ms = MeanShift(bandwidth=bw, seeds=seeds).fit(pts)
        for c in range(ms.cluster_centers_.shape[0]):
            members = idx[ms.labels_ == c]
            centres.append(ms.cluster_centers_[c])
            sizes.append(members.shape[0])
            means.append(float(np.mean(scores[members], dtype=np.float64)) if scores is not None else np.nan)
        if progress is not None:
            progress(k + 1, len(groups))
    if not centres:
        return EventTable.empty(("size", "score"))
    c = np.array(centres)
    table = EventTable(c[:, 2], c[:, 1], c[:, 0], {"size": np.array(sizes, dtype=np.int64),
                                                  "score": np.array(means, dtype=np.float64)})
    keep = table.columns["size"] >= config.min_size
    if scores is not None:
        keep &= table.columns["score"] >= config.min_score
    return table.select(keep).sorted()
