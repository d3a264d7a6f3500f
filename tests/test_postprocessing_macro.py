"""postprocessing/exodf_events.ijm run by real ImageJ 1.x (headless under Xvfb) against exodf's clustering.

Needs Java, ImageJ (Debian: ``apt-get install imagej xvfb default-jre-headless``) and xvfb-run; skips
without them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from exodf.cluster import labels_to_events
from exodf.events import EventTable, read_events
from exodf.fiji import on_virtual_screen
from exodf.io import write_probabilities, write_tiff
from exodf.predict import labels_from_probabilities

REPO = Path(__file__).resolve().parents[1]
MACRO = REPO / "postprocessing" / "exodf_events.ijm"
IJ_JAR = Path(os.environ.get("EXODF_IJ_JAR", "/usr/share/java/ij.jar"))

pytestmark = [
    pytest.mark.fiji,
    pytest.mark.skipif(not IJ_JAR.is_file() or shutil.which("xvfb-run") is None or shutil.which("java") is None,
                       reason="ImageJ 1.x (ij.jar), java or xvfb-run missing: apt-get install imagej xvfb "
                              "default-jre-headless"),
]


def run_macro(probabilities: Path, out: Path, timeout: float = 300) -> EventTable:
    """Run the macro headless on a probability TIFF and read its Results table."""
    log = run_ij(f"input={probabilities} output={out}", timeout)
    assert out.is_file(), log
    return read_events(out)


def run_ij(argument: str, timeout: float = 300) -> str:
    """Run the macro headless with this argument; its log."""
    cmd = on_virtual_screen(["java", "-Xmx2g", "-jar", str(IJ_JAR), "-batch", str(MACRO), argument])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # a macro error opens a dialog that never closes: end our process group
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"ImageJ did not finish within {timeout} s (macro error dialog?)")
    return log


def match(a: EventTable, b: EventTable, max_px: float, max_frames: float) -> int:
    """How many events of ``a`` have an event of ``b`` within max_px in x/y and max_frames in time."""
    found = 0
    for i in range(len(a)):
        d = np.hypot(b.x - a.x[i], b.y - a.y[i])
        ok = (d <= max_px) & (np.abs(b.frame - a.frame[i]) <= max_frames)
        found += int(ok.any())
    return found


def _blob_probabilities(shape: tuple[int, int, int], centres: list[tuple[float, float, float, float]],
                        seed: int = 0) -> np.ndarray:
    """(T, Y, X, 3) probabilities with Gaussian exocytosis blobs (t, y, x, sigma) over a noisy background."""
    rng = np.random.default_rng(seed)
    t, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    exo = np.zeros(shape)
    for ct, cy, cx, s in centres:
        exo += 0.95 * np.exp(-((t - ct) ** 2 / (2 * (s / 2) ** 2) + ((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s)))
    exo = np.clip(exo + rng.uniform(0, 0.05, shape), 0, 0.97)
    spot = (1 - exo) * rng.uniform(0.0, 0.6, shape)
    return np.stack([1 - exo - spot, spot, exo], axis=-1).astype(np.float32)


def test_macro_equals_exodf_clustering_on_synthetic_probabilities(tmp_path: Path) -> None:
    # separate blobs, a touching pair (one component, two mean-shift modes) and a big elongated one
    centres = [(5, 10, 10, 1.5), (6, 30, 40, 2.0), (12, 20, 20, 1.2), (12, 20, 27, 1.2), (20, 40, 12, 3.0),
               (25, 8, 44, 1.0)]
    probs = _blob_probabilities((30, 52, 56), centres)
    labels = labels_from_probabilities(probs)
    expected = labels_to_events(labels, probs[..., 2])
    write_probabilities(tmp_path / "probs.tif", probs)
    got = run_macro(tmp_path / "probs.tif", tmp_path / "events.csv")
    assert len(expected) >= 6
    assert len(got) == len(expected)
    assert np.all(np.diff(got.frame) >= 0)  # in time order, as exodf writes its tables
    header = (tmp_path / "events.csv").read_text().splitlines()[0].split(",")
    assert header[-5:] == ["X", "Y", "Slice", "Score", "Size"]  # exodf's column order
    log = run_ij(f"input={tmp_path / 'probs.tif'}")  # no output=: said, not silently lost
    assert "no output=PATH given" in log and f"done, {len(expected)} events" in log, log
    e, g = expected.sorted(), got.sorted()
    np.testing.assert_allclose(np.c_[g.x, g.y, g.frame], np.c_[e.x, e.y, e.frame], atol=1e-3)
    np.testing.assert_array_equal(g.columns["size"], e.columns["size"])
    np.testing.assert_allclose(g.columns["score"], e.columns["score"], atol=1e-3)  # 3 decimals


@pytest.mark.parametrize("bandwidth", [2, 4])
def test_macro_seeds_as_scikit_learn_at_other_bandwidths(tmp_path: Path, bandwidth: int) -> None:
    """Seeds are the voxels' positions / bandwidth rounded half to even, as numpy rounds (ImageJ's round()
    takes halves up: at bandwidth 2 a third of the events differed)."""
    from exodf.cluster import ClusterConfig

    centres = [(5, 10, 10, 2.5), (12, 30, 40, 3.0), (20, 20, 20, 2.0), (20, 21, 29, 2.0), (25, 40, 12, 3.5)]
    probs = _blob_probabilities((30, 52, 56), centres, seed=1)
    expected = labels_to_events(labels_from_probabilities(probs), probs[..., 2], ClusterConfig(bandwidth=bandwidth))
    write_probabilities(tmp_path / "probs.tif", probs)
    log = run_ij(f"input={tmp_path / 'probs.tif'} output={tmp_path / 'events.csv'} bandwidth={bandwidth}")
    got = read_events(tmp_path / "events.csv") if (tmp_path / "events.csv").is_file() else None
    assert got is not None, log
    assert len(expected) >= len(centres) and len(got) == len(expected)
    e, g = expected.sorted(), got.sorted()
    np.testing.assert_allclose(np.c_[g.x, g.y, g.frame], np.c_[e.x, e.y, e.frame], atol=1e-3)


def _lone_voxels(scattered: bool) -> np.ndarray:
    """(T, Y, X, 3) probabilities of two pairs of lone exocytosis voxels (6 px, then 6 frames apart) and,
    if ``scattered``, 25 small groups of 1-4 voxels further down (groups join within two bandwidths)."""
    shape = (40, 80, 48)
    rng = np.random.default_rng(5)
    exo = np.zeros(shape, dtype=np.float32)
    exo[5, 5, 5] = exo[5, 5, 11] = 0.9  # the same frame, 6 px apart
    exo[20, 5, 40] = exo[26, 5, 40] = 0.9  # the same place, 6 frames apart
    for _ in range(25 if scattered else 0):
        t, y, x = rng.integers(0, 40), rng.integers(30, 80), rng.integers(0, 48)
        for _ in range(int(rng.integers(1, 4))):
            exo[min(39, t + rng.integers(0, 4)), min(79, y + rng.integers(0, 5)), min(47, x + rng.integers(0, 5))] = 0.9
    return np.stack([1 - exo, np.zeros(shape, np.float32), exo], axis=-1)


@pytest.mark.parametrize("scattered", [True, False])
def test_macro_seeds_as_one_global_meanshift(tmp_path: Path, scattered: bool) -> None:
    """Seeds are chosen for all the voxels at once, as the original's one scikit-learn MeanShift: bins of the
    bandwidth grid, or the voxels themselves when every voxel has a bin of its own (only then are two lone
    voxels 6 px apart two events; among other voxels they are one event between them)."""
    import warnings

    from sklearn.cluster import MeanShift

    probs = _lone_voxels(scattered)
    labels = labels_from_probabilities(probs)
    expected = labels_to_events(labels, probs[..., 2])
    with warnings.catch_warnings():  # "Binning data failed": every voxel has its own bin
        warnings.simplefilter("ignore", UserWarning)
        ms = MeanShift(bandwidth=5, bin_seeding=True).fit(np.argwhere(labels == 2).astype(float))
    members = np.bincount(ms.labels_, minlength=len(ms.cluster_centers_))
    centres = ms.cluster_centers_[members > 0]
    e = expected.sorted()
    np.testing.assert_allclose(e.coords(), centres[np.lexsort(centres[:, ::-1].T)], atol=1e-9)
    write_probabilities(tmp_path / "probs.tif", probs)
    g = run_macro(tmp_path / "probs.tif", tmp_path / "events.csv").sorted()
    assert len(g) == len(e), (len(g), len(e))
    np.testing.assert_allclose(np.c_[g.x, g.y, g.frame], np.c_[e.x, e.y, e.frame], atol=1e-3)
    np.testing.assert_array_equal(g.columns["size"], e.columns["size"])
    pair = (g.y < 20) & (g.frame < 10)
    if scattered:  # one event of both voxels, between them
        assert pair.sum() == 1 and g.columns["size"][pair][0] == 2 and 5 < g.x[pair][0] < 11
    else:
        assert sorted(g.x[pair]) == pytest.approx([5, 11]) and len(g) == 4


def test_macro_reads_deepimagej_layout_and_one_channel(tmp_path: Path) -> None:
    probs = _blob_probabilities((20, 40, 40), [(6, 12, 12, 1.5), (13, 28, 25, 2.0)], seed=1)
    expected = labels_to_events(labels_from_probabilities(probs), probs[..., 2]).sorted()
    # deepImageJ: time on z-slices, channels C
    write_tiff(tmp_path / "zcyx.tif", np.ascontiguousarray(np.moveaxis(probs, -1, 1)), axes="ZCYX")
    got = run_macro(tmp_path / "zcyx.tif", tmp_path / "zcyx.csv").sorted()
    np.testing.assert_allclose(np.c_[got.x, got.y, got.frame], np.c_[expected.x, expected.y, expected.frame],
                               atol=1e-3)
    # the exocytosis channel alone, thresholded at 0.5: the same blobs (their cores exceed 0.5)
    write_tiff(tmp_path / "exo.tif", np.ascontiguousarray(probs[..., 2]), axes="ZYX")
    one = run_macro(tmp_path / "exo.tif", tmp_path / "exo.csv").sorted()
    assert len(one) == 2
    assert match(expected, one, 1.5, 1.0) == 2


def test_macro_writes_a_header_for_no_event_and_nothing_on_failure(tmp_path: Path) -> None:
    # an all-background map, in a folder with spaces, paths given without brackets and with them
    probs = np.zeros((6, 24, 24, 3), np.float32)
    probs[..., 0] = 1
    folder = tmp_path / "cell 1"
    folder.mkdir()
    write_probabilities(folder / "probs map.tif", probs)
    for argument in (f"input={folder / 'probs map.tif'} output={folder / 'no events.csv'}",
                     f"input=[{folder / 'probs map.tif'}] output=[{folder / 'no events.txt'}]"):
        log = run_ij(argument)
        assert "0 events in 6 frames" in log, log
    # the header of a table with events (row numbers first), as exodf writes an empty one
    assert (folder / "no events.csv").read_text().splitlines() == [" ,X,Y,Slice,Score,Size"]
    assert (folder / "no events.txt").read_text().splitlines() == [" \tX\tY\tSlice\tScore\tSize"]
    assert len(read_events(folder / "no events.csv")) == 0
    # a missing input: a clear message, and no output file (an older one is removed: no stale result)
    stale = folder / "no events.csv"
    log = run_ij(f"input=[{folder / 'missing.tif'}] output=[{stale}]")
    assert "missing.tif not found" in log, log
    assert not stale.exists()
    # the movie instead of the model's output, and a 2-channel image: refused, naming the image
    from exodf.io import write_tiff

    write_tiff(folder / "movie.tif", np.random.default_rng(0).integers(100, 1000, (6, 24, 24)).astype(np.uint16))
    log = run_ij(f"input=[{folder / 'movie.tif'}] output=[{stale}]")
    assert "movie.tif is a 16-bit image, not the model's 32-bit probabilities" in log, log
    write_tiff(folder / "movie32.tif", np.random.default_rng(0).uniform(100, 1000, (6, 24, 24)).astype(np.float32))
    log = run_ij(f"input=[{folder / 'movie32.tif'}] output=[{stale}]")
    assert "movie32.tif holds values from" in log and "not probabilities" in log, log
    write_probabilities(folder / "two.tif", probs[..., 1:])
    log = run_ij(f"input=[{folder / 'two.tif'}] output=[{stale}]")
    assert "two.tif has 2 channels" in log, log
    assert not stale.exists()


@pytest.mark.weights
def test_macro_matches_exodf_events_on_a_simulated_movie(tmp_path: Path, published_net) -> None:
    from exodf.detect import detect_events
    from exodf.simulate import SimParams, simulate

    sim = simulate(SimParams(n_frames=80, height=96, width=96, events_per_frame=0.3), seed=4)
    probs = np.zeros((80, 3, 96, 96), np.float32)
    det = detect_events(sim.movie, published_net, probabilities_out=probs)
    write_probabilities(tmp_path / "probs.tif", np.moveaxis(probs, 1, -1))
    got = run_macro(tmp_path / "probs.tif", tmp_path / "events.csv")
    n = len(det.events)
    assert n >= 15
    matched = match(det.events, got, 1.5, 1.0)
    assert matched >= 0.95 * n, f"{matched} of {n} exodf events found by the macro"
    assert abs(len(got) - n) <= 0.05 * n


def test_macro_says_what_is_wrong_with_images_that_are_no_model_output(tmp_path: Path) -> None:
    """One frame (it hung: Stack.getStatistics on a single image), the classes interleaved in a plain stack
    (it ran for hours on a million 'exocytosis' voxels), classes on z with time on t, an unreadable file."""
    import tifffile

    from exodf.io import write_tiff

    probs = _blob_probabilities((12, 32, 32), [(5, 15, 15, 1.5)])  # (T, Y, X, 3)
    one = tmp_path / "one_frame.tif"
    write_tiff(one, probs[5, ..., 2], axes="YX")
    log = run_ij(f"input=[{one}] output=[{tmp_path / 'one.csv'}]", timeout=120)
    assert "done, 1 events in 1 frames" in log, log
    flat = tmp_path / "interleaved.tif"  # 36 images: t0 background, t0 spot, t0 exocytosis, t1 ...
    write_tiff(flat, np.ascontiguousarray(probs.reshape(12, 32, 32, 3).transpose(0, 3, 1, 2).reshape(36, 32, 32)),
               axes="ZYX")
    log = run_ij(f"input=[{flat}] output=[{tmp_path / 'flat.csv'}]", timeout=120)
    assert "more than 5 % of the voxels of interleaved.tif are exocytosis" in log, log
    assert "a plain stack of 3 x 12 images holds the 3 classes interleaved" in log, log
    assert not (tmp_path / "flat.csv").exists()
    on_z = tmp_path / "classes_on_z.tif"  # T=12 frames, Z=3 slices (the classes), no channels
    tifffile.imwrite(on_z, np.ascontiguousarray(probs.transpose(0, 3, 1, 2)), imagej=True,
                     metadata={"axes": "TZYX"})
    log = run_ij(f"input=[{on_z}] output=[{tmp_path / 'z.csv'}]", timeout=120)
    assert "both z-slices and frames" in log and "are the 3 the classes? make them channels" in log, log
    bad = tmp_path / "channels_last.tif"
    tifffile.imwrite(bad, probs, photometric="rgb")  # (T, Y, X, 3) float RGB: a TIFF ImageJ cannot open
    log = run_ij(f"input=[{bad}] output=[{tmp_path / 'bad.csv'}]", timeout=120)
    assert "could not open" in log and "channels_last.tif" in log, log
