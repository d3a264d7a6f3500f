"""``--tiling original`` against the referee in ../shared/reference (published weights): it reproduces the
original program, its labels voxel for voxel and its events.

(A module of its own, the suite's longest: pytest-xdist runs it beside test_detect.py's whole-movie pass.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exodf.detect import DetectConfig, detect_events
from exodf.evaluate import match_events
from exodf.events import read_events
from exodf.io import read_movie
from exodf.predict import InferenceConfig

pytestmark = [pytest.mark.slow, pytest.mark.weights]


@pytest.fixture(scope="module")
def original_mode(reference_dir: Path, published_net):  # type: ignore[no-untyped-def]
    movie = read_movie(reference_dir / "movie.tif")
    return detect_events(movie, published_net, DetectConfig(inference=InferenceConfig(tiling="original")))


def test_original_tiling_reproduces_the_original_labels(original_mode, reference_dir: Path) -> None:
    ref = np.load(reference_dir / "original_labels.npz")["labels"]
    ours = original_mode.segmentation.labels
    assert ours.shape == ref.shape
    for cls in (1, 2):
        a, b = ref == cls, ours == cls
        both = np.count_nonzero(a & b)
        # README: 100.0 % agree both ways (a few voxels may flip on another CPU's arithmetic)
        assert both / np.count_nonzero(a) >= 0.999, f"class {cls}: original's voxels found by exodf"
        assert both / np.count_nonzero(b) >= 0.999, f"class {cls}: exodf's voxels present in the original"


def test_original_tiling_reproduces_the_original_events(original_mode, reference_dir: Path) -> None:
    ref = read_events(reference_dir / "original_events.xml")
    m = match_events(original_mode.events, ref, max_distance=1.5, dt_min=-1, dt_max=1, one_to_one=True)
    assert len(original_mode.events) == len(ref) == 67
    assert m.f1 == 1.0, m.as_dict()  # README: identical events
