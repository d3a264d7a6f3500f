"""``exodf detect --model``: any exported ExoDeepFinder package run through bioimageio.core.

bioimageio.core applies the package's own pre-processing (``scale_range`` per frame) to the whole movie and
runs the weights; exodf only decides where the network looks (its receptive-field tiles, so the result
does not depend on the tile size and equals the built-in path) and turns the probabilities into events
with the same mean-shift as :func:`exodf.detect.detect_events`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from ..detect import WHOLE, DetectConfig, Detection, collect_segmentation, events_from_segmentation
from ..errors import ExodfError, pip_install
from ..predict import SLC, iter_tiled_blocks, original_probabilities

__all__ = ["detect_with_package", "load_package", "PackageNetwork", "AXES"]

AXES = ("batch", "z", "y", "x", "channel")  # the tensor layout of exodf's packages
Progress = Callable[[str, int, int], None]
# ONNX first: fast on CPU and unpacked in memory (bioimageio.core unzips a SavedModel into the working folder)
PRIORITY = ("onnx", "torchscript", "tensorflow_saved_model_bundle", "keras_hdf5")
_PIPELINES: dict[tuple[str, Optional[str]], Any] = {}


def _bioimageio() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # bioimageio.core would pick torch otherwise
    try:
        import bioimageio.core
        import bioimageio.spec
    except ImportError:
        raise ExodfError(f"--model needs bioimageio.core: {pip_install('zoo')}") from None
    return bioimageio


def load_package(model_path: str | os.PathLike[str]) -> Any:
    """The model description of an ``rdf.yaml`` or a package ``.zip``, checked to be an exodf package."""
    _bioimageio()
    from bioimageio.spec import InvalidDescr, load_description

    p = Path(model_path)
    if not p.exists():
        raise ExodfError(f"{p}: model not found; give an rdf.yaml or a bioimage.io .zip (see `exodf package`)")
    descr = load_description(p, perform_io_checks=False)
    if isinstance(descr, InvalidDescr) or getattr(descr, "type", None) != "model":
        errors = getattr(getattr(descr, "validation_summary", None), "errors", None) or []
        first = f": {errors[0].loc} {errors[0].msg}" if errors else ""
        raise ExodfError(f"{p}: not a valid bioimage.io model{first}; check it with `bioimageio validate-format "
                         f"{p}` or rebuild it with `exodf package`")
    if p.suffix.lower() != ".zip":  # an rdf.yaml: its files lie beside it once `exodf package` has built them
        sources = [str(w.source) for _, w in descr.weights if w is not None]
        if sources and not any((p.parent / s).exists() or "://" in s for s in sources):
            raise ExodfError(f"{p}: the package is not built: its weights ({', '.join(sources)}) are missing; run "
                             "`exodf package` first (it writes them beside this rdf.yaml), or give the built .zip")
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise ExodfError(f"{p}: expected one input and one output tensor (an ExoDeepFinder package), got "
                         f"{len(descr.inputs)} and {len(descr.outputs)}")
    for t in (descr.inputs[0], descr.outputs[0]):
        ids = tuple(str(a.id) for a in t.axes)
        if ids != AXES:
            raise ExodfError(f"{p}: tensor {t.id!r} has axes {ids}; exodf runs packages with axes {AXES} "
                             "(those written by `exodf package`)")
    n_classes = len(descr.outputs[0].axes[-1].channel_names)
    if n_classes != 3:
        raise ExodfError(f"{p}: the output has {n_classes} channels; ExoDeepFinder gives 3 class probabilities")
    return descr


def _pipeline(model_path: str | os.PathLike[str], weight_format: Optional[str]) -> Any:
    key = (str(Path(model_path).resolve()), weight_format)
    if key not in _PIPELINES:
        descr = load_package(model_path)
        from bioimageio.core import create_prediction_pipeline
        from bioimageio.core.backends import create_model_adapter

        order = (weight_format,) if weight_format else PRIORITY
        try:
            adapter = create_model_adapter(descr, weight_format_priority_order=order)  # type: ignore[arg-type]
            _PIPELINES[key] = create_prediction_pipeline(descr, model_adapter=adapter)
        except Exception as e:  # the backends raise many types (missing runtime, bad file)
            raise ExodfError(f"{model_path}: cannot load the weights ({type(e).__name__}: {e}); install the "
                             "runtime of one of its weight formats (torch, onnxruntime or tensorflow)") from None
    return _PIPELINES[key]


class PackageNetwork:
    """A package's weights, called like the Keras network: ``net(x (1, t, y, x, 1), training=False)``."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.input_id = pipeline.model_description.inputs[0].id
        self.output_id = pipeline.model_description.outputs[0].id

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        from bioimageio.core import Sample, Tensor

        tensor = Tensor.from_numpy(np.ascontiguousarray(x, dtype=np.float32), dims=AXES)
        sample = Sample(members={self.input_id: tensor}, stat={}, id="tile")
        out = self.pipeline.predict_sample_without_blocking(
            sample, skip_preprocessing=True, skip_input_padding=True, skip_output_cropping=True)
        return np.asarray(out.members[self.output_id].data.transpose(*AXES).values, dtype=np.float32)

    def block(self, block: np.ndarray) -> np.ndarray:
        """Probabilities (t, y, x, 3) of one normalised (t, y, x) block."""
        return np.asarray(self(block[None, ..., None]))[0]

    def preprocess(self, movie: np.ndarray) -> np.ndarray:
        """The package's own pre-processing of a (T, Y, X) movie, returned as (T, Y, X) float32."""
        from bioimageio.core import Sample, Tensor

        tensor = Tensor.from_numpy(np.asarray(movie, dtype=np.float32)[None, ..., None], dims=AXES)
        sample = Sample(members={self.input_id: tensor}, stat={}, id="movie")
        self.pipeline.apply_preprocessing(sample)
        data = sample.members[self.input_id].data.transpose(*AXES).values
        return np.asarray(data[0, ..., 0], dtype=np.float32)


