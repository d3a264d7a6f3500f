"""Run the network frame-streamed along time: a whole-volume pass without the whole volume in memory.

Time is never pooled in the ExoDeepFinder network, so every layer is either local in time (ReLU, the
(1, 2, 2) pooling and up-sampling, concatenation) or a convolution over 1, 2 or 3 consecutive frames.
Feeding the movie a few frames at a time, each layer computes the output frames its input already
determines and keeps only the input frames its consumers will still need. The result equals one pass over
the whole movie (the network's own 'same' zero padding at the first and last frame included) with no
recomputation in time, and memory that depends on the frame size, not on the movie's length.

When only part of the output is wanted (a tile's core inside its halo of context), each layer computes
only the frames and pixels that part depends on: the encoder still sees the whole input, but the decoder's
layers shrink towards the kept region. The kept values are those of the whole pass.

The layers can compute in bfloat16 or float16 (``dtype``) instead of float32: weights and activations are
stored in that type, the convolutions accumulate in float32 inside oneDNN and cuDNN, and the softmax is
taken in float32. Faster where the hardware has such arithmetic; the probabilities change slightly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["StreamingNetwork", "DTYPES", "native_dtype"]

DTYPES = ("float32", "bfloat16", "float16")

Span = tuple[int, int]  # [start, stop) along one axis


@dataclass
class _Node:
    name: str
    op: str  # input | conv | pool | up | concat
    inputs: list[str]
    kernel: Any = None
    bias: Any = None
    k: int = 1  # temporal (and spatial) kernel size of a conv
    act: str = "relu"
    scale: int = 1  # pixels of the input per pixel of this node's output
    # what is computed of this node's output: frames [t0, t1), pixels ys × xs (its own resolution)
    t0: int = 0
    t1: int = 0
    ys: Span = (0, 0)
    xs: Span = (0, 0)
    size: Span = (0, 0)  # (Y, X) of the whole output at this node's resolution
    done: int = 0  # output frames [t0, done) computed so far
    # output frames [start, done) still needed by consumers, as computed: consecutive (1, n, y, x, c)
    # tensors (appending or releasing frames copies nothing)
    parts: list[Any] = field(default_factory=list)
    start: int = 0
    consumers: list["_Node"] = field(default_factory=list)

    @property
    def before(self) -> int:  # frames (and pixels) before t that output t needs
        return 1 if self.op == "conv" and self.k == 3 else 0

    @property
    def after(self) -> int:  # frames (and pixels) after t that output t needs
        return 1 if self.op == "conv" and self.k in (2, 3) else 0

    def need(self) -> tuple[Span, Span, Span]:
        """Frames and pixels of its source(s) this node needs (source coordinates; outside it: zeros)."""
        t = (self.t0 - self.before, self.t1 + self.after)
        if self.op == "pool":
            return t, (2 * self.ys[0], 2 * self.ys[1]), (2 * self.xs[0], 2 * self.xs[1])
        if self.op == "up":
            return t, (self.ys[0] // 2, (self.ys[1] + 1) // 2), (self.xs[0] // 2, (self.xs[1] + 1) // 2)
        return (t, (self.ys[0] - self.before, self.ys[1] + self.after),
                (self.xs[0] - self.before, self.xs[1] + self.after))


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


def native_dtype(dtype: str) -> bool:
    """Whether this machine computes ``dtype`` natively: always float32; bfloat16 and float16 on a GPU, or on
    a CPU with bfloat16 (AVX512_BF16, AMX-BF16) or float16 (AVX512_FP16, AMX-FP16) instructions. Elsewhere
    TensorFlow emulates them, slower than float32."""
    if dtype == "float32":
        return True
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return True
    wanted = {"bfloat16": {"avx512_bf16", "amx_bf16"}, "float16": {"avx512_fp16", "amx_fp16"}}[dtype]
    return bool(_cpu_flags() & wanted)


def _cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return {w for line in f if line.startswith("flags") for w in line.split(":", 1)[1].split()}
    except OSError:
        return set()


def _union(spans: list[Span], n: int) -> Span:
    return max(0, min(s[0] for s in spans)), min(n, max(s[1] for s in spans))


class StreamingNetwork:
    """The ExoDeepFinder network evaluated frame-streamed over time.

    Parameters
    ----------
    net
        A Keras model with the ExoDeepFinder layer sequence (as built by :func:`exodf.model.build_unet`).
    dtype
        What the layers compute in: ``"float32"`` (default, the network as trained), ``"bfloat16"`` or
        ``"float16"``. The output is float32 probabilities either way.
    """

    def __init__(self, net: "keras.Model", dtype: str = "float32") -> None:
        import tensorflow as tf

        if dtype not in DTYPES:
            raise ValueError(f"StreamingNetwork: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self._tf = tf
        self._dtype = tf.as_dtype(dtype)
        self._pool_float32 = False
        try:  # TensorFlow has no CPU max pooling kernel for float16: pool in float32 there (exact)
            tf.nn.max_pool3d(tf.zeros((1, 1, 2, 2, 1), self._dtype), (1, 1, 2, 2, 1), (1, 1, 2, 2, 1), "VALID")
        except tf.errors.NotFoundError:
            self._pool_float32 = True
        self._proto = _graph(net)
        for n in self._proto:
            if n.op == "conv":
                n.kernel = tf.constant(n.kernel, dtype=self._dtype)
                n.bias = tf.constant(n.bias, dtype=self._dtype)

    def _plan(self, n_frames: int, size: Span, keep: tuple[Span, Span, Span]) -> list[_Node]:
        """Fresh nodes in topological order, each with the frames and pixels it must compute for ``keep``."""
        nodes = {n.name: _Node(n.name, n.op, list(n.inputs), n.kernel, n.bias, n.k, n.act) for n in self._proto}
        order = list(nodes.values())
        for n in order:
            for src in n.inputs:
                nodes[src].consumers.append(n)
            if n.inputs:
                s = nodes[n.inputs[0]]
                n.scale = s.scale * 2 if n.op == "pool" else s.scale // 2 if n.op == "up" else s.scale
            n.size = (size[0] // n.scale, size[1] // n.scale)
        for n in reversed(order):
            if not n.consumers:
                (n.t0, n.t1), n.ys, n.xs = keep
                continue
            needs = [c.need() for c in n.consumers]
            n.t0, n.t1 = _union([t for t, _, _ in needs], n_frames)
            n.ys = _union([y for _, y, _ in needs], n.size[0])
            n.xs = _union([x for _, _, x in needs], n.size[1])
        for n in order:
            n.done = n.start = n.t0
        return order

    def macs(self, shape: tuple[int, int, int], keep: tuple[slice, slice, slice] | None = None) -> int:
        """Multiply-accumulates of the convolutions :meth:`run` spends on frames of ``shape`` for ``keep``:
        its plan, costed without computing anything."""
        spans = self._spans(shape, keep)
        return sum(int(np.prod(n.kernel.shape)) * (n.t1 - n.t0) * (n.ys[1] - n.ys[0]) * (n.xs[1] - n.xs[0])
                   for n in self._plan(shape[0], shape[1:], spans) if n.op == "conv")

    @staticmethod
    def _spans(shape: tuple[int, ...], keep: tuple[slice, slice, slice] | None) -> tuple[Span, Span, Span]:
        spans = tuple(s.indices(n)[:2] for s, n in zip(keep or (slice(None),) * 3, shape))
        if any(b <= a for a, b in spans):
            raise ValueError(f"StreamingNetwork: keep {keep} is empty for frames of shape {tuple(shape)}")
        return spans  # type: ignore[return-value]

    def _gather(self, s: _Node, t: Span, ys: Span, xs: Span, n_frames: int) -> Any:
        """Frames ``t`` and pixels ``ys`` × ``xs`` of source ``s``'s output, zeros outside the movie ('same'
        padding of the whole input)."""
        tf = self._tf
        ca, cb = max(t[0], 0), min(t[1], n_frames)
        ya, yb = max(ys[0], 0), min(ys[1], s.size[0])
        xa, xb = max(xs[0], 0), min(xs[1], s.size[1])
        whole_yx = (ya, yb, xa, xb) == (s.ys[0], s.ys[1], s.xs[0], s.xs[1])
        pieces, p0 = [], s.start
        for p in s.parts:
            p1 = p0 + p.shape[1]
            a, b = max(ca, p0), min(cb, p1)
            if a < b:
                if (a, b) == (p0, p1) and whole_yx:
                    pieces.append(p)  # all of it: no copy
                else:
                    pieces.append(p[:, a - p0: b - p0, ya - s.ys[0]: yb - s.ys[0], xa - s.xs[0]: xb - s.xs[0]])
            p0 = p1
        part = pieces[0] if len(pieces) == 1 else tf.concat(pieces, axis=1)
        pads = [[0, 0], [ca - t[0], t[1] - cb], [ya - ys[0], ys[1] - yb], [xa - xs[0], xs[1] - xb], [0, 0]]
        return tf.pad(part, pads) if any(p for pair in pads for p in pair) else part

    def _compute(self, n: _Node, nodes: dict[str, _Node], a: int, b: int, n_frames: int) -> Any:
        tf = self._tf
        src = [nodes[s] for s in n.inputs]
        if n.op == "concat":
            return tf.concat([self._gather(s, (a, b), n.ys, n.xs, n_frames) for s in src], axis=-1)
        _, ys, xs = n.need()
        x = self._gather(src[0], (a - n.before, b + n.after), ys, xs, n_frames)
        if n.op == "pool":
            if self._pool_float32:
                return tf.cast(tf.nn.max_pool3d(tf.cast(x, tf.float32), (1, 1, 2, 2, 1), (1, 1, 2, 2, 1), "VALID"),
                               self._dtype)
            return tf.nn.max_pool3d(x, (1, 1, 2, 2, 1), (1, 1, 2, 2, 1), "VALID")
        if n.op == "up":
            y0, x0 = n.ys[0] - 2 * ys[0], n.xs[0] - 2 * xs[0]
            b, t, h, w, c = x.shape  # nearest-neighbour ×2 in y and x (one tile: 4× faster than two repeats)
            x = tf.reshape(tf.tile(tf.reshape(x, (b, t, h, 1, w, 1, c)), (1, 1, 1, 2, 1, 2, 1)),
                           (b, t, 2 * h, 2 * w, c))
            return x[:, :, y0: y0 + n.ys[1] - n.ys[0], x0: x0 + n.xs[1] - n.xs[0]]
        # conv: 'valid' on the frames and pixels gathered above, which carry the zeros of 'same' padding
        # (TensorFlow pads an even kernel at the end only)
        y = tf.nn.conv3d(x, n.kernel, strides=(1, 1, 1, 1, 1), padding="VALID") + n.bias
        return tf.nn.softmax(tf.cast(y, tf.float32), axis=-1) if n.act == "softmax" else tf.nn.relu(y)

    def _advance(self, order: list[_Node], nodes: dict[str, _Node], n_frames: int, chunk: int) -> None:
        """Compute every frame the input fed so far determines, at most ``chunk`` frames per layer call,
        releasing each input frame as soon as no consumer needs it."""
        moved = True
        while moved:
            moved = False
            for n in order[1:]:
                src = [nodes[s] for s in n.inputs]
                # a complete source holds every frame this node needs (the plan made it so)
                ready = min(n.t1 if s.done >= s.t1 else s.done - n.after for s in src)
                if ready <= n.done:
                    continue
                b = min(ready, n.done + chunk, n.t1)  # a source may run ahead for its other consumers
                y = self._compute(n, nodes, n.done, b, n_frames)
                n.parts.append(y)
                n.done = b
                moved = True
                for s in src:  # release the source's parts that no consumer needs any more
                    need = min(c.done - c.before if c.done < c.t1 else s.done for c in s.consumers)
                    while s.parts and s.start + s.parts[0].shape[1] <= need:
                        s.start += s.parts.pop(0).shape[1]

    def run(self, frames: np.ndarray, chunk: int = 4, progress: Callable[[int, int], None] | None = None,
            keep: tuple[slice, slice, slice] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first frame, probabilities (n, y, x, 3) float32) for consecutive frame ranges.

        ``frames`` is a normalised (T, Y, X) array (Y and X multiples of 4), e.g. a memory map, or any
        object with ``shape`` whose ``frames[a:b]`` gives frames a to b; ``chunk`` frames are fed and computed
        at a time (memory grows with it, speed barely). ``keep`` (frames, rows, columns) restricts the
        output to a part of the volume (default: all of it); only what that part depends on is computed.
        """
        tf = self._tf
        if len(frames.shape) != 3 or frames.shape[1] % 4 or frames.shape[2] % 4:
            raise ValueError(f"StreamingNetwork.run: expected (T, Y, X) with Y, X multiples of 4, got {frames.shape}")
        if chunk < 1:
            raise ValueError(f"StreamingNetwork.run: chunk must be >= 1, got {chunk}")
        n_frames, h, w = frames.shape
        order = self._plan(n_frames, (h, w), self._spans(frames.shape, keep))
        nodes = {n.name: n for n in order}
        inp, out = nodes["in"], nodes["out"]
        whole = inp.ys == (0, h) and inp.xs == (0, w)
        emitted = out.t0
        for t0 in range(inp.t0, inp.t1, chunk):
            t1 = min(inp.t1, t0 + chunk)
            block = frames[t0:t1]
            if not whole:
                block = block[:, inp.ys[0]: inp.ys[1], inp.xs[0]: inp.xs[1]]
            new = tf.cast(tf.constant(np.ascontiguousarray(block, dtype=np.float32)[None, ..., None]), self._dtype)
            inp.parts.append(new)
            inp.done = t1
            self._advance(order, nodes, n_frames, chunk)
            if out.done > emitted:
                # the output has no consumers: its parts are exactly the frames [emitted, done)
                yield emitted, np.concatenate([np.asarray(p[0]) for p in out.parts])
                out.parts, out.start = [], out.done
                emitted = out.done
            if progress is not None:
                progress(t1 - inp.t0, inp.t1 - inp.t0)
        if emitted != out.t1:  # pragma: no cover - the last chunk always flushes every layer
            raise RuntimeError(f"StreamingNetwork.run: emitted frames up to {emitted}, expected {out.t1}")
