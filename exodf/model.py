"""The DeepFinder 3D U-Net of ExoDeepFinder in Keras 3, with any input size.

Axes are (t, y, x, channel). Pooling and up-sampling act on y and x only: time is never pooled, so
y and x must be multiples of 4 and t can be any length.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ExodfError

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["build_unet", "load_network", "N_CLASSES", "CLASS_NAMES", "SPATIAL_MULTIPLE"]

N_CLASSES = 3
CLASS_NAMES = ("background", "bright spot", "exocytosis")
SPATIAL_MULTIPLE = 4  # two (1, 2, 2) poolings


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def build_unet(n_classes: int = N_CLASSES, input_shape: tuple[int | None, int | None, int | None] = (None, None, None)
               ) -> "keras.Model":
    """Build the ExoDeepFinder network (untrained).

    The layer sequence is the one of the published model, so weights transfer layer by layer.
    """
    keras = _keras()
    L = keras.layers

    def conv(n: int, k: int = 3, act: str = "relu") -> Any:
        return L.Conv3D(n, (k, k, k), padding="same", activation=act)

    inp = keras.Input(shape=(*input_shape, 1), name="input")
    x = conv(32)(inp)
    high = conv(32)(x)
    x = L.MaxPooling3D((1, 2, 2))(high)
    x = conv(48)(x)
    mid = conv(48)(x)
    x = L.MaxPooling3D((1, 2, 2))(mid)
    for _ in range(4):
        x = conv(64)(x)
    x = L.UpSampling3D((1, 2, 2))(x)
    x = conv(64, 2)(x)
    x = L.Concatenate()([x, mid])
    x = conv(48)(x)
    x = conv(48)(x)
    x = L.UpSampling3D((1, 2, 2))(x)
    x = conv(48, 2)(x)
    x = L.Concatenate()([x, high])
    x = conv(32)(x)
    x = conv(32)(x)
    out = L.Conv3D(n_classes, (1, 1, 1), padding="same", activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name="exodeepfinder")


def _conv_layers(model: "keras.Model") -> list[Any]:
    return [l for l in model.layers if l.__class__.__name__ == "Conv3D"]


def load_network(path: str | os.PathLike[str]) -> "keras.Model":
    """Load weights into a free-input-size network.

    Accepts the published Keras 2 full-model HDF5 (``net_weights_FINAL.h5``), a Keras weights file
    (``*.weights.h5``, as written by ``exodf train``) or a full ``.keras`` model.
    """
    from .events import TIFF_SIGNATURES

    keras = _keras()
    p = Path(path)
    if p.is_dir():
        inside = [f for pattern in ("*.h5", "*.keras", "*/*.weights.h5") for f in sorted(p.glob(pattern))]
        raise ExodfError(f"{p}: a folder, not a weights file; give one of the weights files in it ("
                         + (", ".join(str(f) for f in inside[:4]) if inside else "it holds none")
                         + "; exodf train writes model.weights.h5, the last, and best.weights.h5)")
    if not p.is_file():
        raise ExodfError(f"{p}: weights file not found; give --weights PATH to an .h5/.keras file, or omit it "
                         "to use the published model")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head != b"\x89HDF\r\n\x1a\n" and head[:4] != b"PK\x03\x04":
        kind = " (a TIFF image?)" if head[:4] in TIFF_SIGNATURES else ""
        raise ExodfError(f"{p}: not a Keras weights file{kind} (neither HDF5, .h5, nor a .keras archive); give "
                         "the published net_weights_FINAL.h5 or weights written by exodf train (*.weights.h5)")
    net = build_unet()
    if p.name.endswith(".weights.h5"):
        try:
            net.load_weights(p)
        except Exception as e:
            raise ExodfError(f"{p}: these weights do not fit the ExoDeepFinder network ({e})") from None
        return _finite(net, p)
    try:
        stored = keras.models.load_model(p, compile=False)
    except Exception as e:
        raise ExodfError(f"{p}: cannot be loaded as a Keras model ({type(e).__name__}: {e}); give the published "
                         "net_weights_FINAL.h5 or weights written by exodf train") from None
    src, dst = _conv_layers(stored), _conv_layers(net)
    shapes_src = [[w.shape for w in l.get_weights()] for l in src]
    shapes_dst = [[tuple(w.shape) for w in l.get_weights()] for l in dst]
    if [[tuple(s) for s in ws] for ws in shapes_src] != shapes_dst:
        raise ExodfError(f"{p}: this model is not an ExoDeepFinder network (its convolution layers differ); "
                         "give weights of the published architecture")
    for s, d in zip(src, dst):
        d.set_weights(s.get_weights())
    return _finite(net, p)


def _finite(net: "keras.Model", path: Path) -> "keras.Model":
    """Refuse weights holding NaN or infinity (a training run that diverged): they detect nothing."""
    import numpy as np

    if not all(np.isfinite(w).all() for w in net.get_weights()):
        raise ExodfError(f"{path}: these weights hold NaN or infinite values (the training that wrote them "
                         "diverged); use the weights of an earlier stage or train again with a lower "
                         "--learning-rate")
    return net
