"""Published weights: hash-checked download, cache, environment override, and load errors."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import exodf.pretrained as pre
from exodf.errors import ExodfError
from exodf.model import build_unet, load_network


def _fake_sdist(dest: Path, payload: bytes) -> Path:
    p = dest / f"{pre.PUBLISHED.package}-{pre.PUBLISHED.version}.tar.gz"
    with tarfile.open(p, "w:gz") as tar:
        info = tarfile.TarInfo(f"{pre.PUBLISHED.package}-{pre.PUBLISHED.version}/{pre.PUBLISHED.member}")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return p


def test_wrong_hash_is_refused_and_nothing_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pre.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("EXODF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pre, "_download_sdist", lambda pkg, ver, dest: _fake_sdist(dest, b"not the weights"))
    with pytest.raises(ExodfError, match="refusing to use it"):
        pre.published_weights()
    assert not any((tmp_path / "cache").rglob("*.h5"))


def test_member_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pre.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("EXODF_CACHE", str(tmp_path / "cache"))

    def empty(pkg: str, ver: str, dest: Path) -> Path:
        p = dest / "x.tar.gz"
        with tarfile.open(p, "w:gz"):
            pass
        return p

    monkeypatch.setattr(pre, "_download_sdist", empty)
    with pytest.raises(ExodfError, match="missing from the archive"):
        pre.published_weights()


def test_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pre.ENV_WEIGHTS, str(tmp_path / "nope.h5"))
    with pytest.raises(ExodfError, match="EXODF_WEIGHTS"):
        pre.published_weights()
    f = tmp_path / "w.h5"
    f.write_bytes(b"x")
    monkeypatch.setenv(pre.ENV_WEIGHTS, str(f))
    assert pre.published_weights() == f
    with pytest.raises(ExodfError, match="weights file not found"):
        pre.resolve_weights(tmp_path / "missing.h5")


def test_cached_published_weights_hash(weights_path: Path) -> None:
    assert pre.sha256_file(weights_path) == pre.PUBLISHED.sha256


def test_published_network_has_903027_parameters(published_net) -> None:  # type: ignore[no-untyped-def]
    assert published_net.count_params() == 903_027
    assert published_net.input_shape == (None, None, None, None, 1)


def test_keras_weights_round_trip_and_bad_files(tmp_path: Path) -> None:
    net = build_unet()
    w = tmp_path / "trained.weights.h5"
    net.save_weights(w)
    back = load_network(w)
    for a, b in zip(net.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    bad = tmp_path / "other.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ExodfError, match="cannot be loaded as a Keras model"):
        load_network(bad)
    with pytest.raises(ExodfError, match="weights file not found"):
        load_network(tmp_path / "none.h5")
    # a text file, a movie: said in one line (Keras said 'File not found' or wrote a page on SavedModels)
    (tmp_path / "bad.keras").write_text("not weights")
    (tmp_path / "movie.tif").write_bytes(b"II*\x00" + bytes(100))
    for name, kind in (("bad.keras", ""), ("movie.tif", " (a TIFF image?)")):
        with pytest.raises(ExodfError, match=f"{name}: not a Keras weights file{re.escape(kind)} \\(neither HDF5"):
            load_network(tmp_path / name)
    # exodf train's output folder: the weights files in it are named
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    net.save_weights(run / "model.weights.h5")
    net.save_weights(run / "checkpoint" / "model.weights.h5")
    (run / "net_weights_FINAL.h5").write_bytes(b"")  # the published file's name: listed too
    with pytest.raises(ExodfError, match=f"run: a folder, not a weights file; give one of the weights files in it "
                                         f"\\({re.escape(str(run / 'model.weights.h5'))}, "
                                         f"{re.escape(str(run / 'net_weights_FINAL.h5'))}, "
                                         f"{re.escape(str(run / 'checkpoint' / 'model.weights.h5'))}; exodf train"):
        load_network(run)
