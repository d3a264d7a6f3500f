"""``exodf package``: the bioimage.io model package, rebuilt from any exodf-compatible weights.

Writes ``rdf.yaml`` and ``model_package/`` (weights in four formats, test tensors, sample TIFFs, cover)
under a root folder, checks every weight format against the Keras network, and optionally writes a zip.
The documentation (``model_package/README.md``) and the ImageJ post-processing (``postprocessing/``) are
not derived from the weights: they are taken from the exodf source tree.

Everything is reproducible byte for byte (fixed seeds, fixed zip dates, sorted members, a content-derived
PyTorch serialization id) except the TensorFlow SavedModel, whose node order TensorFlow does not fix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..atomic import atomic_path, write_text_atomic
from ..errors import ExodfError, pip_install
from ..pretrained import PUBLISHED
from . import formats
from ..simulate import SimParams, simulate
from ..tiling import RECEPTIVE_HALO

__all__ = ["PackageResult", "build_package", "rdf_content", "scale_range", "SOURCE_ROOT", "PACKAGE_DIR",
           "TOLERANCE", "HALO", "MIN_SIZE", "TEST_SHAPE"]

SOURCE_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = "model_package"
DOC = f"{PACKAGE_DIR}/README.md"
RETRAINED_DOC = f"{PACKAGE_DIR}/README.retrained.md"  # DOC with a note on top, for weights not published
ATTACHMENTS = ("postprocessing/exodf_events.ijm", "postprocessing/README.md")
HALO = RECEPTIVE_HALO           # the network's receptive field (t, y, x), measured in tests/test_tiling.py
MIN_SIZE = (2 * HALO[0] + 1, 2 * HALO[1] + 4, 2 * HALO[2] + 4)  # the smallest tiles with a kept core
TEST_SHAPE = (32, 80, 80)       # (t, y, x) of the test tensors: small, so that `bioimageio test` is quick
TEST_SIM = {"events_per_frame": 0.15, "seed": 1}
ZOO_MODULES = ("torch", "onnx", "onnxruntime", "yaml")  # what writing the weight formats and rdf.yaml imports
COVER_SHAPE = (48, 128, 128)
COVER_SIM = {"events_per_frame": 0.2, "seed": 3}
PERCENTILES = (1.0, 99.0)
EPS = 1e-6
TOLERANCE = 5e-4                # every weight format equals the Keras network within this (TorchScript: ~9e-5
                                # seen on CPUs; float32 convolutions in another order, e.g. TF32 on GPUs, differ more)
PAPER_TITLE = "Deep learning detection of dynamic exocytosis events in fluorescence TIRF microscopy"
PAPER_AUTHORS = ("Hugo Lachuer", "Emmanuel Moebel", "Anne-Sophie Macé", "Arthur Masson", "Kristine Schauer",
                 "Charles Kervrann")  # doi:10.1371/journal.pcbi.1013556
TIMESTAMP = "2025-10-01T00:00:00"
CLASS_IDS = ["background", "bright_spot", "exocytosis"]

Progress = Callable[[str], None]


@dataclass
class PackageResult:
    """What :func:`build_package` wrote and measured."""

    rdf: Path
    files: list[Path]
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    zip_path: Optional[Path] = None
    weights_sha256: str = ""


def scale_range(movie: np.ndarray, eps: float = EPS) -> np.ndarray:
    """The rdf's pre-processing on a (b, t, y, x, c) array: per frame, (v - p1) / (p99 - p1 + eps), float32."""
    v = np.asarray(movie, dtype=np.float32)
    lo, hi = np.percentile(v, PERCENTILES, axis=(2, 3), keepdims=True)
    return ((v - lo) / (hi - lo + eps)).astype(np.float32)


