"""Who may call what: the one place where bearer tokens are checked and calls bound to a worker.

The decoding layer calls the `Guard` with every decoded request before the servicer sees it:

- RegisterWorker: the scheduler's master bootstrap secret (any worker id, any pool); a pool's
  own bootstrap secret (`tokens.pool_secret`), for that pool only and for no worker id that is
  registered in another pool; or the caller's own worker token (its own id, its own pool);
- every other WorkerService call (except ListWorkers): a worker token. The call is bound to the
  token's worker id: a request naming another worker id, or a task attempt leased to another
  worker, is answered PERMISSION_DENIED before any state is touched;
- ListWorkers and TaskService: the static client token, when one is configured;
- with `bind_certificates` (mutual TLS): every WorkerService call about a worker (but
  ListWorkers) needs a client certificate whose common name is that worker's id or its pool.

A missing, unknown, expired or revoked token is answered UNAUTHENTICATED, which tells a worker to
register again. Tokens travel as `authorization: Bearer <token>` metadata and are never logged.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from vahana.core import tokens

log = logging.getLogger(__name__)

LeaseHolder = Callable[[str, int], "str | None"]
"""(task id, attempt) → the worker that attempt was leased to; None if unknown."""
WorkerPool = Callable[[str], "str | None"]
"""worker id → the pool it is registered in; None if it is not registered."""

WORKER_SERVICE = "worker.WorkerService"
_CLIENT_METHODS = {(WORKER_SERVICE, "ListWorkers")}


class SecretFileError(ValueError):
    """A secret file is missing, unreadable or empty."""


class FileSecret:
    """A shared secret kept in a file (its first line), reread when the file changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._value = ""
        self.value()  # fail early on a missing or empty file

    def value(self) -> str:
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                text = self.path.read_text().strip().splitlines()
                value = text[0].strip() if text else ""
                if not value:
                    raise SecretFileError(
                        f"{self.path}: empty — write the secret on its first line"
                    )
                self._value, self._stamp = value, stamp
        except OSError as error:
            if not self._value:
                raise SecretFileError(f"cannot read {self.path}: {error.strerror}") from error
            log.warning("cannot reread %s, keeping the secret read before", self.path)
        return self._value

    def matches(self, presented: str) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.value().encode())


def bearer(context: Any) -> str:
    """The token of the call's `authorization: Bearer …` metadata; empty if there is none."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


def common_names(context: Any) -> set[str]:
    """The common names of the call's verified client certificate; empty without one."""
    try:
        found = (context.auth_context() or {}).get("x509_common_name", ())
    except (AttributeError, ValueError):
        return set()
    return {name.decode(errors="replace") if isinstance(name, bytes) else name for name in found}


def _worker_ids(request: Any) -> Iterable[str]:
    yield getattr(request, "worker_id", "")
    for item in getattr(request, "updates", ()):
        yield item.worker_id


def _leases(method: str, request: Any) -> Iterable[tuple[str, int]]:
    if method == "UpdateTaskStatus":
        yield request.task_id, request.attempt
    for item in getattr(request, "updates", ()):
        yield item.task_id, item.attempt
    for lease in getattr(request, "running_tasks", ()):
        yield lease.task_id, lease.attempt
    for chunk in getattr(request, "chunks", ()):  # AppendTaskOutput
        yield chunk.task_id, chunk.attempt


