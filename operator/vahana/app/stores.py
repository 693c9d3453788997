"""Opens the store a URL names: `sqlite:///path/file.db` or `postgresql://user@host:port/db`.

A scheduler's store is exclusive (store/locking.py): a second scheduler on the same SQLite file
is refused, and one on the same PostgreSQL database is refused or, as a standby, waits until
the holder's session ends and then takes over. A standby opens nothing it could write through
and binds no port while it waits.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from vahana.store import base, locking, sqlite

log = logging.getLogger(__name__)

STANDBY_POLL_SECONDS = 1.0
"""How often a standby tries the store lock: a holder that dies is replaced within this."""


def open_store(url: str, *, state_dir: Path | None = None, exclusive: bool = True) -> base.Store:
    """Opens and migrates the store; `base.StoreUnavailable` if its database cannot be used,
    `locking.StoreLocked` (one of those) if `exclusive` and another scheduler holds it.

    `state_dir`: the scheduler's --state-dir, named in the message when the database is in it.
    """
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///") or ":memory:"
        return sqlite.SqliteStore(path, lock=_file_lock(path, state_dir) if exclusive else None)
    if url == "sqlite://":
        return sqlite.SqliteStore(":memory:")
    if url.startswith(("postgresql://", "postgres://")):
        return _open_postgres(url, exclusive=exclusive)
    raise ValueError(
        f"store.url: {url!r} — use sqlite:///path/to/file.db or postgresql://user@host:port/db"
    )


async def open_when_free(
    url: str, *, state_dir: Path | None = None, standby: bool = False
) -> base.Store:
    """The store, exclusively. With `standby` and PostgreSQL, waits while another scheduler
    holds it (logging whom it waits for) instead of raising `locking.StoreLocked`; SQLite
    never waits: two schedulers on one state dir is a mistake, not a fail-over."""
    waiting_for: locking.Holder | None | bool = False
    while True:
        try:
            store = open_store(url, state_dir=state_dir)
        except locking.StoreLocked as refused:
            if not standby or url.startswith("sqlite:"):
                raise
            if refused.holder != waiting_for:
                waiting_for = refused.holder
                holder = f"scheduler {refused.holder}" if refused.holder else "another scheduler"
                log.warning(
                    "standby: %s holds the store %s; this one serves nothing and takes over "
                    "when that scheduler's session ends",
                    holder,
                    base.redact_url(url),
                )
            await asyncio.sleep(STANDBY_POLL_SECONDS)
            continue
        if waiting_for is not False:
            previous = f" from scheduler {waiting_for}" if waiting_for else ""
            log.warning("took over the store %s%s", base.redact_url(url), previous)
        return store


def on_lost(store: base.Store, callback: locking.LostCallback) -> None:
    """Calls `callback` when the store is taken by another scheduler (PostgreSQL only: a
    SQLite lock cannot be lost while its process lives)."""
    lock = getattr(store, "lock", None)
    if isinstance(lock, locking.AdvisoryLock):
        lock.on_lost = callback


def _file_lock(path: str, state_dir: Path | None) -> locking.FileLock | None:
    if path == ":memory:":
        return None
    database = Path(path).expanduser().resolve()
    if state_dir is not None and database.parent == Path(state_dir).expanduser().resolve():
        guards, fix = str(database.parent), "use another --state-dir"
    else:
        guards, fix = f"the store {database}", "use another --store-url"
    return locking.FileLock(database.with_name(database.name + ".lock"), guards=guards, fix=fix)


def _open_postgres(url: str, *, exclusive: bool) -> base.Store:
    try:
        from vahana.store import postgres
    except ImportError as error:  # psycopg is an optional dependency in some installs
        raise base.StoreUnavailable(
            f"store {base.redact_url(url)}: the PostgreSQL driver is missing ({error}). "
            "Install it into the scheduler's environment: pip install 'psycopg[binary]>=3.1'"
        ) from error
    return postgres.PostgresStore(url, exclusive=exclusive)