def _axes(kind: str) -> list[dict[str, Any]]:
    micro = {"unit": "micrometer", "scale": 0.16}
    if kind == "input":
        return [
            {"type": "batch"},
            {"type": "space", "id": "z", "size": {"min": MIN_SIZE[0], "step": 1},
             "description": "time: the movie's frames (ImageJ slices), about 0.3-0.5 s apart"},
            {"type": "space", "id": "y", "size": {"min": MIN_SIZE[1], "step": 4}, **micro},
            {"type": "space", "id": "x", "size": {"min": MIN_SIZE[2], "step": 4}, **micro},
            {"type": "channel", "channel_names": ["intensity"]},
        ]
    ref = formats.INPUT_ID
    return [
        {"type": "batch"},
        {"type": "space", "id": "z", "size": {"tensor_id": ref, "axis_id": "z"}, "halo": HALO[0],
         "description": "time: the movie's frames"},
        {"type": "space", "id": "y", "size": {"tensor_id": ref, "axis_id": "y"}, "halo": HALO[1], **micro},
        {"type": "space", "id": "x", "size": {"tensor_id": ref, "axis_id": "x"}, "halo": HALO[2], **micro},
        {"type": "channel", "channel_names": CLASS_IDS},
    ]


def rdf_content(versions: dict[str, str], sha256: Optional[dict[str, str]] = None,
                retrained: Optional[str] = None, timestamp: str = TIMESTAMP) -> dict[str, Any]:
    """The model description (bioimage.io format 0.5) as a dict; paths are relative to the rdf's folder.

    ``sha256`` (relative path -> digest), when given, is recorded for each file (the zip's copy).
    ``retrained``: the sha256 of weights that are not the published ones (from ``exodf train``): the name
    and description say so. ``timestamp``: when the weights were made (default: the published weights').
    """
    def f(rel: str) -> dict[str, Any]:
        d: dict[str, Any] = {"source": rel}
        if sha256 is not None:
            d["sha256"] = sha256[rel]
        return d

    w = {fmt: f"{PACKAGE_DIR}/{rel}" for fmt, rel in formats.WEIGHT_FILES.items()}
    parent = "keras_hdf5"
    description = ("Detects exocytosis events (bursts of pH-sensitive fluorescence) in TIRF movies of live "
                   "cells: a 3D U-Net over (t, y, x) giving background / bright spot / exocytosis "
                   "probabilities per voxel.")
    if retrained:
        description += (f" These weights were trained or fine-tuned with exodf train (Keras weights sha256 "
                        f"{retrained[:16]}...), not the published ExoDeepFinder weights.")
    return {
        "type": "model",
        "format_version": "0.5.4",
        "name": "ExoDeepFinder (retrained with exodf)" if retrained else "ExoDeepFinder",
        "description": description,
        "authors": [{"name": n} for n in PAPER_AUTHORS],
        "maintainers": [],
        "packaged_by": [{"name": "exodf contributors"}],
        "cite": [
            {"text": f"{', '.join(PAPER_AUTHORS)}. {PAPER_TITLE}. PLoS Computational Biology (2025)",
             "doi": "10.1371/journal.pcbi.1013556"},
            {"text": "Moebel E. et al., Deep learning improves macromolecule identification in 3D cellular "
                     "cryo-electron tomograms (DeepFinder), Nature Methods 18 (2021)",
             "doi": "10.1038/s41592-021-01275-4"},
        ],
        "license": "GPL-3.0-only",
        "tags": ["exocytosis", "tirf", "fluorescence-light-microscopy", "live-cell-imaging", "2d+t",
                 "event-detection", "semantic-segmentation", "unet", "3d-unet", "deepfinder", "pytorch",
                 "tensorflow", "onnx"],
        "documentation": f(RETRAINED_DOC if retrained else DOC),
        "covers": [f"{PACKAGE_DIR}/cover.png"],
        "attachments": [f(a) for a in ATTACHMENTS],
        "timestamp": timestamp,
        "inputs": [{
            "id": formats.INPUT_ID,
            "description": "TIRF movie, one channel, frames on z (raw intensities)",
            "axes": _axes("input"),
            "data": {"type": "float32"},
            "test_tensor": f(f"{PACKAGE_DIR}/test_input.npy"),
            "sample_tensor": f(f"{PACKAGE_DIR}/sample_input.tif"),
            "preprocessing": [{"id": "scale_range", "kwargs": {
                "axes": ["y", "x"], "min_percentile": PERCENTILES[0], "max_percentile": PERCENTILES[1],
                "eps": EPS}}],
        }],
        "outputs": [{
            "id": formats.OUTPUT_ID,
            "description": "class probabilities: background, bright spot, exocytosis (channel 3)",
            "axes": _axes("output"),
            "data": {"type": "float32", "range": [0.0, 1.0], "unit": "arbitrary unit"},
            "test_tensor": f(f"{PACKAGE_DIR}/test_output.npy"),
            "sample_tensor": f(f"{PACKAGE_DIR}/sample_output.tif"),
        }],
        "weights": {
            "keras_hdf5": {**f(w["keras_hdf5"]), "tensorflow_version": versions["tensorflow"]},
            "tensorflow_saved_model_bundle": {**f(w["tensorflow_saved_model_bundle"]), "parent": parent,
                                              "tensorflow_version": versions["tensorflow"]},
            "onnx": {**f(w["onnx"]), "parent": parent, "opset_version": formats.ONNX_OPSET},
            "torchscript": {**f(w["torchscript"]), "parent": parent, "pytorch_version": versions["pytorch"]},
        },
        "config": {"bioimageio": {"reproducibility_tolerance": [
            {"absolute_tolerance": TOLERANCE, "relative_tolerance": 0.0, "mismatched_elements_per_million": 0}]}},
    }


