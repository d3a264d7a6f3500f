"""The published ExoDeepFinder weights: obtained from PyPI on first use, hash-checked, cached.

The weights (GPL-3.0, Inria) are ``examples/analyze/in/net_weights_FINAL.h5`` inside the source
distribution of ``exodeepfinder==0.3.14``. exodf never ships them: it downloads that sdist from the
package index, checks both the archive's and the member's sha256, and keeps the member in the user cache.
Sites without network set ``EXODF_WEIGHTS`` (or pass ``--weights``) to a copy of the file.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_path
from .errors import ExodfError

__all__ = ["PUBLISHED", "published_weights", "cache_dir", "sha256_file", "resolve_weights", "ENV_WEIGHTS"]

ENV_WEIGHTS = "EXODF_WEIGHTS"
ENV_CACHE = "EXODF_CACHE"
INDEX = "https://pypi.org/simple/{name}/"


@dataclass(frozen=True)
class PublishedWeights:
    name: str
    package: str
    version: str
    member: str
    sha256: str
    citation: str


PUBLISHED = PublishedWeights(
    name="net_weights_FINAL.h5",
    package="exodeepfinder",
    version="0.3.14",
    member="examples/analyze/in/net_weights_FINAL.h5",
    sha256="2c811b08a11a661a8129e561452acc567cab583bcf7e3aa8a4cb446c5412d4cc",
    citation="ExoDeepFinder, PLoS Comput Biol (2025), doi:10.1371/journal.pcbi.1013556",
)


def cache_dir() -> Path:
    """Where downloaded weights are kept (``EXODF_CACHE`` or the user cache directory)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("exodf"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sdist_url(package: str, version: str) -> tuple[str, str | None]:
    with urllib.request.urlopen(INDEX.format(name=package), timeout=60) as r:
        page = r.read().decode("utf-8", "replace")
    for href in re.findall(r'href="([^"]+)"', page):
        fname = href.split("#")[0].rsplit("/", 1)[-1]
        if fname == f"{package}-{version}.tar.gz":
            m = re.search(r"#sha256=([0-9a-f]{64})", href)
            return href.split("#")[0], (m.group(1) if m else None)
    raise ExodfError(f"{package}=={version} has no source distribution on the package index")


def _download_sdist(package: str, version: str, dest: Path) -> Path:
    """Fetch the sdist: directly from the simple index, else through ``pip download``."""
    try:
        url, digest = _sdist_url(package, version)
        with urllib.request.urlopen(url, timeout=300) as r:
            data = r.read()
        if digest and hashlib.sha256(data).hexdigest() != digest:
            raise ExodfError(f"{url}: downloaded archive does not match the index's sha256; try again later")
        out = dest / f"{package}-{version}.tar.gz"
        out.write_bytes(data)
        return out
    except (OSError, ValueError):
        pass
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           f"{package}=={version}", "-d", str(dest), "-q"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    found = list(dest.glob(f"{package}-{version}.tar.gz"))
    if res.returncode != 0 or not found:
        raise ExodfError(
            f"cannot download {package}=={version} to obtain the published weights ({res.stderr.strip()[-300:]}); "
            f"without network, copy {PUBLISHED.name} here and set {ENV_WEIGHTS}=PATH or pass --weights PATH")
    return found[0]


def published_weights(progress: bool = False) -> Path:
    """Path to the published ``net_weights_FINAL.h5``, downloading and verifying it on first use."""
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        p = Path(env)
        if not p.is_file():
            raise ExodfError(f"{ENV_WEIGHTS}={env}: no such file; point it at net_weights_FINAL.h5 or unset it")
        return p
    target = cache_dir() / f"{PUBLISHED.package}-{PUBLISHED.version}" / PUBLISHED.name
    if target.is_file() and sha256_file(target) == PUBLISHED.sha256:
        return target
    if progress:
        print(f"Downloading the published ExoDeepFinder weights ({PUBLISHED.package}=={PUBLISHED.version} "
              f"sdist) into {target.parent} ...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = _download_sdist(PUBLISHED.package, PUBLISHED.version, Path(tmp))
        with tarfile.open(sdist, "r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("/" + PUBLISHED.member)), None)
            if member is None:
                raise ExodfError(f"{sdist.name}: {PUBLISHED.member} is missing from the archive")
            f = tar.extractfile(member)
            assert f is not None
            data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != PUBLISHED.sha256:
        raise ExodfError(f"{PUBLISHED.name} from {PUBLISHED.package}=={PUBLISHED.version} has sha256 {digest}, "
                         f"expected {PUBLISHED.sha256}; refusing to use it")
    with atomic_path(target) as tmp_path:
        with open(tmp_path, "wb") as out:
            out.write(data)
    return target


def resolve_weights(weights: str | os.PathLike[str] | None) -> Path:
    """``--weights`` if given (must exist), else the published weights."""
    if weights is None or str(weights) in ("", "published"):
        return published_weights(progress=True)
    p = Path(weights)
    if not p.is_file():
        raise ExodfError(f"{p}: weights file not found; give an existing .h5/.keras file or omit --weights")
    return p
