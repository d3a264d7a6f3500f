"""Every weight format of the model package, written from one Keras network, and checked against it.

- ``keras_hdf5``: the free-input-size Keras network saved as a Keras HDF5 model (the parent format);
- ``tensorflow_saved_model_bundle``: a TF 2 SavedModel whose ``serve`` (and ``serving_default``)
  signature returns ``{"probabilities": ...}``, zipped;
- ``onnx``: the PyTorch expression of the network exported at opset 17 with free b/t/y/x sizes;
- ``torchscript``: the traced PyTorch expression.

All take and return channels-last float32 ``(b, t, y, x, c)``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["WEIGHT_FILES", "INPUT_ID", "OUTPUT_ID", "ONNX_OPSET", "write_weights", "run_format",
           "deterministic_zip", "library_versions"]

INPUT_ID = "movie"
OUTPUT_ID = "probabilities"
ONNX_OPSET = 17
WEIGHT_FILES = {
    "keras_hdf5": "weights/exodeepfinder_keras.h5",
    "tensorflow_saved_model_bundle": "weights/exodeepfinder_tf_saved_model.zip",
    "onnx": "weights/exodeepfinder.onnx",
    "torchscript": "weights/exodeepfinder_torchscript.pt",
}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def library_versions() -> dict[str, str]:
    """Versions recorded in the rdf (TensorFlow, PyTorch, ONNX opset)."""
    import tensorflow as tf
    import torch

    return {"tensorflow": tf.__version__.split("+")[0], "pytorch": torch.__version__.split("+")[0]}


def deterministic_zip(files: dict[str, bytes], path: str | os.PathLike[str]) -> None:
    """Write ``files`` (archive name -> bytes) as a zip whose bytes depend on the contents only."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:
            for name in sorted(files):
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                info.create_system = 3
                zf.writestr(info, files[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)


def _zip_dir(folder: Path, path: Path, skip: tuple[str, ...] = ()) -> None:
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name not in skip}
    deterministic_zip(files, path)


def _write_keras(net: "keras.Model", path: Path) -> None:
    with atomic_path(path) as tmp:
        h5 = Path(str(tmp) + ".h5")
        net.save(h5)
        os.replace(h5, tmp)


def _write_saved_model(net: "keras.Model", path: Path) -> None:
    import tensorflow as tf
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(net)

    def serve(movie: Any) -> dict[str, Any]:
        return {OUTPUT_ID: net(movie, training=False)}

    spec = tf.TensorSpec((None, None, None, None, 1), tf.float32, name=INPUT_ID)
    archive.add_endpoint("serve", tf.function(serve), input_signature=[spec])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "saved_model"
        archive.write_out(str(folder), verbose=False)
        # fingerprint.pb (optional, TF >= 2.12) holds a random id: left out so that the zip is reproducible
        _zip_dir(folder, path, skip=("fingerprint.pb",))


def _write_onnx(module: Any, path: Path) -> None:
    import torch

    example = torch.zeros((1, 8, 32, 32, 1), dtype=torch.float32)
    dyn = {0: "b", 1: "z", 2: "y", 3: "x"}
    with atomic_path(path) as tmp:
        torch.onnx.export(module, (example,), str(tmp), input_names=[INPUT_ID], output_names=[OUTPUT_ID],
                          dynamic_axes={INPUT_ID: dyn, OUTPUT_ID: dyn}, opset_version=ONNX_OPSET,
                          do_constant_folding=True, dynamo=False)


def _write_torchscript(module: Any, path: Path) -> None:
    import torch

    example = torch.zeros((1, 8, 32, 32, 1), dtype=torch.float32)
    with torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(_fixed_serialization_id(buf.getvalue()))


def _fixed_serialization_id(data: bytes) -> bytes:
    """Replace the random ``.data/serialization_id`` of a PyTorch archive by one derived from its contents.

    The record is stored uncompressed; it is overwritten in place (same length) and its CRC-32 updated in
    the local and the central header, so the archive stays valid and becomes reproducible.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = next((i for i in zf.infolist() if i.filename.endswith("/.data/serialization_id")), None)
        if info is None or info.compress_type != zipfile.ZIP_STORED:
            return data
    out = bytearray(data)
    name = info.filename.encode()
    local = info.header_offset
    start = local + 30 + int.from_bytes(out[local + 26:local + 28], "little") \
        + int.from_bytes(out[local + 28:local + 30], "little")
    size = info.file_size
    rest = bytes(out[:start]) + bytes(out[start + size:])
    new_id = str(int(hashlib.sha256(rest).hexdigest(), 16))[:size].encode()
    out[start:start + size] = new_id
    crc = (zlib.crc32(new_id) & 0xFFFFFFFF).to_bytes(4, "little")
    out[local + 14:local + 18] = crc
    central = _central_header(bytes(out), name)
    out[central + 16:central + 20] = crc
    return bytes(out)


def _central_header(data: bytes, name: bytes) -> int:
    pos = data.rfind(name)
    while pos >= 0:
        if data[pos - 46:pos - 42] == b"PK\x01\x02":
            return pos - 46
        pos = data.rfind(name, 0, pos)
    raise ValueError("PyTorch archive without a central directory entry for its serialization id")


def write_weights(net: "keras.Model", package_dir: Path) -> dict[str, Path]:
    """Write all four weight formats of ``net`` under ``package_dir``; returns format -> path."""
    from .torch_net import torch_from_keras

    paths = {fmt: package_dir / rel for fmt, rel in WEIGHT_FILES.items()}
    paths["keras_hdf5"].parent.mkdir(parents=True, exist_ok=True)
    _write_keras(net, paths["keras_hdf5"])
    _write_saved_model(net, paths["tensorflow_saved_model_bundle"])
    module = torch_from_keras(net)
    _write_onnx(module, paths["onnx"])
    _write_torchscript(module, paths["torchscript"])
    return paths


def run_format(fmt: str, path: Path, x: np.ndarray) -> np.ndarray:
    """Run one written weight file on ``x`` (b, t, y, x, 1) float32 with its own runtime.

    keras_hdf5 through Keras, the SavedModel through ``tf.saved_model.load`` (its ``serve`` signature's
    dict), ONNX through onnxruntime, TorchScript through ``torch.jit.load``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if fmt == "keras_hdf5":
        import keras

        return np.asarray(keras.models.load_model(path, compile=False)(x, training=False))
    if fmt == "tensorflow_saved_model_bundle":
        import tensorflow as tf

        with tempfile.TemporaryDirectory() as tmp:
            with zipfile.ZipFile(path) as zf:
                zf.extractall(tmp)
            loaded = tf.saved_model.load(tmp)
            out = loaded.signatures["serving_default"](**{INPUT_ID: tf.constant(x)})
            if not isinstance(out, dict) or OUTPUT_ID not in out:
                raise ValueError(f"{path}: the SavedModel's signature does not return a dict with {OUTPUT_ID!r}")
            res = np.asarray(out[OUTPUT_ID])
            del loaded
        return res
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(sess.run([OUTPUT_ID], {INPUT_ID: x})[0])
    if fmt == "torchscript":
        import torch

        module = torch.jit.load(str(path), map_location="cpu").eval()
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()
    raise ValueError(f"run_format: unknown weight format {fmt!r}; one of {sorted(WEIGHT_FILES)}")