def _dump_yaml(content: dict[str, Any]) -> str:
    import yaml

    head = ("# ExoDeepFinder as a bioimage.io model (format 0.5). Generated by `exodf package`: do not edit by\n"
            "# hand; run `exodf package` to (re)build model_package/ from the weights. The weights, test tensors\n"
            "# and cover it names are not kept in the repository (the weights are downloaded and verified): until\n"
            "# `exodf package` has run, this file does not validate and deepImageJ/ilastik cannot load it.\n")
    return head + yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=110)


def _copy_sources(root: Path, source_root: Path) -> list[Path]:
    """Documentation and attachments: copied from the exodf source tree when building elsewhere."""
    out = []
    for rel in (DOC, *ATTACHMENTS):
        src, dst = source_root / rel, root / rel
        if not src.is_file():
            raise ExodfError(f"{src}: missing; exodf package needs the exodf source tree (model_package/README.md "
                             "and postprocessing/): run it from a git checkout of exodf")
        if src.resolve() != dst.resolve():
            dst.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
        out.append(dst)
    return out


def _simulate(shape: tuple[int, int, int], how: dict[str, float]) -> Any:
    """A movie of exodf's simulator (fixed seed): the package's example data is made, not shipped."""
    params = SimParams(n_frames=shape[0], height=shape[1], width=shape[2],
                       events_per_frame=float(how["events_per_frame"]))
    return simulate(params, seed=int(how["seed"]))


def _write_tiffs(pkg: Path, movie: np.ndarray, probs: np.ndarray) -> list[Path]:
    """The sample tensors as ImageJ stacks calibrated in µm; frames as slices, as deepImageJ reads them onto z."""
    from ..io import write_tiff

    return [write_tiff(pkg / "sample_input.tif", movie, axes="ZYX", resolution_um=0.16),
            write_tiff(pkg / "sample_output.tif", np.ascontiguousarray(np.moveaxis(probs, -1, 1)), axes="ZCYX",
                       resolution_um=0.16)]


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)


