"""Shared by every test tier: puts `tests/` on sys.path so tests can `import builders`."""

import dataclasses
import os
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest

from tests.fixtures import image, postgres, s3, slurm, sshd

# Schedulers and operators started by tests serve /metrics only when a test asks for a port:
# the default (9090) would make concurrent processes collide.
os.environ.setdefault("VAHANA_METRICS_PORT", "0")
# Likewise the dashboard (on by default in `vahana server` and `vahana operator`, port 8080).
os.environ.setdefault("VAHANA_UI_ENABLED", "false")

# Examples are judged by what they do, not by how long one takes on a loaded 2-core machine.
hypothesis.settings.register_profile("vahana", deadline=None)
hypothesis.settings.load_profile("vahana")

_TESTS = str(pathlib.Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


TIERS = {"unit": "unit", "integration": "integration", "faults": "integration", "k8s": "kubernetes"}
"""The tier of each directory under tests/: `pytest -m unit` runs the unit tests alone."""
SERVERS = frozenset(
    {"postgres_server", "postgres_url", "slurm_conf", "sshd_server", "vahana_image"}
)
"""Fixtures that start a server or build an image: never used by a unit test."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks every test with its directory's tier (a `pytestmark` in a conftest marks nothing),
    and refuses a unit test that starts a server: it belongs in tests/integration."""
    wrong = []
    for item in items:
        parts = pathlib.Path(str(item.path)).resolve().relative_to(_TESTS).parts
        tier = TIERS.get(parts[0]) if len(parts) > 1 else None
        if tier is None:
            continue
        item.add_marker(getattr(pytest.mark, tier))
        servers = SERVERS.intersection(getattr(item, "fixturenames", ()))
        if tier == "unit" and servers:
            wrong.append(f"{item.nodeid} uses {', '.join(sorted(servers))}")
    if wrong:
        raise pytest.UsageError(
            "tests/unit starts no server; move these to tests/integration:\n  " + "\n  ".join(wrong)
        )


def require(available: bool, reason: str) -> None:
    """Skips a test whose dependency is missing — fails instead under CI=true."""
    if not available:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the whole session (tests/fixtures/postgres.py)."""
    require(postgres.binaries_available(), postgres.MISSING)
    with postgres.running_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """An empty database of its own for each test, on the session's cluster."""
    with postgres.fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def slurm_conf() -> Iterator[str]:
    """A one-node SLURM for the session; yields SLURM_CONF (tests/fixtures/slurm.py)."""
    require(slurm.binaries_available(), slurm.MISSING)
    with slurm.running_slurm() as conf:
        yield conf


_built_images: list[image.Image] = []


@pytest.fixture(scope="session")
def vahana_image() -> str:
    """The project's image of the current sources (`localhost/vahana:test-<digest>`), built at
    most once per session and only when the sources changed (tests/fixtures/image.py)."""
    require(image.podman_available(), image.MISSING)
    built = image.built_image()
    _built_images.append(built)
    return built.name


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a worker process of pytest-xdist: hands the images it used to the main process."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["vahana_images"] = [dataclasses.asdict(built) for built in _built_images]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """In pytest-xdist's main process: what a finished worker built or used."""
    for fields in getattr(node, "workeroutput", {}).get("vahana_images", []):
        _built_images.append(image.Image(**fields))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # One line per image: the build, if a worker built it, else that it already existed.
    chosen: dict[str, image.Image] = {}
    for built in _built_images:
        if built.name not in chosen or built.build_seconds:
            chosen[built.name] = built
    for built in chosen.values():
        how = f"built in {built.build_seconds:.0f} s" if built.build_seconds else "already built"
        terminalreporter.write_line(
            f"image {built.name}: {built.size_mb:.0f} MB ({how}; sources {built.digest[:12]})"
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[s3.S3Server]:
    """An S3 API (rclone serve s3) on a loopback port for the session (tests/fixtures/s3.py)."""
    require(s3.rclone_binary() is not None, s3.MISSING)
    with s3.running_s3() as server:
        yield server


@pytest.fixture(scope="session")
def sshd_server() -> Iterator[sshd.Sshd]:
    """sshd on a loopback port for the session (tests/fixtures/sshd.py)."""
    require(sshd.binaries_available(), sshd.MISSING)
    with sshd.running_sshd() as server:
        yield server
