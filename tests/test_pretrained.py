"""Published weights: hash-checked download, cache, environment override, and load errors."""

from __future__ import annotations

import dataclasses
import hashlib
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
    """The file used is the published one (the hash the paper's release has, written out here, not taken from
    exodf), an HDF5 file."""
    assert pre.sha256_file(weights_path) == "2c811b08a11a661a8129e561452acc567cab583bcf7e3aa8a4cb446c5412d4cc"
    assert weights_path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_a_good_download_is_cached_and_a_damaged_cache_fetched_again(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"pretend these are the weights"
    monkeypatch.delenv(pre.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("EXODF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pre, "PUBLISHED", dataclasses.replace(pre.PUBLISHED,
                                                               sha256=hashlib.sha256(payload).hexdigest()))
    downloads: list[Path] = []

    def download(pkg: str, ver: str, dest: Path) -> Path:
        downloads.append(dest)
        return _fake_sdist(dest, payload)

    monkeypatch.setattr(pre, "_download_sdist", download)
    p = pre.published_weights()
    assert p == tmp_path / "cache" / "exodeepfinder-0.3.14" / "net_weights_FINAL.h5"
    assert p.read_bytes() == payload and len(downloads) == 1
    assert pre.published_weights() == p and len(downloads) == 1  # the cache, not the network
    p.write_bytes(b"damaged")  # a truncated or altered cache file is fetched again
    assert pre.published_weights().read_bytes() == payload and len(downloads) == 2
    assert sorted(q.name for q in p.parent.iterdir()) == [p.name]  # no temporary file left beside it
    assert not downloads[0].exists()  # the archive went with its temporary folder


def test_an_archive_unlike_the_index_s_hash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "served.tar.gz"
    archive.write_bytes(b"an archive")
    dest = tmp_path / "download"
    dest.mkdir()
    monkeypatch.setattr(pre, "_sdist_url", lambda pkg, ver: (archive.as_uri(), "0" * 64))
    with pytest.raises(ExodfError, match="does not match the index's sha256"):
        pre._download_sdist("exodeepfinder", "0.3.14", dest)
    assert not any(dest.iterdir())
    digest = hashlib.sha256(b"an archive").hexdigest()
    monkeypatch.setattr(pre, "_sdist_url", lambda pkg, ver: (archive.as_uri(), digest))
    got = pre._download_sdist("exodeepfinder", "0.3.14", dest)
    assert got == dest / "exodeepfinder-0.3.14.tar.gz" and got.read_bytes() == b"an archive"


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