def _write_cover(pkg: Path, net: Any) -> Path:
    """A frame of a simulated movie with the events exodf detects circled, beside the exocytosis map."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from ..detect import detect_events

    sim = _simulate(COVER_SHAPE, COVER_SIM)
    det = detect_events(sim.movie, net)
    ev = det.events
    frame = COVER_SHAPE[0] // 2
    if len(ev):  # the brightest frame of the largest event (its flash), near the cluster centre's frame
        k = int(np.argmax(ev.columns["size"]))
        y, x = int(round(ev.y[k])), int(round(ev.x[k]))
        near = [f for f in range(int(round(ev.frame[k])) - 3, int(round(ev.frame[k])) + 2) if 0 <= f < COVER_SHAPE[0]]
        frame = near[int(np.argmax([sim.movie[f, y, x] for f in near]))]
    fig, ax = plt.subplots(1, 2, figsize=(8, 4), dpi=100)
    ax[0].imshow(sim.movie[frame], cmap="gray")
    near = np.abs(ev.frame - frame) <= 2
    ax[0].scatter(ev.x[near], ev.y[near], s=260, facecolors="none", edgecolors="#ff4040", linewidths=2)
    ax[0].scatter(ev.x[~near], ev.y[~near], s=120, facecolors="none", edgecolors="#ffd040", linewidths=1)
    ax[0].set_title(f"frame {frame + 1}: events (red: this frame, yellow: others)", fontsize=9)
    ax[1].imshow(det.segmentation.exocytosis_max, cmap="magma", vmin=0, vmax=1)
    ax[1].set_title("exocytosis probability (max over time)", fontsize=9)
    for a in ax:
        a.set_axis_off()
    fig.tight_layout()
    path = pkg / "cover.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def missing_modules(names: Sequence[str]) -> list[str]:
    """Those of the modules ``names`` (dotted names too) that cannot be imported here."""
    def found(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # (a dotted name whose parent package is missing)
            return False

    return [n for n in names if not found(n)]


def build_package(root: str | os.PathLike[str] = SOURCE_ROOT, weights: str | os.PathLike[str] | None = None,
                  zip_path: str | os.PathLike[str] | None = None, source_root: Path = SOURCE_ROOT,
                  progress: Optional[Progress] = None) -> PackageResult:
    """Build ``root/rdf.yaml`` and ``root/model_package/`` from ``weights`` (default: the published ones).

    Raises :class:`ExodfError` if a weight format differs from the Keras network by more than
    :data:`TOLERANCE` on the test input.
    """
    from ..model import load_network
    from ..pretrained import resolve_weights

    say = progress or (lambda msg: None)
    missing = missing_modules(ZOO_MODULES)
    if missing:  # (checked before anything is written: the weight formats need all of them)
        raise ExodfError(f"exodf package needs {', '.join(missing)}: {pip_install('zoo')} (with torch==2.13.0 "
                         "first where a CPU build is wanted)")
    root = Path(root)
    weights_path = resolve_weights(weights)
    net = load_network(weights_path)  # bad weights fail here, before anything is written
    pkg = root / PACKAGE_DIR
    pkg.mkdir(parents=True, exist_ok=True)
    files = _copy_sources(root, source_root)

    say("computing the test tensors")
    sim = _simulate(TEST_SHAPE, TEST_SIM)
    test_input = sim.movie.astype(np.float32)[None, ..., None]
    normalized = scale_range(test_input)
    test_output = np.asarray(net(normalized, training=False), dtype=np.float32)
    say("writing the weight formats")
    # every generated file is written and checked beside the package, then all are moved in together: a failed
    # or interrupted export keeps the older build whole (not new weights beside an older cover and tensors)
    staging = Path(tempfile.mkdtemp(prefix=".staging.", dir=pkg))
    try:
        staged = formats.write_weights(net, staging)
        diffs = {}
        for fmt, path in staged.items():
            say(f"checking {fmt}")
            diffs[fmt] = float(np.abs(formats.run_format(fmt, path, normalized) - test_output).max())
            if diffs[fmt] > TOLERANCE:
                raise ExodfError(f"the new {fmt} weights differ from the Keras network by {diffs[fmt]:.2e} (> "
                                 f"{TOLERANCE}); the export is wrong, please report it (the package's earlier "
                                 f"files in {pkg} were kept)")
        for name, arr in (("test_input.npy", test_input), ("test_output.npy", test_output)):
            _write_npy(staging / name, arr)
        made = ["test_input.npy", "test_output.npy"]
        made += [p.name for p in _write_tiffs(staging, sim.movie, test_output[0])]
        say("drawing the cover")
        made.append(_write_cover(staging, net).name)
        old = Path(tempfile.mkdtemp(prefix=".old.", dir=pkg))  # the older weights, set aside, not deleted first
        try:
            if (pkg / "weights").is_dir():
                os.replace(pkg / "weights", old / "weights")
            try:
                os.replace(staging / "weights", pkg / "weights")
            except BaseException:
                if (old / "weights").is_dir() and not (pkg / "weights").exists():
                    os.replace(old / "weights", pkg / "weights")
                raise
            for name in made:
                os.replace(staging / name, pkg / name)
        finally:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files += [pkg / rel for rel in formats.WEIGHT_FILES.values()]
    files += [pkg / name for name in made]

    digest = _sha256(weights_path)
    retrained = None if digest == PUBLISHED.sha256 else digest
    files += retrained_docs(root, source_root, retrained)
    stamp = TIMESTAMP if not retrained else _file_time(weights_path)  # a retrained package: its weights' time
    content = rdf_content(formats.library_versions(), retrained=retrained, timestamp=stamp)
    rdf = root / "rdf.yaml"
    write_text_atomic(rdf, _dump_yaml(content))
    result = PackageResult(rdf, [rdf, *files], diffs, None, digest)
    if zip_path is not None:
        say("writing the zip")
        result.zip_path = write_zip(root, content, Path(zip_path), retrained)
    return result


def retrained_docs(root: Path, source_root: Path, retrained: Optional[str]) -> list[Path]:
    """For retrained weights, ``README.retrained.md`` (the rdf's documentation: the README with a note on
    top); in a package folder outside the source tree its ``README.md`` says the same (the folder is what
    people open). The source tree's README stays as committed. None for the published weights."""
    if not retrained:
        (root / RETRAINED_DOC).unlink(missing_ok=True)  # left by an earlier build with other weights
        return []
    out = mark_retrained(root / DOC, root / RETRAINED_DOC, retrained)
    if (root / DOC).resolve() != (source_root / DOC).resolve():
        with atomic_path(root / DOC) as tmp:
            shutil.copyfile(out, tmp)
    return [out]


