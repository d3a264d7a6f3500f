"""A TIRF exocytosis simulator with ground truth (pure numpy).

The model, in the units of :class:`SimParams` (pixels of 160 nm, frames of 0.3–0.5 s):

- a cell footprint (a smooth random outline, soft edge) with a textured membrane background that drifts
  slowly, on a dim glass background;
- photobleaching of everything present from the start (exponential, ``bleach`` of the intensity lost by
  the last frame);
- docked vesicles and bright foci: Gaussian spots that stay, or appear and disappear, and move slowly by
  diffusion (the counter-examples a detector must ignore);
- exocytosis events: onset at a continuous time, a Gaussian spot of σ0 px that spreads by 2D diffusion
  (``σ² = σ0² + 2 D t``, total intensity conserved) and fades exponentially with time constant τ; each
  frame integrates its exposure (the first ``exposure`` of the frame interval; sub-frame onset gives a
  partial first frame). The amplitude of each event
  is set so that its F/F0 — the mean of the 7×7 window at the peak frame over the same window 5 frames
  before, on the noise-free movie, camera offset included — equals the value drawn for it;
- EMCCD noise: Poisson photo-electrons, gamma-distributed multiplication (excess noise factor √2), normal
  read noise, and a camera offset.

The ground truth is an :class:`~exodf.events.EventTable` at the peak frame of each event, with columns
``fold`` (F/F0), ``tau`` (s), ``sigma`` (σ0, px), ``diffusion`` (µm²/s), ``onset`` (0-based frame, float),
``amplitude`` (peak ADU at onset) and ``inside`` (1 inside the cell mask).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

import numpy as np
from scipy import ndimage as ndi

from .errors import ExodfError
from .events import EventTable

__all__ = ["SimParams", "Simulation", "PRESETS", "preset", "simulate", "window_mean"]

Range = tuple[float, float]
WINDOW = 7   # F/F0 window side (px)
BEFORE = 5   # F0 is measured this many frames before the peak
#: Bumped whenever the same parameters and seed give another movie (stored beside simulated movies, so that
#: `exodf benchmark` does not reuse movies of an older simulator). 2: events begun before frame 0 no longer
#: draw into the last frame.
SIMULATOR_REVISION = 2


@dataclass(frozen=True)
class SimParams:
    """Every parameter of the simulator. Ranges ``(lo, hi)`` are drawn uniformly (log-uniformly for τ, D).

    Attributes
    ----------
    n_frames, height, width
        Movie size.
    pixel_size_um, frame_interval_s
        Calibration: 0.16 µm; 0.3–0.5 s.
    exposure
        Exposure time as a fraction of the frame interval (events are integrated over it).
    offset, read_noise, em_gain, em_excess
        Camera: offset (ADU), read noise SD (ADU), ADU per photo-electron, gamma-distributed EM gain.
    cell_level, glass_level
        Mean membrane and glass background above the offset (ADU).
    texture, texture_scale, texture_drift
        Membrane texture contrast, its length scale (px), and how far it drifts over the movie (radians).
    cell_radius
        Cell radius as a fraction of the smaller frame side.
    bleach
        Fraction of the start intensity lost by the last frame (drawn per movie).
    docked_density, docked_amplitude, docked_sigma, docked_diffusion, docked_static, docked_lifetime_s,
    docked_blink
        Docked vesicles / bright foci per 1000 px² of cell; peak amplitude (× ``cell_level``); σ (px);
        D (µm²/s); fraction present throughout; mean lifetime of the others (s); intensity fluctuation.
    events_per_frame, inside_fraction
        Exocytosis rate, and the fraction of events inside the cell (the rest fall anywhere).
    fold, tau_s, sigma0, diffusion
        Per-event F/F0, decay time constant τ (s), initial σ0 (px), diffusion D (µm²/s).
    """

    n_frames: int = 200
    height: int = 200
    width: int = 200
    pixel_size_um: float = 0.16
    frame_interval_s: float = 0.4
    exposure: float = 0.25
    offset: float = 100.0
    read_noise: float = 6.0
    em_gain: float = 0.95
    em_excess: bool = True
    cell_level: float = 120.0
    glass_level: float = 13.0
    texture: float = 0.45
    texture_scale: float = 5.0
    texture_drift: float = 0.6
    cell_radius: float = 0.42
    bleach: Range = (0.1, 0.3)
    docked_density: float = 1.5
    docked_amplitude: Range = (0.5, 2.0)
    docked_sigma: Range = (1.0, 1.6)
    docked_diffusion: Range = (0.0002, 0.003)
    docked_static: float = 0.6
    docked_lifetime_s: float = 30.0
    docked_blink: float = 0.0
    events_per_frame: float = 0.16
    inside_fraction: float = 0.95
    fold: Range = (1.2, 2.2)
    tau_s: Range = (0.4, 2.0)
    sigma0: Range = (1.0, 1.5)
    diffusion: Range = (0.05, 0.5)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            vals = v if isinstance(v, (tuple, list)) else (v,)
            if any(isinstance(a, (int, float)) and not math.isfinite(a) for a in vals):
                raise ValueError(f"SimParams.{f.name} must be finite, got {v!r}")
        if self.n_frames < 2:
            raise ValueError(f"SimParams.n_frames must be >= 2 (a movie), got {self.n_frames}")
        for name in ("height", "width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SimParams.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pixel_size_um", "frame_interval_s", "em_gain", "cell_level", "texture_scale",
                     "cell_radius"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SimParams.{name} must be > 0, got {getattr(self, name)}")
        for name in ("offset", "read_noise", "glass_level", "texture", "texture_drift", "docked_density",
                     "docked_lifetime_s", "docked_blink", "events_per_frame"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"SimParams.{name} must be >= 0, got {getattr(self, name)}")
        for name, most in (("events_per_frame", 50.0), ("docked_density", 100.0)):  # crowded beyond sense
            if getattr(self, name) > most:
                raise ValueError(f"SimParams.{name} must be <= {most:g}, got {getattr(self, name)}")
        if self.offset + self.cell_level * 4 > 65535:
            raise ValueError(f"SimParams.offset {self.offset:g} + 4 x cell_level {self.cell_level:g} exceed the "
                             "16-bit range (65535): the movie would be saturated")
        if not 0 < self.exposure <= 1:
            raise ValueError(f"SimParams.exposure must be in (0, 1], got {self.exposure}")
        for name in ("docked_static", "inside_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SimParams.{name} must be in [0, 1], got {getattr(self, name)}")
        for f in fields(self):
            if f.type == "Range":
                v = getattr(self, f.name)
                try:
                    lo, hi = (float(a) for a in v)
                except (TypeError, ValueError):
                    raise ValueError(f"SimParams.{f.name} must be a range (lo, hi), got {v!r}") from None
                if not 0 <= lo <= hi:
                    raise ValueError(f"SimParams.{f.name} must satisfy 0 <= lo <= hi, got {v!r}")
                object.__setattr__(self, f.name, (lo, hi))
        if self.fold[0] < 1:
            raise ValueError(f"SimParams.fold must be >= 1 (F/F0 of a brightening), got {self.fold!r}")
        if self.bleach[1] >= 1:
            raise ValueError(f"SimParams.bleach must be < 1, got {self.bleach!r}")
        if min(self.tau_s[0], self.sigma0[0]) <= 0:
            raise ValueError("SimParams.tau_s and SimParams.sigma0 must be > 0")

    def with_overrides(self, **overrides: Any) -> "SimParams":
        """A copy with some fields replaced; unknown names raise ValueError listing the fields."""
        names = {f.name for f in fields(self)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ValueError(f"unknown simulator parameter(s) {', '.join(bad)}; known: {', '.join(sorted(names))}")
        return replace(self, **overrides)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Presets: a name -> overrides of the defaults (the defaults are the control, medium SBR).
PRESETS: dict[str, dict[str, Any]] = {
    "control": {},
    "control-low": {"fold": (1.1, 1.5)},
    "control-high": {"fold": (1.8, 3.0)},
    "hela": {"texture": 0.15, "fold": (1.15, 1.7), "docked_density": 1.0},
    "cd63": {"fold": (2.0, 4.0), "tau_s": (0.3, 0.9), "events_per_frame": 0.12},
    "bafilomycin": {"docked_density": 8.0, "docked_static": 0.2, "docked_lifetime_s": 12.0,
                    "docked_diffusion": (0.002, 0.03), "docked_blink": 0.35, "docked_amplitude": (0.7, 2.5),
                    "events_per_frame": 0.04},
    "histamine": {"events_per_frame": 0.3},
}


def preset(name: str, **overrides: Any) -> SimParams:
    """The parameters of a preset, with some fields replaced."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return SimParams().with_overrides(**{**PRESETS[name], **overrides})


