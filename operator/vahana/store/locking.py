"""One scheduler per store: the lock a scheduler holds on its store for as long as it runs.

Two schedulers writing one store both run every task (100 tasks ran 200 times), so a scheduler
opens its store only once it holds a lock no other process can hold at the same time:

- SQLite: `flock` on `<database>.lock` beside the database file (in the state dir by default).
  The kernel drops it when the process ends however it ends (kill -9 included), so a stale lock
  never blocks a restart. The file holds the holder's pid and host for the next one's message.
- PostgreSQL: a session-level advisory lock taken on the store's own connection, so every write
  goes through the session that holds it. A connection that is lost takes the lock with it;
  the store's next connection must take the lock again, and may write only if no other
  scheduler held it in between (each holder draws a number from a sequence, its epoch: a
  different last number means another scheduler wrote meanwhile and this one's memory is stale).
  Such a store stays refused for good: it is "fenced", and its process should stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vahana.store import base

log = logging.getLogger(__name__)

ADVISORY_KEY = 0x7661686C
"""The pg_try_advisory_lock key of the store lock ("vahl"); the migration lock is another."""
EPOCH_SEQUENCE = "vahana_store_epoch"
"""Counts the holders of a PostgreSQL store: one number per scheduler that took it."""
HOLDER_WAIT_SECONDS = 1.0
"""How long to wait for a holder that has just locked the file to write its pid into it."""
_APPLICATION_NAME = re.compile(r"^vahana pid=(\d+)(?: host=(\S+))?")


@dataclasses.dataclass(frozen=True)
class Holder:
    """The scheduler process that holds a store."""

    pid: int
    host: str = ""

    def __str__(self) -> str:
        if self.host and self.host != socket.gethostname():
            return f"pid {self.pid} on {self.host}"
        return f"pid {self.pid}"


class StoreLocked(base.StoreUnavailable):
    """Another scheduler holds the store; the message names it and says what to do."""

    def __init__(self, message: str, *, holder: Holder | None = None) -> None:
        super().__init__(message)
        self.holder = holder


LostCallback = Callable[[StoreLocked], None]
"""Told once that a store was lost to another scheduler; may be called from any thread."""


def identity() -> str:
    """How this process names itself to PostgreSQL (`application_name`, at most 63 bytes)."""
    return f"vahana pid={os.getpid()} host={socket.gethostname()}"[:63]


def _described(holder: Holder | None) -> str:
    return f"another scheduler ({holder})" if holder else "another scheduler"


class FileLock:
    """An exclusive `flock` on one file, held until `release()` or the end of the process.

    `guards` names what the lock protects in the message of a refused scheduler (the state dir),
    `fix` says what that user can do instead.
    """

    def __init__(self, path: Path, *, guards: str, fix: str) -> None:
        self.path = path
        self._guards = guards
        self._fix = fix
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock now or raises `StoreLocked` naming the holder's pid."""
        # os.open makes no inheritable descriptor: a child (a local worker) cannot keep the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read_holder(fd) if error.errno in (errno.EAGAIN, errno.EACCES) else None
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise base.StoreUnavailable(
                    f"cannot lock {self.path} ({error.strerror}): the state dir must be on a "
                    "filesystem with file locks (flock) — use a local directory"
                ) from error
            raise StoreLocked(
                f"{_described(holder)} holds {self._guards}; stop it or {self._fix}",
                holder=holder,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Gives the lock up; the file stays (removing it would race a process opening it)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor releases the flock


def _read_holder(fd: int) -> Holder | None:
    """The pid and host the holder wrote; it may have locked the file and not written yet."""
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while True:
        fields = os.pread(fd, 512, 0).decode(errors="replace").split()
        if fields and fields[0].isdigit():
            return Holder(int(fields[0]), fields[1] if len(fields) > 1 else "")
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


class AdvisoryLock:
    """The store lock of one PostgreSQL database, taken on each connection the store opens.

    `take()` runs on every new connection: the first one draws this holder's epoch, a later one
    (after a lost connection) checks that nobody else has held the lock since. A refusal after
    the first take is final (`lost`), and `on_lost` is called once with it.
    """

    def __init__(self, store_name: str) -> None:
        self._store_name = store_name
        self.epoch = 0
        self.lost: StoreLocked | None = None
        self.on_lost: LostCallback | None = None

    def take(self, connection: Any) -> None:
        """Takes the lock on `connection` (a DB-API connection to PostgreSQL, not in autocommit)
        and commits; raises `StoreLocked` if the store may not be written through it."""
        if self.lost is not None:
            raise self.lost
        cursor = connection.cursor()
        cursor.execute(f"SELECT pg_try_advisory_lock({ADVISORY_KEY})")
        if not cursor.fetchone()[0]:
            holder = _advisory_holder(cursor)
            connection.rollback()
            if self.epoch:
                raise self._lose(
                    f"{_described(holder)} took the store {self._store_name} while this "
                    "scheduler's connection was lost",
                    holder,
                )
            raise StoreLocked(
                f"{_described(holder)} holds the store {self._store_name}; stop it, or start "
                "this one as a standby (vahana server or operator with --standby) to take over "
                "when that scheduler's session ends",
                holder=holder,
            )
        # Only the session holding the lock runs this, so two cannot create it at once.
        cursor.execute(f"CREATE SEQUENCE IF NOT EXISTS {EPOCH_SEQUENCE}")
        if not self.epoch:
            cursor.execute(f"SELECT nextval('{EPOCH_SEQUENCE}')")
            self.epoch = int(cursor.fetchone()[0])
            connection.commit()
            return
        cursor.execute(f"SELECT last_value FROM {EPOCH_SEQUENCE}")
        if int(cursor.fetchone()[0]) == self.epoch:
            connection.commit()
            return
        cursor.execute(f"SELECT pg_advisory_unlock({ADVISORY_KEY})")
        connection.commit()
        raise self._lose(
            f"another scheduler held the store {self._store_name} while this scheduler's "
            "connection was lost",
            None,
        )

    def _lose(self, what: str, holder: Holder | None) -> StoreLocked:
        """Fences the store for good: its memory may be stale, so it must never write again."""
        self.lost = StoreLocked(
            f"{what}: this scheduler's view of the tasks may be stale, so it writes no more "
            "and stops — start it again to recover from the store (or to wait as a standby)",
            holder=holder,
        )
        log.error("%s", self.lost)
        if self.on_lost is not None:
            self.on_lost(self.lost)
        return self.lost


def _advisory_holder(cursor: Any) -> Holder | None:
    """The scheduler whose session holds the lock, from its application_name, if visible."""
    cursor.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 "
        f"AND l.objid = {ADVISORY_KEY} AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    row = cursor.fetchone()
    found = _APPLICATION_NAME.match(row[0] or "") if row else None
    return Holder(int(found.group(1)), found.group(2) or "") if found else None