def _file_time(path: Path) -> str:
    """A file's modification time in UTC, as the rdf's timestamp."""
    import datetime

    t = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S")


RETRAINED_NOTE_START = "> **These are not the published weights.** This package holds weights"


def mark_retrained(doc: Path, out: Path, digest: str) -> Path:
    """Write ``out``: the package's documentation ``doc`` saying at its top that the weights are not the
    published ones (whose validation figures it reports). ``doc`` itself is left as it is."""
    text = doc.read_text(encoding="utf-8")
    head, _, rest = text.partition("\n\n")
    write_text_atomic(out, f"{head}\n\n{RETRAINED_NOTE_START} trained or fine-tuned with `exodf train` (Keras "
                           f"weights sha256 `{digest}`), not the published `net_weights_FINAL.h5`: the validation "
                           f"figures below are those of the published weights, not of these.\n\n{rest}")
    return out


def _referenced(content: dict[str, Any]) -> list[str]:
    rels = [content["documentation"]["source"], *content["covers"], *(a["source"] for a in content["attachments"])]
    for t in (*content["inputs"], *content["outputs"]):
        rels += [t["test_tensor"]["source"], t["sample_tensor"]["source"]]
    rels += [w["source"] for w in content["weights"].values()]
    return rels


def write_zip(root: Path, content: dict[str, Any], zip_path: Path, retrained: Optional[str] = None) -> Path:
    """The package as one zip: ``rdf.yaml`` (with each file's sha256) and the files it names."""
    rels = _referenced(content)
    missing = [r for r in rels if not (root / r).is_file()]
    if missing:
        raise ExodfError(f"{root / missing[0]}: missing; run `exodf package` to build the package first")
    data = {r: (root / r).read_bytes() for r in rels}
    digests = {r: hashlib.sha256(b).hexdigest() for r, b in data.items()}
    versions = {"tensorflow": str(content["weights"]["keras_hdf5"]["tensorflow_version"]),
                "pytorch": str(content["weights"]["torchscript"]["pytorch_version"])}
    data["rdf.yaml"] = _dump_yaml(rdf_content(versions, digests, retrained, str(content["timestamp"]))).encode()
    formats.deterministic_zip(data, zip_path)
    return zip_path


def test_package(rdf: str | os.PathLike[str], weight_format: Optional[str] = None) -> tuple[bool, list[str]]:
    """Run bioimageio.core's ``test_model`` on a package (all weight formats unless one is named).

    Returns (passed, one line per failed check).
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from bioimageio.core import test_model

    summary = test_model(Path(rdf), weight_format=weight_format)  # type: ignore[arg-type]
    failed = [f"{d.name}: {'; '.join(e.msg for e in d.errors)[:300]}" for d in summary.details
              if d.status == "failed"]
    return summary.status in ("passed", "valid-format") and not failed, failed