@dataclass
class Simulation:
    """A simulated movie (T, Y, X) uint16, its ground truth, the cell mask (Y, X) bool and the parameters."""

    movie: np.ndarray
    truth: EventTable
    mask: np.ndarray
    params: SimParams
    seed: int
    bleach: float = 0.0
    clean: np.ndarray | None = field(default=None, repr=False)


# ------------------------------------------------------------------------------------------------
def _uniform(rng: np.random.Generator, r: Range, n: int | None = None) -> Any:
    return rng.uniform(r[0], r[1], n)


def _loguniform(rng: np.random.Generator, r: Range, n: int | None = None) -> Any:
    lo, hi = max(r[0], 1e-12), max(r[1], 1e-12)
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    n = ndi.gaussian_filter(rng.standard_normal(shape), scale, mode="wrap")
    return n / max(float(n.std()), 1e-12)


def _footprint(rng: np.random.Generator, p: SimParams) -> np.ndarray:
    """Soft cell footprint in [0, 1]: a disc with a smooth random outline."""
    h, w = p.height, p.width
    cy, cx = h / 2 + rng.uniform(-0.05, 0.05) * h, w / 2 + rng.uniform(-0.05, 0.05) * w
    yy, xx = np.mgrid[0:h, 0:w]
    theta = np.arctan2(yy - cy, xx - cx)
    radius = p.cell_radius * min(h, w) * np.ones_like(theta)
    for k in range(2, 6):
        radius *= 1 + rng.uniform(0.0, 0.06) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    rho = np.hypot(yy - cy, xx - cx)
    return 1.0 / (1.0 + np.exp((rho - radius) / 1.5))