def detect_with_package(model_path: str | os.PathLike[str], movie: np.ndarray,
                        config: DetectConfig = DetectConfig(), mask: Optional[np.ndarray] = None,
                        progress: Optional[Progress] = None, probabilities_out: Optional[np.ndarray] = None,
                        weight_format: Optional[str] = None) -> Detection:
    """Every exocytosis event of ``movie`` (T, Y, X), with the network of a bioimage.io package.

    Parameters
    ----------
    model_path
        ``rdf.yaml`` or package ``.zip`` written by ``exodf package``.
    config, mask, progress, probabilities_out
        As for :func:`exodf.detect.detect_events`.
    weight_format
        Which weights of the package to run (default: the first present of :data:`PRIORITY`).
    """
    if movie.ndim != 3:
        raise ValueError(f"detect_with_package: expected a (T, Y, X) movie, got shape {movie.shape}")
    if mask is not None and mask.shape != movie.shape[1:]:
        raise ValueError(f"detect_with_package: mask shape {mask.shape} differs from the frame shape "
                         f"{movie.shape[1:]}")
    t0 = time.perf_counter()
    net = PackageNetwork(_pipeline(model_path, weight_format))
    norm = net.preprocess(movie)
    inference = config.inference
    tile_progress = (lambda d, n: progress("network", d, n)) if progress else None
    if inference.tiling == "original":
        blocks: Iterable[tuple[SLC, np.ndarray]] = [
            (WHOLE, original_probabilities(norm, net.block, inference.patch, tile_progress))]
    else:
        blocks = iter_tiled_blocks(norm, net.block, progress=tile_progress)
    seg = collect_segmentation(movie.shape, blocks, probabilities_out)
    events = events_from_segmentation(seg, config, mask, progress)
    return Detection(events, seg, movie.shape[0], time.perf_counter() - t0)
