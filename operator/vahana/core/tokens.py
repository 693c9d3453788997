"""Per-worker tokens: issued at registration, bound to one worker id, kept only as hashes.

Pure bookkeeping, no I/O: the clock and the secret generator are injected. A token is a random
secret the worker sends with every call; the store keeps its SHA-256 hash, the worker id it is
bound to and when it expires, so a leaked memory dump or log line of the store reveals no token.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Callable

from vahana.core import clock as clocks

REISSUE_OVERLAP_SECONDS = 60.0
"""A worker's older tokens stay valid this long after a new one is issued, so calls already
under way with the old token are not refused while the worker switches."""


@dataclasses.dataclass(frozen=True)
class Issued:
    """A token just issued: the secret (shown once, to the worker) and its expiry (Unix s)."""

    token: str = dataclasses.field(repr=False)
    worker_id: str
    expires_at: float


@dataclasses.dataclass
class _Entry:
    worker_id: str
    expires_at: float


def digest(token: str) -> str:
    """The hash a token is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def pool_secret(master: str, pool: str) -> str:
    """The bootstrap secret of one pool, derived from the scheduler's master secret.

    Each pool's workers get only their own pool's secret, so a leaked pilot script lets its
    reader register workers of that pool and no other; nothing per pool needs storing, and
    rotating the master secret rotates them all.
    """
    if not master or not pool:
        raise ValueError("a pool secret needs the master secret and the pool's name")
    mac = hmac.new(master.encode(), b"vahana-pool-bootstrap\0" + pool.encode(), hashlib.sha256)
    return "pool." + base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class TokenStore:
    """Issues, identifies and revokes worker tokens; holds hashes only."""

    def __init__(
        self,
        *,
        lifetime_seconds: float,
        clock: clocks.Clock = clocks.system_clock,
        new_secret: Callable[[], str] = _new_secret,
    ) -> None:
        if lifetime_seconds <= 0:
            raise ValueError("lifetime_seconds: must be > 0")
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock
        self._new_secret = new_secret
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def issue(self, worker_id: str) -> Issued:
        """A new token for `worker_id`; the worker's older ones expire shortly."""
        now = self._clock()
        self._sweep(now)
        overlap_end = now + min(REISSUE_OVERLAP_SECONDS, self.lifetime_seconds)
        for entry in self._entries.values():
            if entry.worker_id == worker_id:
                entry.expires_at = min(entry.expires_at, overlap_end)
        token = self._new_secret()
        expires_at = now + self.lifetime_seconds
        self._entries[digest(token)] = _Entry(worker_id, expires_at)
        return Issued(token=token, worker_id=worker_id, expires_at=expires_at)

    def identify(self, token: str) -> str | None:
        """The worker id a valid token is bound to; None if unknown, expired or revoked."""
        if not token:
            return None
        key = digest(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[key]
            return None
        return entry.worker_id

    def revoke(self, worker_id: str) -> int:
        """Forgets every token of `worker_id` (the worker was removed); returns how many."""
        doomed = [key for key, entry in self._entries.items() if entry.worker_id == worker_id]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def _sweep(self, now: float) -> None:
        expired = [key for key, entry in self._entries.items() if entry.expires_at <= now]
        for key in expired:
            del self._entries[key]