class Guard:
    """Checks each call's credentials and binds worker calls to the token's worker id."""

    def __init__(
        self,
        *,
        tokens: tokens.TokenStore | None,
        bootstrap: FileSecret | None,
        client_secret: FileSecret | None,
        lease_holder: LeaseHolder,
        worker_pool: WorkerPool = lambda _worker_id: None,
        bind_certificates: bool = False,
    ) -> None:
        if (tokens is None) != (bootstrap is None):
            raise ValueError(
                "worker authentication needs both a token store and a bootstrap secret"
            )
        self.tokens = tokens
        self._bootstrap = bootstrap
        self._client_secret = client_secret
        self._lease_holder = lease_holder
        self._worker_pool = worker_pool
        self._bind_certificates = bind_certificates

    async def __call__(self, service: str, method: str, request: Any, context: Any) -> None:
        if service != WORKER_SERVICE or (service, method) in _CLIENT_METHODS:
            if self._client_secret is not None and not self._client_secret.matches(bearer(context)):
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"{method}: this scheduler requires the client token (--token-file)",
                )
            return
        if self._bind_certificates:
            await self._check_certificate(method, request, context)
        if self.tokens is None or self._bootstrap is None:
            return
        presented = bearer(context)
        if method == "RegisterWorker":
            if self._bootstrap.matches(presented):
                return
            if presented.startswith("pool."):
                await self._admit_pool_secret(presented, request, context)
                return
        caller = self.tokens.identify(presented)
        if caller is None:
            wanted = (
                "the bootstrap secret or this worker's token"
                if method == "RegisterWorker"
                else "a worker token"
            )
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"{method}: {wanted} is required; the one given is missing, expired or revoked"
                " — register again",
            )
            return
        if method == "RegisterWorker":
            await self._keep_pool(caller, request.pool, context)
        await self._bind(caller, method, request, context)

    async def _check_certificate(self, method: str, request: Any, context: Any) -> None:
        """The client certificate's common name must be the worker's id or its pool."""
        names = common_names(context)
        for worker_id in {w for w in _worker_ids(request) if w}:
            pool = registered = self._worker_pool(worker_id)
            if method == "RegisterWorker":
                # A pool's certificate admits new workers of its pool, not another pool's.
                pool = request.pool if registered in (None, request.pool) else None
            if worker_id in names or (pool and pool in names):
                continue
            log.warning(
                "refused %s: worker %s of pool %r with a certificate for %s",
                method,
                worker_id,
                pool,
                sorted(names) or "no name",
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method}: the client certificate (CN {', '.join(sorted(names)) or 'none'}) "
                f"names neither worker {worker_id!r} nor its pool {pool or ''!r}",
            )

    async def _admit_pool_secret(self, presented: str, request: Any, context: Any) -> None:
        assert self._bootstrap is not None
        pool = request.pool
        if not pool or not hmac.compare_digest(
            presented.encode(), tokens.pool_secret(self._bootstrap.value(), pool).encode()
        ):
            log.warning(
                "refused RegisterWorker: worker %s with no secret of pool %r",
                request.worker_id,
                pool,
            )
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"RegisterWorker: the secret given is not pool {pool!r}'s bootstrap secret"
                " (a pool's secret registers workers of that pool only)",
            )
            return
        await self._keep_pool(request.worker_id, pool, context)

    async def _keep_pool(self, worker_id: str, pool: str, context: Any) -> None:
        """A registered worker stays in its pool: no secret but the master one moves it."""
        registered = self._worker_pool(worker_id)
        if registered is not None and registered != pool:
            log.warning(
                "refused RegisterWorker: worker %s of pool %r claimed pool %r",
                worker_id,
                registered,
                pool,
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"RegisterWorker: worker {worker_id!r} is registered in pool {registered!r},"
                f" not {pool!r}",
            )

    async def _bind(self, caller: str, method: str, request: Any, context: Any) -> None:
        for worker_id in _worker_ids(request):
            if worker_id and worker_id != caller:
                log.warning("refused %s: worker %s named worker %s", method, caller, worker_id)
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{method}: the token is worker {caller!r}'s, not {worker_id!r}'s",
                )
        for task_id, attempt in _leases(method, request):
            holder = self._lease_holder(task_id, attempt)
            if holder is not None and holder != caller:
                log.warning(
                    "refused %s: worker %s named task %s attempt %d of another worker",
                    method,
                    caller,
                    task_id,
                    attempt,
                )
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{method}: task {task_id} attempt {attempt} is leased to another worker",
                )
