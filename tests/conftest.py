"""Shared fixtures: the reference data in ../shared/reference and the published weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def _reference_dir() -> Path | None:
    for cand in (os.environ.get("EXODF_REFERENCE"), REPO.parent / "shared" / "reference",
                 REPO / "shared" / "reference"):
        if cand and (Path(cand) / "movie.tif").is_file():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    d = _reference_dir()
    if d is None:
        pytest.skip("the reference data (../shared/reference) is not present beside this checkout")
    return d


@pytest.fixture(scope="session")
def weights_path() -> Path:
    from exodf.errors import ExodfError
    from exodf.pretrained import published_weights

    try:
        return published_weights()
    except ExodfError as e:
        pytest.skip(f"the published weights cannot be obtained here: {e}")


@pytest.fixture(scope="session")
def published_net(weights_path: Path):
    from exodf.jobs import load_detector

    return load_detector(weights_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """With EXODF_REQUIRE_ALL=1 (set by .ci/run) a skipped test fails: CI installs everything, so a skip
    there means a missing install step, not a missing optional tool."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("EXODF_REQUIRE_ALL") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped in CI, where everything is installed: {reason}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with ``slow`` tests (the network on whole movies, minutes each) run first, each module's tests
    kept together (module fixtures are computed once): with ``-n 2 --dist loadfile`` (README's command) the two
    longest modules then start at once instead of one of them ending the run alone."""
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow") is not None
            and getattr(item, "module", None) is not None}
    items.sort(key=lambda item: getattr(getattr(item, "module", None), "__name__", "") not in slow)
