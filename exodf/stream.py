"""Run the network frame-streamed along time: a whole-volume pass without the whole volume in memory.

Time is never pooled in the ExoDeepFinder network, so every layer is either local in time (ReLU, the
(1, 2, 2) pooling and up-sampling, concatenation) or a convolution over 1, 2 or 3 consecutive frames.
Feeding the movie a few frames at a time, each layer computes the output frames its input already
determines and keeps only the input frames its consumers will still need. The result equals one pass over
the whole movie (the network's own 'same' zero padding at the first and last frame included) with no
recomputation in time, and memory that depends on the frame size, not on the movie's length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["StreamingNetwork"]


@dataclass
class _Node:
    name: str
    op: str  # input | conv | pool | up | concat
    inputs: list[str]
    kernel: Any = None
    bias: Any = None
    k: int = 1  # temporal (and spatial) kernel size of a conv
    act: str = "relu"
    done: int = 0  # output frames computed so far
    buf: Any = None  # output frames [start, done) still needed by consumers
    start: int = 0
    consumers: list["_Node"] = field(default_factory=list)

    @property
    def before(self) -> int:  # frames before t that output t needs
        return 1 if self.op == "conv" and self.k == 3 else 0

    @property
    def after(self) -> int:  # frames after t that output t needs
        return 1 if self.op == "conv" and self.k in (2, 3) else 0


def _graph(net: "keras.Model") -> list[_Node]:
    convs = [layer for layer in net.layers if layer.__class__.__name__ == "Conv3D"]
    if len(convs) != 15:
        raise ValueError(f"StreamingNetwork: expected the 15 convolutions of ExoDeepFinder, found {len(convs)}")
    it = iter(convs)

    def conv(name: str, src: str, act: str = "relu") -> _Node:
        layer = next(it)
        kernel, bias = layer.get_weights()
        return _Node(name, "conv", [src], kernel, bias, int(kernel.shape[0]), act)

    nodes = [_Node("in", "input", []), conv("c0", "in"), conv("high", "c0"), _Node("p1", "pool", ["high"]),
             conv("c2", "p1"), conv("mid", "c2"), _Node("p2", "pool", ["mid"]),
             conv("c4", "p2"), conv("c5", "c4"), conv("c6", "c5"), conv("c7", "c6"),
             _Node("u1", "up", ["c7"]), conv("c8", "u1"), _Node("cat1", "concat", ["c8", "mid"]),
             conv("c9", "cat1"), conv("c10", "c9"), _Node("u2", "up", ["c10"]), conv("c11", "u2"),
             _Node("cat2", "concat", ["c11", "high"]), conv("c12", "cat2"), conv("c13", "c12"),
             conv("out", "c13", act="softmax")]
    return nodes


class StreamingNetwork:
    """The ExoDeepFinder network evaluated frame-streamed over time.

    Parameters
    ----------
    net
        A Keras model with the ExoDeepFinder layer sequence (as built by :func:`exodf.model.build_unet`).
    """

    def __init__(self, net: "keras.Model") -> None:
        import tensorflow as tf

        self._tf = tf
        self._proto = _graph(net)
        for n in self._proto:
            if n.op == "conv":
                n.kernel = tf.constant(n.kernel)
                n.bias = tf.constant(n.bias)

    def _fresh(self) -> dict[str, _Node]:
        nodes = {n.name: _Node(n.name, n.op, list(n.inputs), n.kernel, n.bias, n.k, n.act) for n in self._proto}
        for n in nodes.values():
            for src in n.inputs:
                nodes[src].consumers.append(n)
        return nodes

    def _frames(self, node: _Node, a: int, b: int, n_frames: int) -> Any:
        """Output frames [a, b) of ``node``; frames outside the movie are zeros ('same' padding in time)."""
        tf = self._tf
        lo, hi = max(a, 0), min(b, n_frames)
        parts = []
        if lo > a:
            parts.append(tf.zeros_like(node.buf[:, :1]) if lo - a == 1 else
                         tf.repeat(tf.zeros_like(node.buf[:, :1]), lo - a, axis=1))
        parts.append(node.buf[:, lo - node.start: hi - node.start])
        if b > hi:
            parts.append(tf.repeat(tf.zeros_like(node.buf[:, :1]), b - hi, axis=1))
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)

    def _compute(self, n: _Node, nodes: dict[str, _Node], a: int, b: int, n_frames: int) -> Any:
        tf = self._tf
        src = [nodes[s] for s in n.inputs]
        if n.op == "concat":
            return tf.concat([self._frames(s, a, b, n_frames) for s in src], axis=-1)
        x = self._frames(src[0], a - n.before, b + n.after, n_frames)
        if n.op == "pool":
            return tf.nn.max_pool3d(x, (1, 1, 2, 2, 1), (1, 1, 2, 2, 1), "VALID")
        if n.op == "up":
            return tf.repeat(tf.repeat(x, 2, axis=2), 2, axis=3)
        # conv: 'same' in y/x (TensorFlow pads an even kernel at the end), 'valid' in time on the frames
        # gathered above (which carry the zero frames at the movie's edges)
        pad = [[0, 0], [0, 0], [1, 1], [1, 1], [0, 0]] if n.k == 3 else \
            [[0, 0], [0, 0], [0, 1], [0, 1], [0, 0]] if n.k == 2 else None
        if pad is not None:
            x = tf.pad(x, pad)
        y = tf.nn.conv3d(x, n.kernel, strides=(1, 1, 1, 1, 1), padding="VALID") + n.bias
        return tf.nn.softmax(y, axis=-1) if n.act == "softmax" else tf.nn.relu(y)

    def _advance(self, order: list[_Node], nodes: dict[str, _Node], n_frames: int, chunk: int) -> None:
        """Compute every frame the input fed so far determines, at most ``chunk`` frames per layer call,
        releasing each input frame as soon as no consumer needs it."""
        tf = self._tf
        moved = True
        while moved:
            moved = False
            for n in order[1:]:
                src = [nodes[s] for s in n.inputs]
                ready = min(s.done for s in src)
                if ready < n_frames:
                    ready -= n.after
                if ready <= n.done:
                    continue
                b = min(ready, n.done + chunk)
                y = self._compute(n, nodes, n.done, b, n_frames)
                n.buf = y if n.buf is None else tf.concat([n.buf, y], axis=1)
                n.done = b
                moved = True
                for s in src:
                    need = min(c.done - c.before for c in s.consumers)
                    drop = max(0, need - s.start)
                    if drop:
                        s.buf = s.buf[:, drop:]
                        s.start += drop

    def run(self, frames: np.ndarray, chunk: int = 4,
            progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first frame, probabilities (n, Y, X, 3) float32) for consecutive frame ranges of ``frames``.

        ``frames`` is a normalised (T, Y, X) array (Y and X multiples of 4), e.g. a memory map; ``chunk``
        frames are fed and computed at a time (memory grows with it, speed barely).
        """
        tf = self._tf
        if frames.ndim != 3 or frames.shape[1] % 4 or frames.shape[2] % 4:
            raise ValueError(f"StreamingNetwork.run: expected (T, Y, X) with Y, X multiples of 4, got {frames.shape}")
        if chunk < 1:
            raise ValueError(f"StreamingNetwork.run: chunk must be >= 1, got {chunk}")
        n_frames = frames.shape[0]
        nodes = self._fresh()
        order = list(nodes.values())
        inp, out = nodes["in"], nodes["out"]
        emitted = 0
        for t0 in range(0, n_frames, chunk):
            t1 = min(n_frames, t0 + chunk)
            new = tf.constant(np.ascontiguousarray(frames[t0:t1], dtype=np.float32)[None, ..., None])
            inp.buf = new if inp.buf is None else tf.concat([inp.buf, new], axis=1)
            inp.done = t1
            self._advance(order, nodes, n_frames, chunk)
            if out.done > emitted:
                yield emitted, np.asarray(out.buf[0, emitted - out.start:])
                out.buf, out.start = None, out.done
                emitted = out.done
            if progress is not None:
                progress(t1, n_frames)
        if emitted != n_frames:  # pragma: no cover - the last chunk always flushes every layer
            raise RuntimeError(f"StreamingNetwork.run: emitted {emitted} of {n_frames} frames")
