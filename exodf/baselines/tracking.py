"""Greedy nearest-neighbour tracking of per-frame spots, with gap closing (shared by the baselines).

Frame by frame, every spot may continue a track whose last spot lies at most ``max_distance`` px away and
at most ``max_gap`` frames back (``max_gap=0``: the previous frame only). Candidate (spot, track) pairs are
taken in order of increasing distance (ties: the more recent track, then the lower index), each spot and
each track at most once per frame; spots left over start new tracks. This is the linking ExoJ describes
(spatial search radius, temporal search depth: depth ``D`` is ``max_gap = D - 1``) and ADAE's merging of
repeated detections.

``metric="exoj"`` measures distance as ExoJ's code does (``Vesicle.getDistance`` in
github.com/zs6e/excytosis-analyzer-plugin): ``sqrt(|dy| + |dx|)``, linked when strictly below
``max_distance`` (search radius 2 px: ``|dy| + |dx| <= 3``).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["link_spots", "track_slices"]


def link_spots(frame: np.ndarray, y: np.ndarray, x: np.ndarray, max_distance: float,
               max_gap: int = 0, metric: str = "euclidean") -> np.ndarray:
    """Link spots into tracks.

    Parameters
    ----------
    frame, y, x
        Integer frame and position (px) of each spot.
    max_distance
        Largest jump between consecutive spots of a track (px).
    max_gap
        Number of frames a track may skip (0: consecutive frames only).
    metric
        ``"euclidean"`` (linked at distance <= ``max_distance``) or ``"exoj"`` (see the module docstring).

    Returns
    -------
    ndarray of int64
        Track id of each spot (0, 1, ... in order of track start).
    """
    frame = np.asarray(frame, dtype=np.int64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if not (frame.shape == y.shape == x.shape):
        raise ValueError("link_spots: frame, y and x must have the same length")
    if max_distance < 0 or max_gap < 0:
        raise ValueError("link_spots: max_distance and max_gap must be >= 0")
    if metric not in ("euclidean", "exoj"):
        raise ValueError(f"link_spots: metric must be 'euclidean' or 'exoj', got {metric!r}")
    exoj = metric == "exoj"
    n = frame.shape[0]
    track = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return track
    order = np.argsort(frame, kind="stable")
    bounds = np.flatnonzero(np.diff(frame[order])) + 1
    # live tracks: last spot's position and frame
    t_y: list[float] = []
    t_x: list[float] = []
    t_f: list[int] = []
    live: list[int] = []  # tracks that may still continue
    for group in np.split(order, bounds):
        f = int(frame[group[0]])
        live = [k for k in live if f - t_f[k] - 1 <= max_gap]
        pairs: list[tuple[float, int, int, int]] = []
        if live:
            tree = cKDTree(np.stack([[t_y[k] for k in live], [t_x[k] for k in live]], axis=1))
            pts = np.stack([y[group], x[group]], axis=1)
            if exoj:
                near = tree.query_ball_point(pts, r=max_distance ** 2, p=1)
            else:
                near = tree.query_ball_point(pts, r=max_distance + 1e-9)
            for si, ks in enumerate(near):
                for kk in ks:
                    k = live[kk]
                    dy, dx = y[group[si]] - t_y[k], x[group[si]] - t_x[k]
                    if exoj:
                        d = float(np.sqrt(abs(dy) + abs(dx)))
                        if not d < max_distance:
                            continue
                    else:
                        d = float(np.hypot(dy, dx))
                    pairs.append((d, f - t_f[k], si, k))
        pairs.sort()
        used_s: set[int] = set()
        used_t: set[int] = set()
        for _, _, si, k in pairs:
            if si in used_s or k in used_t:
                continue
            used_s.add(si)
            used_t.add(k)
            s = group[si]
            track[s] = k
            t_y[k], t_x[k], t_f[k] = float(y[s]), float(x[s]), f
        for si, s in enumerate(group):
            if si not in used_s:
                track[s] = len(t_f)
                live.append(len(t_f))
                t_y.append(float(y[s]))
                t_x.append(float(x[s]))
                t_f.append(f)
    return track


def track_slices(track: np.ndarray, frame: np.ndarray) -> list[np.ndarray]:
    """Indices of each track's spots, ordered by frame (list index = track id)."""
    track = np.asarray(track)
    if track.size == 0:
        return []
    order = np.lexsort((np.asarray(frame), track))
    splits = np.flatnonzero(np.diff(track[order])) + 1
    return np.split(order, splits)