def _gauss_patch(h: int, w: int, y: float, x: float, sigma: float, amp: float, out: np.ndarray) -> None:
    """Add ``amp·exp(−r²/2σ²)`` at (y, x) into ``out`` (2D), over ±4σ."""
    r = int(math.ceil(4 * sigma)) + 1
    y0, y1 = max(0, int(y) - r), min(h, int(y) + r + 2)
    x0, x1 = max(0, int(x) - r), min(w, int(x) + r + 2)
    if y0 >= y1 or x0 >= x1:
        return
    gy = np.exp(-((np.arange(y0, y1) - y) ** 2) / (2 * sigma * sigma))
    gx = np.exp(-((np.arange(x0, x1) - x) ** 2) / (2 * sigma * sigma))
    out[y0:y1, x0:x1] += amp * np.outer(gy, gx)


def window_mean(frame: np.ndarray, x: float, y: float, size: int = WINDOW) -> float:
    """Mean of the ``size``×``size`` window of a 2D frame centred on the pixel nearest (x, y), clipped."""
    r = size // 2
    cy, cx = int(math.floor(y + 0.5)), int(math.floor(x + 0.5))
    win = frame[max(0, cy - r):cy + r + 1, max(0, cx - r):cx + r + 1]
    return float(win.mean()) if win.size else math.nan


