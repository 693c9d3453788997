"""Opens the store a URL names."""

from __future__ import annotations

from vahana.store import base, sqlite


def open_store(url: str) -> base.Store:
    if url.startswith("sqlite:///"):
        return sqlite.SqliteStore(url.removeprefix("sqlite:///") or ":memory:")
    if url == "sqlite://":
        return sqlite.SqliteStore(":memory:")
    if url.startswith(("postgresql://", "postgres://")):
        raise NotImplementedError(
            "store.url: the PostgreSQL store is not available in this version"
        )
    raise ValueError(f"store.url: {url!r} — use sqlite:///path/to/file.db")
