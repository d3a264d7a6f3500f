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
