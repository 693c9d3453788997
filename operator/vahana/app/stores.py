"""Opens the store a URL names: `sqlite:///path/file.db` or `postgresql://user@host:port/db`."""

from __future__ import annotations

from vahana.store import base, sqlite


def open_store(url: str) -> base.Store:
    """Opens and migrates the store; `base.StoreUnavailable` if its database cannot be used."""
    if url.startswith("sqlite:///"):
        return sqlite.SqliteStore(url.removeprefix("sqlite:///") or ":memory:")
    if url == "sqlite://":
        return sqlite.SqliteStore(":memory:")
    if url.startswith(("postgresql://", "postgres://")):
        return _open_postgres(url)
    raise ValueError(
        f"store.url: {url!r} — use sqlite:///path/to/file.db or postgresql://user@host:port/db"
    )


def _open_postgres(url: str) -> base.Store:
    try:
        from vahana.store import postgres
    except ImportError as error:  # psycopg is an optional dependency in some installs
        raise base.StoreUnavailable(
            f"store {base.redact_url(url)}: the PostgreSQL driver is missing ({error}). "
            "Install it into the scheduler's environment: pip install 'psycopg[binary]>=3.1'"
        ) from error
    return postgres.PostgresStore(url)