def _background(rng: np.random.Generator, p: SimParams, foot: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """Noise-free membrane + glass background (T, Y, X) float32, bleached, above the offset."""
    shape = (p.height, p.width)
    n1, n2 = (_smooth_noise(rng, shape, p.texture_scale) for _ in range(2))
    fine = _smooth_noise(rng, shape, 1.2)
    scene = np.empty((p.n_frames, p.height, p.width), dtype=np.float32)
    for t in range(p.n_frames):
        phi = p.texture_drift * t / max(1, p.n_frames - 1)
        tex = np.cos(phi) * n1 + np.sin(phi) * n2
        cell = p.cell_level * np.clip(1 + p.texture * tex + 0.06 * fine, 0.12, None)
        scene[t] = decay[t] * (foot * cell + (1 - foot) * p.glass_level)
    return scene


def _add_docked(rng: np.random.Generator, p: SimParams, inside: np.ndarray, decay: np.ndarray,
                scene: np.ndarray) -> None:
    """Docked vesicles / bright foci: static or transient, diffusing slowly, optionally flickering."""
    t_n, h, w = scene.shape
    n = rng.poisson(p.docked_density * len(inside) / 1000.0)
    d_px = p.frame_interval_s / p.pixel_size_um ** 2  # µm²/s -> px² per frame factor
    for _ in range(n):
        y, x = inside[rng.integers(len(inside))] if inside.size else (h / 2, w / 2)
        y, x = float(y) + rng.uniform(-0.5, 0.5), float(x) + rng.uniform(-0.5, 0.5)
        amp = _uniform(rng, p.docked_amplitude) * p.cell_level
        sigma = _uniform(rng, p.docked_sigma)
        step = math.sqrt(2 * _loguniform(rng, p.docked_diffusion) * d_px)
        if rng.random() < p.docked_static:
            start, stop = 0, t_n
        else:
            life = max(3, int(rng.exponential(p.docked_lifetime_s / p.frame_interval_s)))
            start = int(rng.integers(-life, t_n))
            stop = start + life
        walk = np.cumsum(rng.normal(0, step, (t_n, 2)), axis=0)
        flicker = 1 + p.docked_blink * _smooth_noise(rng, (t_n, 1), 3.0)[:, 0]
        for t in range(max(0, start), min(t_n, stop)):
            ramp = min(1.0, (t - start + 1) / 3.0, (stop - t) / 3.0)  # fade in/out over ~3 frames
            a = amp * ramp * max(0.0, float(flicker[t])) * decay[t]
            _gauss_patch(h, w, y + walk[t, 0], x + walk[t, 1], sigma, a, scene[t])


def _render_event(p: SimParams, x: float, y: float, onset: float, tau_f: float, sigma0: float, d_px2: float,
                  n_sub: int = 4) -> list[tuple[int, np.ndarray, tuple[slice, slice]]]:
    """Unit-amplitude event frames: (frame, patch, (rows, cols)), exposure-integrated with ``n_sub`` samples."""
    h, w = p.height, p.width
    first = max(0, int(math.floor(onset)))  # an event begun before the movie shows only its later frames
    out = []
    for k in range(first, p.n_frames):
        s = k + p.exposure * (np.arange(n_sub) + 0.5) / n_sub - onset
        s = s[s >= 0]
        if s.size == 0:
            continue
        var = sigma0 ** 2 + 2 * d_px2 * s
        amp = np.exp(-s / tau_f) * sigma0 ** 2 / var  # peak pixel: intensity conserved while spreading
        if amp.max() < 2e-3 and k > first + 16:
            break
        r = min(int(math.ceil(4 * math.sqrt(var.max()))) + 1, 24)
        y0, y1 = max(0, int(y) - r), min(h, int(y) + r + 2)
        x0, x1 = max(0, int(x) - r), min(w, int(x) + r + 2)
        if y0 >= y1 or x0 >= x1:
            break
        dy2 = ((np.arange(y0, y1) - y) ** 2)[None, :, None]
        dx2 = ((np.arange(x0, x1) - x) ** 2)[None, None, :]
        g = amp[:, None, None] * np.exp(-(dy2 + dx2) / (2 * var[:, None, None]))
        out.append((k, g.sum(axis=0) / n_sub, (slice(y0, y1), slice(x0, x1))))
    return out


def _add_events(rng: np.random.Generator, p: SimParams, inside: np.ndarray, scene: np.ndarray,
                mask: np.ndarray) -> EventTable:
    t_n, h, w = scene.shape
    n = rng.poisson(p.events_per_frame * t_n)
    clean = scene.copy()  # background + docked vesicles: F0 and F are measured against this
    rows: list[tuple[float, ...]] = []
    d_conv = p.frame_interval_s / p.pixel_size_um ** 2
    for _ in range(n):
        if inside.size and rng.random() < p.inside_fraction:
            y, x = inside[rng.integers(len(inside))]
            y, x = float(y) + rng.uniform(-0.5, 0.5), float(x) + rng.uniform(-0.5, 0.5)
        else:
            y, x = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
        onset = rng.uniform(-1.0, t_n - 1)
        fold = _uniform(rng, p.fold)
        tau = _loguniform(rng, p.tau_s)
        sigma0 = _uniform(rng, p.sigma0)
        diff = _loguniform(rng, p.diffusion)
        frames = _render_event(p, x, y, onset, tau / p.frame_interval_s, sigma0, diff * d_conv)
        if not frames:
            continue
        excess = [window_mean(_full(g, sl, h, w), x, y) for _, g, sl in frames]
        k_best = int(np.argmax(excess))
        peak = frames[k_best][0]
        b_peak = window_mean(clean[peak], x, y) + p.offset
        b_before = window_mean(clean[max(0, peak - BEFORE)], x, y) + p.offset
        amp = max(0.0, (fold * b_before - b_peak) / max(excess[k_best], 1e-12))
        for k, g, sl in frames:
            scene[k][sl] += (amp * g).astype(np.float32)
        rows.append((x, y, float(peak), fold, tau, sigma0, diff, onset, amp,
                     float(mask[min(h - 1, int(round(y))), min(w - 1, int(round(x)))])))
    a = np.array(rows, dtype=np.float64).reshape(-1, 10)
    order = np.lexsort((a[:, 0], a[:, 2]))
    a = a[order]
    names = ("fold", "tau", "sigma", "diffusion", "onset", "amplitude", "inside")
    return EventTable(a[:, 0], a[:, 1], a[:, 2], {nm: a[:, 3 + i] for i, nm in enumerate(names)},
                      {"tau": "s", "sigma": "px", "diffusion": "um^2/s"})


def _full(g: np.ndarray, sl: tuple[slice, slice], h: int, w: int) -> np.ndarray:
    """A patch placed in a full-size zero frame (for the window mean around the event)."""
    f = np.zeros((h, w), dtype=np.float64)
    f[sl] = g
    return f


def _camera(rng: np.random.Generator, p: SimParams, scene: np.ndarray) -> np.ndarray:
    """EMCCD: Poisson photo-electrons, gamma EM multiplication, read noise, offset -> uint16."""
    out = np.empty(scene.shape, dtype=np.uint16)
    for t in range(scene.shape[0]):
        lam = np.maximum(scene[t].astype(np.float64), 0) / p.em_gain
        e = rng.poisson(lam)
        if p.em_excess:
            amp = np.where(e > 0, rng.gamma(np.maximum(e, 1), p.em_gain), 0.0)
        else:
            amp = e * p.em_gain
        adu = amp + p.offset + rng.normal(0, p.read_noise, lam.shape)
        out[t] = np.clip(np.rint(adu), 0, 65535).astype(np.uint16)
    return out


BYTES_PER_VOXEL, BYTES_PER_PIXEL = 8.5, 128
"""What :func:`simulate` holds at its peak per voxel of the movie (the float32 scene, the uint16 movie, the
events' work) and per pixel of a frame (one frame's float64 noise): tracemalloc measured 8.1-8.3 bytes per voxel
for 100-400 frames of 200² and 400² px, 9.5 for 60 frames of 96x128 px."""


def memory_needed(params: SimParams, keep_clean: bool = False) -> int:
    """Bytes of memory :func:`simulate` needs for a movie of ``params`` (it holds the whole movie), and 4 more
    per voxel with ``keep_clean`` (the float32 noise-free movie is kept)."""
    pixels = params.height * params.width
    per_voxel = BYTES_PER_VOXEL + (4 if keep_clean else 0)
    return int(per_voxel * params.n_frames * pixels + BYTES_PER_PIXEL * pixels)


def memory_available(cgroup: str = "/sys/fs/cgroup", self_cgroup: str = "/proc/self/cgroup") -> int | None:
    """Bytes of memory this program can have without swapping or being killed: the machine's MemAvailable
    (Linux; else its physical memory), or less where a container or a cluster job limits the program's
    control group (cgroup v2 memory.max - memory.current, v1 memory.limit_in_bytes - usage); None where
    nothing is known."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (AttributeError, ValueError, OSError):
            pass
    for folder in _cgroup_folders(cgroup, self_cgroup):
        for limit, usage in (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes",
                                                                "memory/memory.usage_in_bytes")):
            try:
                with open(os.path.join(folder, limit)) as f:
                    text = f.read().strip()
                if text == "max":
                    continue
                with open(os.path.join(folder, usage)) as f:
                    found.append(max(0, int(text) - int(f.read().strip())))
            except (OSError, ValueError):
                continue
    return min(found) if found else None


def _cgroup_folders(cgroup: str, self_cgroup: str = "/proc/self/cgroup") -> list[str]:
    """The control-group folders whose memory limits hold for this process: in a container, ``cgroup``
    itself; on a host (a cluster job's cgroup v2 group), its group in ``self_cgroup`` and every group above."""
    folders = [cgroup]
    try:
        with open(self_cgroup) as f:
            rel = next((line.strip()[3:] for line in f if line.startswith("0::")), "")
    except OSError:
        rel = ""
    parts = [p for p in rel.split("/") if p and p != ".."]
    folders += [os.path.join(cgroup, *parts[:k]) for k in range(len(parts), 0, -1)]
    return folders


def check_memory(params: SimParams, available: int | None = None, keep_clean: bool = False) -> None:
    """An ExodfError when the movie of ``params`` cannot be simulated in ``available`` bytes (default: what
    :func:`memory_available` says): said before the work, instead of a MemoryError or the system killing the
    program part-way."""
    needed = memory_needed(params, keep_clean)
    available = memory_available() if available is None else available
    if available is not None and needed > available:
        raise ExodfError(f"simulating a {params.n_frames}x{params.height}x{params.width} movie needs about "
                         f"{_gigabytes(needed)} of memory (the simulator holds the whole movie) and this machine "
                         f"has {_gigabytes(available)} available; simulate fewer or smaller frames (--frames, "
                         "--size)")


def _gigabytes(n: int) -> str:
    if n < 1e9:
        return f"{n / 1e6:.3g} MB"
    return f"{n / 1e9:.3g} GB" if n < 1e12 else f"{n / 1e12:,.0f} TB"


def simulate(params: SimParams = SimParams(), seed: int = 0, keep_clean: bool = False,
             progress: Callable[[str, int, int], None] | None = None) -> Simulation:
    """Simulate one movie with ground truth; the same ``params`` and ``seed`` give the same movie.

    Parameters
    ----------
    params
        The model (see :class:`SimParams` and :data:`PRESETS`).
    seed
        Seed of the random generator.
    keep_clean
        Keep the noise-free movie (``Simulation.clean``, float32 above the offset) for tests.
    progress
        Called as ``progress(stage, done, total)``.

    Raises
    ------
    ExodfError
        When the movie needs more memory than this machine has available (:func:`check_memory`).
    """
    p = params
    check_memory(p, keep_clean=keep_clean)
    rng = np.random.default_rng(seed)
    foot = _footprint(rng, p)
    mask = foot > 0.5
    inside = np.argwhere(mask)
    bleach = float(_uniform(rng, p.bleach))
    rate = -math.log(1 - bleach) / max(1, p.n_frames - 1)
    decay = np.exp(-rate * np.arange(p.n_frames))
    if progress:
        progress("background", 0, 3)
    scene = _background(rng, p, foot, decay)
    _add_docked(rng, p, inside, decay, scene)
    if progress:
        progress("events", 1, 3)
    truth = _add_events(rng, p, inside, scene, mask)
    if progress:
        progress("camera", 2, 3)
    movie = _camera(rng, p, scene)
    if progress:
        progress("camera", 3, 3)
    return Simulation(movie, truth, mask, p, seed, bleach, scene if keep_clean else None)
