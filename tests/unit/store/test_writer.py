"""The store writer: one thread, batches committed in groups, refusals after a failure until
the scheduler marks where its decisions start again, reads in order with the writes."""

from __future__ import annotations

import pathlib
import sqlite3
import threading
from collections.abc import Iterator

import pytest
from builders import make_task
from vahana.store import base, batch, sqlite, writer


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[sqlite.SqliteStore]:
    opened = sqlite.SqliteStore(tmp_path / "vahana.db")
    yield opened
    opened.close()


def inserting(*names: str) -> batch.Batch:
    job = batch.Batch()
    for name in names:
        job.inserted[name] = make_task(name).record(task_id=name, seq=len(job.inserted) + 1)
    return job


def test_batches_waiting_together_are_one_transaction(store: sqlite.SqliteStore) -> None:
    gate = threading.Event()
    held = writer.Writer(store)
    held.start()
    first = held.read(lambda _store: gate.wait())  # the thread is busy until the gate opens
    tickets = [held.submit(inserting(f"t{i}")) for i in range(10)]
    gate.set()
    for ticket in (first, *tickets):
        held.wait(ticket, timeout=10)
    assert held.commits == 1 and all(t.error is None for t in tickets)
    assert len(store.list_tasks()) == 10
    held.stop()


def test_after_a_failure_batches_are_refused_until_the_reset(
    store: sqlite.SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    held = writer.Writer(store)
    held.start()
    busy = held.read(lambda _store: gate.wait())
    failing = held.submit(inserting("a"))
    behind = held.submit(inserting("b"))

    original = store.insert_tasks
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]

    def disk_full(tasks: object) -> None:
        monkeypatch.setattr(store, "insert_tasks", original)
        raise full

    monkeypatch.setattr(store, "insert_tasks", disk_full)
    gate.set()
    for ticket in (busy, failing, behind):
        held.wait(ticket, timeout=10)
    assert isinstance(failing.error, base.StoreUnavailable) and failing.error is behind.error
    assert "disk full" in str(failing.error)
    refused = held.submit(inserting("c"))  # decided before the scheduler rolled back
    held.reset()
    accepted = held.submit(inserting("d"))
    read = held.read(lambda s: [t.id for t in s.list_tasks()])
    held.wait(read, timeout=10)
    assert refused.error is failing.error and accepted.error is None
    assert read.result == ["d"]  # reads come after the writes submitted before them
    held.stop()
    late = held.submit(inserting("e"))
    assert late.done and isinstance(late.error, base.StoreUnavailable)
