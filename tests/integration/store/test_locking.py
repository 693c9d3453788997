"""The store lock: one scheduler per SQLite file (flock) and per PostgreSQL database (advisory).

Real files, real processes and a real PostgreSQL (`postgres_url`): the lock is only as good as
what the kernel and the server do with it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from builders import make_task
from vahana.app import stores
from vahana.store import base, locking, postgres, sqlite

from tests.waiting import wait_until


def test_a_second_sqlite_store_on_the_state_dir_is_refused_naming_the_holder(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'vahana.db'}"
    first = stores.open_store(url, state_dir=tmp_path)
    try:
        with pytest.raises(locking.StoreLocked) as refused:
            stores.open_store(url, state_dir=tmp_path)
        assert str(refused.value) == (
            f"another scheduler (pid {os.getpid()}) holds {tmp_path}; stop it or use another "
            "--state-dir"
        )
        assert refused.value.holder == locking.Holder(os.getpid(), socket.gethostname())
    finally:
        first.close()
    # close() gives the lock up: the next scheduler opens the same file.
    stores.open_store(url, state_dir=tmp_path).close()


def test_a_database_outside_the_state_dir_names_the_store_and_store_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'tasks.db'}"
    first = stores.open_store(url, state_dir=tmp_path / "state")
    try:
        with pytest.raises(locking.StoreLocked, match=r"the store .*tasks\.db; .*--store-url"):
            stores.open_store(url, state_dir=tmp_path / "state")
    finally:
        first.close()


def test_a_non_exclusive_store_takes_no_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vahana.db'}"
    held = stores.open_store(url)
    try:
        stores.open_store(url, exclusive=False).close()
    finally:
        held.close()


def test_the_lock_of_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    database = tmp_path / "vahana.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from vahana.app import stores
                stores.open_store("sqlite:///{database}")
                print("held", flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(locking.StoreLocked, match=f"pid {holder.pid}"):
            stores.open_store(f"sqlite:///{database}")
    finally:
        holder.kill()
        holder.wait()
    stores.open_store(f"sqlite:///{database}").close()


def test_a_holder_that_has_not_written_its_pid_yet_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db.lock"
    path.touch()
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # locked, nothing written: as a holder in its first instant
    try:
        lock = locking.FileLock(path, guards="x", fix="try later")
        with pytest.raises(locking.StoreLocked) as refused:
            lock.acquire()
        assert str(refused.value) == "another scheduler holds x; stop it or try later"
    finally:
        os.close(fd)


def test_a_sqlite_store_that_fails_to_open_gives_the_lock_back(tmp_path: Path) -> None:
    (tmp_path / "vahana.db").write_bytes(b"not a database" * 100)
    lock = locking.FileLock(tmp_path / "vahana.db.lock", guards="d", fix="f")
    with pytest.raises(Exception, match="not a database"):
        sqlite.SqliteStore(tmp_path / "vahana.db", lock=lock)
    lock.acquire()
    lock.release()


# -- PostgreSQL ------------------------------------------------------------------------------


def terminate_sessions(postgres_url: str, store: postgres.PostgresStore) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (store._db.info.backend_pid,))


def test_a_second_exclusive_postgresql_store_is_refused_before_it_migrates(
    postgres_url: str,
) -> None:
    first = postgres.PostgresStore(postgres_url, exclusive=True)
    try:
        with pytest.raises(locking.StoreLocked) as refused:
            postgres.PostgresStore(postgres_url, exclusive=True)
        assert refused.value.holder is not None and refused.value.holder.pid == os.getpid()
        assert f"another scheduler (pid {os.getpid()}) holds the store" in str(refused.value)
        # Non-exclusive stores (tools, tests) are not held back.
        postgres.PostgresStore(postgres_url).close()
    finally:
        first.close()
    postgres.PostgresStore(postgres_url, exclusive=True).close()


def test_a_holder_whose_connection_was_lost_takes_the_lock_back_if_nobody_else_did(
    postgres_url: str,
) -> None:
    store = postgres.PostgresStore(postgres_url, exclusive=True)
    try:
        terminate_sessions(postgres_url, store)
        with pytest.raises(base.StoreUnavailable, match="connection to PostgreSQL was lost"):
            store.insert_tasks([make_task("a").record(task_id="a", seq=1)])
        store.insert_tasks([make_task("b").record(task_id="b", seq=2)])
        assert [t.id for t in store.list_tasks()] == ["b"]
    finally:
        store.close()


def test_a_holder_that_lost_the_store_to_another_scheduler_never_writes_again(
    postgres_url: str,
) -> None:
    old = postgres.PostgresStore(postgres_url, exclusive=True)
    told: list[locking.StoreLocked] = []
    stores.on_lost(old, told.append)
    try:
        old.insert_tasks([make_task("a").record(task_id="a", seq=1)])
        terminate_sessions(postgres_url, old)
        new = wait_until(
            lambda: postgres.PostgresStore(postgres_url, exclusive=True),
            timeout=10,
            message="the lock free once the old session ended",
        )
        try:
            new.insert_tasks([make_task("b").record(task_id="b", seq=2)])
            for _ in range(2):  # the connection loss, then the refusal
                with pytest.raises(base.StoreUnavailable):
                    old.insert_tasks([make_task("c").record(task_id="c", seq=3)])
            assert len(told) == 1 and f"pid {os.getpid()}" in str(told[0])
        finally:
            new.close()
        # Even with the other gone, the old holder's memory is stale: it stays refused.
        with pytest.raises(locking.StoreLocked, match="writes no more"):
            old.insert_tasks([make_task("c").record(task_id="c", seq=3)])
        assert len(told) == 1
    finally:
        old.close()
    reader = postgres.PostgresStore(postgres_url)
    try:
        assert [t.id for t in reader.list_tasks()] == ["a", "b"]
    finally:
        reader.close()


def test_a_holder_is_refused_if_another_held_the_store_while_it_was_away(
    postgres_url: str,
) -> None:
    old = postgres.PostgresStore(postgres_url, exclusive=True)
    try:
        terminate_sessions(postgres_url, old)
        other = wait_until(
            lambda: postgres.PostgresStore(postgres_url, exclusive=True),
            timeout=10,
            message="the lock free once the old session ended",
        )
        other.insert_tasks([make_task("x").record(task_id="x", seq=1)])
        other.close()  # gone again before the old holder notices anything
        with pytest.raises(base.StoreUnavailable):
            old.insert_tasks([make_task("a").record(task_id="a", seq=2)])  # finds its loss
        with pytest.raises(locking.StoreLocked, match="held the store .* while this scheduler"):
            old.insert_tasks([make_task("a").record(task_id="a", seq=2)])
    finally:
        old.close()
