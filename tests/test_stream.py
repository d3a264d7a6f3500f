"""Frame-streamed inference equals one whole-volume pass of the Keras network."""

from __future__ import annotations

import numpy as np
import pytest

from exodf.model import build_unet
from exodf.stream import StreamingNetwork


@pytest.fixture(scope="module")
def random_net():  # type: ignore[no-untyped-def]
    net = build_unet()
    rng = np.random.default_rng(3)
    for layer in net.layers:
        w = layer.get_weights()
        if w:
            fan_in = np.prod(w[0].shape[:-1])
            layer.set_weights([rng.normal(0, (2 / fan_in) ** 0.5, w[0].shape).astype("float32"),
                               rng.normal(0, 0.05, w[1].shape).astype("float32")])
    return net


@pytest.mark.parametrize("chunk", [1, 3, 8, 40])
def test_stream_equals_whole_volume(random_net, chunk: int) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(0).random((29, 32, 24)).astype(np.float32) * 2
    whole = np.asarray(random_net(x[None, ..., None]))[0]
    out = np.full_like(whole, np.nan)
    nxt = 0
    for t0, probs in StreamingNetwork(random_net).run(x, chunk):
        assert t0 == nxt
        out[t0: t0 + len(probs)] = probs
        nxt = t0 + len(probs)
    assert nxt == 29
    assert np.abs(out - whole).max() < 1e-5


def test_stream_single_frame_and_errors(random_net) -> None:  # type: ignore[no-untyped-def]
    x = np.ones((1, 8, 8), np.float32)
    (t0, p), = list(StreamingNetwork(random_net).run(x, 4))
    np.testing.assert_allclose(p, np.asarray(random_net(x[None, ..., None]))[0], atol=1e-5)
    with pytest.raises(ValueError, match="multiples of 4"):
        list(StreamingNetwork(random_net).run(np.zeros((4, 10, 8), np.float32)))


@pytest.mark.parametrize("keep, chunk", [
    ((slice(10, 14), slice(8, 16), slice(4, 12)), 2),      # a small core deep inside: decoder shrinks
    ((slice(0, 3), slice(0, 5), slice(19, 24)), 3),        # at the first frame and corners, odd sizes
    ((slice(25, 29), slice(13, 32), slice(0, 24)), 40),    # to the last frame, odd start (up-sampling phase)
    ((slice(7, 8), slice(17, 18), slice(2, 3)), 1),        # one voxel
])
def test_stream_keep_equals_that_part_of_whole_volume(random_net, keep, chunk) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(1).random((29, 32, 24)).astype(np.float32) * 2
    whole = np.asarray(random_net(x[None, ..., None]))[0][keep]
    parts = list(StreamingNetwork(random_net).run(x, chunk, keep=keep))
    assert [t0 for t0, _ in parts][0] == keep[0].start
    got = np.concatenate([p for _, p in parts])
    assert got.shape == whole.shape
    assert np.abs(got - whole).max() < 1e-5


def test_stream_keep_computes_less(random_net) -> None:  # type: ignore[no-untyped-def]
    stream = StreamingNetwork(random_net)
    order = stream._plan(40, (64, 64), ((16, 24), (24, 40), (24, 40)))
    area = {n.name: (n.t1 - n.t0) * (n.ys[1] - n.ys[0]) * (n.xs[1] - n.xs[0]) * n.scale ** 2 for n in order}
    assert area["out"] == area["c13"] == 8 * 16 * 16 and area["c12"] == 10 * 18 * 18
    # the input needed is the receptive field measured with an impulse (exodf.tiling.RECEPTIVE_HALO):
    # 12 frames before and 14 after in time; in y/x (34 px) all of this 64-px context
    nodes = {n.name: n for n in order}
    assert (nodes["in"].t0, nodes["in"].t1) == (16 - 12, 24 + 14)
    assert area["in"] == 34 * 64 * 64
    # its cost: the whole pass spends ~0.24 M multiply-accumulates per voxel (0.46 MFLOP, README)
    whole = stream.macs((40, 64, 64))
    assert 0.2e6 < whole / (40 * 64 * 64) < 0.26e6
    assert stream.macs((40, 64, 64), (slice(16, 24), slice(24, 40), slice(24, 40))) < 0.5 * whole
    with pytest.raises(ValueError, match="empty"):
        list(stream.run(np.zeros((4, 8, 8), np.float32), keep=(slice(2, 2), slice(None), slice(None))))
