"""PostgreSQL-only behaviour of the store: concurrent migrations, errors, connection loss.

The shared behaviour is in test_store_contract.py, which runs on PostgreSQL too.
"""

from __future__ import annotations

import importlib.resources
import sys
import threading
import urllib.parse

import psycopg
import pytest
import vahana.store
from builders import make_task
from vahana.app import stores
from vahana.store import base, postgres

PASSWORD = "s3cr3t-pw"

# The numbered migrations the package ships: each is applied exactly once.
SHIPPED_MIGRATIONS = sorted(
    int(entry.name.split("_", 1)[0])
    for entry in (importlib.resources.files("vahana.store") / "migrations").iterdir()
    if entry.name.endswith(".sql")
)


def with_password(url: str) -> str:
    """The same database, with a password in the URL (trust auth ignores it)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"postgres:{PASSWORD}@{parts.netloc[9:]}"))


def test_stores_opening_a_fresh_database_at_once_apply_the_schema_once(postgres_url: str) -> None:
    count = 4
    barrier = threading.Barrier(count)
    opened: list[postgres.PostgresStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait(timeout=30)
        try:
            opened.append(postgres.PostgresStore(postgres_url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == [] and len(opened) == count
        versions = opened[0]._rows("SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in versions] == SHIPPED_MIGRATIONS
        opened[0].insert_tasks([make_task("a").record(task_id="a", seq=1)])
        assert [t.id for t in opened[-1].list_tasks()] == ["a"]
    finally:
        for store in opened:
            store.close()


def test_duplicate_key_is_a_unique_violation_and_the_store_stays_usable(postgres_url: str) -> None:
    store = postgres.PostgresStore(postgres_url)
    store.insert_tasks([make_task("a").record(task_id="a", seq=1, key="k")])
    with pytest.raises(psycopg.errors.UniqueViolation):
        store.insert_tasks([make_task("b").record(task_id="b", seq=2, key="k")])
    # The failed transaction was rolled back: PostgreSQL would refuse every statement otherwise.
    store.insert_tasks([make_task("50% done?").record(task_id="c", seq=3, key="k2")])
    assert [t.spec.name for t in store.list_tasks()] == ["a", "50% done?"]
    store.close()


def test_reads_leave_no_transaction_open(postgres_url: str) -> None:
    store = postgres.PostgresStore(postgres_url)
    store.list_tasks()
    assert store._db.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    store.close()


def test_lost_connection_fails_the_next_transaction_without_the_password(
    postgres_url: str,
) -> None:
    url = with_password(postgres_url)
    store = stores.open_store(url)
    assert isinstance(store, postgres.PostgresStore)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (store._db.info.backend_pid,))
    with pytest.raises(base.StoreUnavailable) as raised:
        store.insert_tasks([make_task("a").record(task_id="a", seq=1)])
    message = str(raised.value)
    assert PASSWORD not in message
    assert "postgres:***@" in message and "connection to PostgreSQL was lost" in message
    # The next transaction connects again.
    store.insert_tasks([make_task("b").record(task_id="b", seq=2)])
    assert [t.id for t in store.list_tasks()] == ["b"]
    store.close()


def test_unreachable_server_is_a_clear_error_without_the_password(postgres_url: str) -> None:
    parts = urllib.parse.urlsplit(with_password(postgres_url))
    url = urllib.parse.urlunsplit(parts._replace(query="host=/nonexistent/dir"))
    with pytest.raises(base.StoreUnavailable) as raised:
        stores.open_store(url.replace("postgresql://", "postgres://"))
    message = str(raised.value)
    assert PASSWORD not in message
    assert "postgres://postgres:***@" in message and "cannot connect to PostgreSQL" in message


def test_missing_driver_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg → ImportError
    monkeypatch.delitem(sys.modules, "vahana.store.postgres")
    monkeypatch.delattr(vahana.store, "postgres")
    with pytest.raises(base.StoreUnavailable, match=r"pip install 'psycopg\[binary\]"):
        stores.open_store(f"postgresql://u:{PASSWORD}@db.example/vahana")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u@h/db?host=/run/pg", "postgres://u@h/db?host=/run/pg"),
        ("postgresql:///db?user=u&password=pw", "postgresql:///db?user=u&password=***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert base.redact_url(url) == shown
