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


@pytest.mark.weights
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_stream_in_reduced_precision_stays_close(published_net, dtype: str) -> None:  # type: ignore[no-untyped-def]
    from exodf.normalize import normalize_frames
    from exodf.simulate import preset, simulate

    movie = simulate(preset("control", n_frames=24, height=48, width=48, events_per_frame=0.5), seed=2).movie
    x = normalize_frames(movie).astype(np.float32)
    exact = np.concatenate([p for _, p in StreamingNetwork(published_net).run(x, 4)])
    parts = list(StreamingNetwork(published_net, dtype).run(x, 4))
    low = np.concatenate([p for _, p in parts])
    assert low.dtype == np.float32 and low.shape == exact.shape
    assert np.allclose(low.sum(-1), 1, atol=1e-5)  # the softmax is taken in float32
    diff = np.abs(low - exact)
    assert diff.mean() < 1e-3, diff.mean()  # measured: 5e-5 (bfloat16), 2e-5 (float16)
    assert not np.array_equal(low, exact)  # it really computed in dtype
    # labels change only where two classes are nearly tied
    assert (low.argmax(-1) == exact.argmax(-1)).mean() > 0.999
    # a kept part equals that part of the reduced-precision whole pass as in float32
    keep = (slice(5, 9), slice(8, 20), slice(30, 44))
    part = np.concatenate([p for _, p in StreamingNetwork(published_net, dtype).run(x, 3, keep=keep)])
    np.testing.assert_allclose(part, low[keep], atol=1e-2)


def test_stream_refuses_unknown_dtype(random_net) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, float16"):
        StreamingNetwork(random_net, "float64")


def test_native_dtype_reads_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    from exodf import stream

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(stream, "_cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert stream.native_dtype("float32") and stream.native_dtype("bfloat16")
    assert not stream.native_dtype("float16")
    monkeypatch.setattr(stream, "_cpu_flags", lambda: {"avx2"})
    assert not stream.native_dtype("bfloat16")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert stream.native_dtype("bfloat16") and stream.native_dtype("float16")
