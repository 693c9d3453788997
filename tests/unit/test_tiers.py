"""Tests are marked by the directory they live in, and a unit test cannot start a server."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from tests import conftest

TESTS = pathlib.Path(conftest.__file__).resolve().parent


@dataclasses.dataclass
class FakeItem:
    path: pathlib.Path
    fixturenames: tuple[str, ...] = ()
    markers: list[str] = dataclasses.field(default_factory=list)

    @property
    def nodeid(self) -> str:
        return str(self.path.relative_to(TESTS))

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        self.markers.append(marker.name)


def test_every_test_is_marked_with_its_directorys_tier() -> None:
    items = [
        FakeItem(TESTS / "unit" / "core" / "test_queue.py"),
        FakeItem(TESTS / "integration" / "test_cli.py", ("scheduler",)),
        FakeItem(TESTS / "faults" / "test_fault_run.py"),
        FakeItem(TESTS / "k8s" / "test_operator.py"),
    ]
    conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    assert [item.markers for item in items] == [
        ["unit"],
        ["integration"],
        ["integration"],
        ["kubernetes"],
    ]


def test_a_unit_test_that_starts_a_server_is_refused_naming_it() -> None:
    items = [FakeItem(TESTS / "unit" / "store" / "test_x.py", ("tmp_path", "postgres_url"))]
    with pytest.raises(pytest.UsageError, match=r"test_x.py uses postgres_url"):
        conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]


def test_this_very_test_is_marked_unit(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
