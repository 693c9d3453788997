"""The store's one writer: a thread that owns the connection and commits batches in groups.

The scheduler hands it batches in the order it decided them (`submit`). The thread takes every
batch waiting, up to `max_group_rows` rows, merges them and commits them in one transaction,
then marks their tickets done and calls `on_done` with them (from its own thread). Reads
(`read`) run on the same thread, in order with the writes: the connection is only ever used by
this thread, and the event loop never waits on the database.

After a failed commit the writer refuses every batch that follows (its ticket fails at once,
with the same error) until `reset()` is reached in its queue. The batches behind a failed one
were decided on what it would have changed, so the scheduler rolls them back together; it calls
`reset()` once it has, and what it decides from then on starts again from what the store holds.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from vahana.store import base, batch

log = logging.getLogger(__name__)

MAX_GROUP_ROWS = 2_000
"""Rows one group commit writes at most (a larger single batch is a group of its own): a
heartbeat queued behind a large submission waits for one such commit, not for all of it."""


class Ticket:
    """One job for the writer and, once `done`, its outcome (`error` or `result`)."""

    __slots__ = ("batch", "call", "done", "error", "result", "waiter")

    def __init__(
        self,
        job_batch: batch.Batch | None = None,
        call: Callable[[base.Store], Any] | None = None,
    ) -> None:
        self.batch = job_batch
        self.call = call
        self.done = False
        self.error: BaseException | None = None
        self.result: Any = None
        self.waiter: Any = None
        """Free for the submitter (the scheduler keeps an asyncio future of a read here)."""


_RESET = object()
_STOP = object()


class Writer:
    def __init__(
        self,
        store: base.Store,
        *,
        on_done: Callable[[list[Ticket]], None] = lambda _tickets: None,
        max_group_rows: int = MAX_GROUP_ROWS,
    ) -> None:
        self._store = store
        self._on_done = on_done
        self._max_group_rows = max_group_rows
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._finished = threading.Condition()
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._accepting = threading.Lock()
        self.commits = 0
        """Transactions committed (for the benchmark: plans per commit)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vahana-store-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commits what was submitted, then ends the thread; later jobs fail at once."""
        if self._thread is None or self._stopping:
            return
        with self._accepting:  # no job is put behind the stop mark
            self._stopping = True
            self._jobs.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the store writer did not stop within %.0fs", timeout)

    def submit(self, job_batch: batch.Batch) -> Ticket:
        return self._put(Ticket(job_batch=job_batch))

    def read(self, call: Callable[[base.Store], Any], *, waiter: Any = None) -> Ticket:
        """Runs `call(store)` on the writer's thread, after the batches submitted before it.
        `waiter` is kept on the ticket before the thread can see it (see `Ticket.waiter`)."""
        ticket = Ticket(call=call)
        ticket.waiter = waiter
        return self._put(ticket)

    def reset(self) -> None:
        """Marks where batches decided after a rollback start: they are committed again."""
        self._jobs.put(_RESET)

    def wait(self, ticket: Ticket, timeout: float | None = None) -> None:
        """Blocks until the ticket is done (for callers that cannot await)."""
        with self._finished:
            if not self._finished.wait_for(lambda: ticket.done, timeout):
                raise TimeoutError("the store writer did not answer in time")

    def _put(self, ticket: Ticket) -> Ticket:
        with self._accepting:
            if not self._stopping:
                self._jobs.put(ticket)
                return ticket
        ticket.error = base.StoreUnavailable("the scheduler is stopping: try again later")
        ticket.done = True
        return ticket

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        held: Any = None
        while True:
            job, held = (held if held is not None else self._jobs.get()), None
            if job is _STOP:
                return
            if job is _RESET:
                self._failed = None
                continue
            group = [job]
            if job.batch is not None:
                rows = job.batch.rows
                while rows < self._max_group_rows:
                    try:
                        following = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if not isinstance(following, Ticket) or following.batch is None:
                        held = following  # a read, reset or stop: after this group
                        break
                    group.append(following)
                    rows += following.batch.rows
                self._commit(group)
            else:
                self._call(job)
            self._finish(group)

    def _commit(self, group: list[Ticket]) -> None:
        if self._failed is not None:
            for ticket in group:
                ticket.error = self._failed
            return
        merged = batch.Batch()
        for ticket in group:
            assert ticket.batch is not None
            merged.absorb(ticket.batch)
        if not merged:
            return
        try:
            batch.write(self._store, merged)
        except Exception as error:
            self._failed = error
            for ticket in group:
                ticket.error = error
        else:
            self.commits += 1

    def _call(self, ticket: Ticket) -> None:
        assert ticket.call is not None
        try:
            ticket.result = ticket.call(self._store)
        except Exception as error:
            ticket.error = error

    def _finish(self, group: list[Ticket]) -> None:
        with self._finished:
            for ticket in group:
                ticket.done = True
            self._finished.notify_all()
        try:
            self._on_done(group)
        except Exception:  # the thread must go on committing whatever a callback does
            log.exception("store writer callback failed")
