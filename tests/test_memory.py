"""Memory depends on the frame size, not the movie length (README, Pipeline: Inference; issue 7: bounded memory).

The network's own buffers are measured on the streamed layers, what the pipeline holds in numpy with
tracemalloc, for a short and a 4x longer movie of the same frame size: both stay the same.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest


def _held_bytes(net, frames: np.ndarray, chunk: int) -> int:  # type: ignore[no-untyped-def]
    """Most bytes the streamed layers hold at once (their computed frames not yet released) over a run."""
    from exodf.stream import StreamingNetwork

    held: list[int] = []

    class Spy(StreamingNetwork):
        def _advance(self, order, nodes, n_frames, chunk):  # type: ignore[no-untyped-def]
            super()._advance(order, nodes, n_frames, chunk)
            held.append(sum(int(np.prod(p.shape)) * p.dtype.size for n in order for p in n.parts))

    out = sum(p.shape[0] for _, p in Spy(net).run(frames, chunk=chunk))
    assert out == frames.shape[0]
    return max(held)


def test_streamed_network_holds_the_same_frames_for_any_movie_length() -> None:
    from exodf.model import build_unet

    net = build_unet()  # the layers' buffers do not depend on the weights
    short, long = np.zeros((60, 32, 32), np.float32), np.zeros((240, 32, 32), np.float32)
    held = _held_bytes(net, short, chunk=2)
    assert _held_bytes(net, long, chunk=2) == held
    # a few frames of each layer (its receptive field): less than the first layer's output (32 channels) for
    # the short movie alone
    assert held < 60 * 32 * 32 * 32 * 4
    assert _held_bytes(net, long, chunk=8) > held  # the chunk, not the length, sets it


@pytest.mark.parametrize("tiling", ["context", "candidates"])
def test_detection_memory_does_not_grow_with_the_movie_length(tiling: str, published_net, tmp_path: Path
                                                              ) -> None:  # type: ignore[no-untyped-def]
    """detect_events on a memory-mapped movie without the label volume (what `exodf detect` runs): the numpy
    memory it peaks at is the same for 60 and 240 frames (it would grow by 8.8 MB for the probabilities of the
    added frames, 0.74 MB for their labels), but for candidates' map of 4 x 4-px cells."""
    from exodf.detect import DetectConfig, detect_events
    from exodf.io import read_movie, write_tiff
    from exodf.predict import InferenceConfig
    from exodf.simulate import preset, simulate

    movie = simulate(preset("control", n_frames=240, height=64, width=64), seed=3).movie
    config = DetectConfig(inference=InferenceConfig(tiling=tiling))  # type: ignore[arg-type]
    peaks: dict[int, int] = {}
    found = {}
    # each length twice, its lowest peak kept: the first run also builds what any run needs once (TensorFlow's
    # functions), and tracemalloc counts every thread's allocations (pytest-xdist's messages among them)
    for n in (60, 240, 60, 240):
        path = tmp_path / f"movie_{n}.tif"
        write_tiff(path, movie[:n])
        mapped = read_movie(path)
        assert isinstance(mapped, np.memmap)
        tracemalloc.start()
        try:
            det = detect_events(mapped, published_net, config, keep_labels=False)
            peaks[n] = min(peaks.get(n, 1 << 62), tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert det.segmentation.labels is None
        found[n] = len(det.events)
    assert found[240] > found[60] > 0  # a longer movie, more events: the work did grow
    # context: under a quarter of what the int8 label volume of the 180 added frames would take (0.74 MB);
    # candidates finds its boxes on a map of 4 x 4-px cells of the whole movie (bool, then int32 labels:
    # 0.3 byte per voxel), under a byte per voxel all told (the probabilities would be 12)
    grown = peaks[240] - peaks[60]
    per_voxel = 0.25 if tiling == "context" else 1.0
    assert grown < 180 * 64 * 64 * per_voxel, f"{grown / 1e6:.2f} MB more for 4x the frames (peaks {peaks})"
