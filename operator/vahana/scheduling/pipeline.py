"""From decided to committed: plans go to the store writer in order; effects leave after.

The rule, which every scheduler operation follows:

1. An operation decides on memory as it is — including what earlier operations decided and
   have not committed yet — and its decision is live in memory at once, so that the next
   operation decides on it (Kueue's "assume"). Decisions are made one at a time, on the event
   loop's thread, in the order the operations arrive.
2. Its plan goes to the writer thread, in that same order. The writer commits whatever plans
   are waiting in one transaction (a group commit), a large one in a group of its own.
3. Nothing of a plan leaves the scheduler before the store holds it and everything decided
   before it: not the caller's answer, a listener event, a hook, a log line. (Waiting long
   polls are woken when it is decided: what a woken poll hands out is a plan of its own,
   answered once it, and so this one, is committed; rolled back with this one, the poll goes
   back to waiting: `rpc.worker_service`.)
   A plan that writes nothing waits for the plan before it (its answer was decided on it) —
   or, when it names what it read (`Plan.reads`: a heartbeat), only for the last plan that
   changed any of that; when there is none, it is published at once.
4. If a commit fails, that plan and every plan decided after it (which saw it) are rolled back
   in memory, newest first, to exactly what they replaced ("forget"); their callers get the
   store's reason (`StoreUnavailable`: gRPC UNAVAILABLE, try again). The writer refuses the
   plans already on their way to it until it reaches the mark (`Writer.reset`) set after the
   rollback; the plans decided after the mark start again from what the store holds.

Without a writer (tests, the benchmark's core figures, start-up and shut-down), each plan is
committed on the caller's thread before anything else is decided: the same rule, one at a time.

Health: a failed write makes the store unhealthy (listeners: the gRPC health service says
NOT_SERVING); any later commit, or `probe()` — a tiny write the health monitor retries — makes
it healthy again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from vahana.core import clock as clocks
from vahana.scheduling import plan as plans
from vahana.scheduling import tables as tables_module
from vahana.store import base, batch, writer

log = logging.getLogger(__name__)
T = TypeVar("T")
HealthListener = Callable[[bool, str], None]
"""(store healthy, reason it is not)"""


class Pipeline:
    def __init__(
        self,
        store: base.Store,
        live: tables_module.Tables,
        *,
        publish: Callable[[plans.Plan], None],
        clock: clocks.Clock,
    ) -> None:
        self._store = store
        self._tables = live
        self._publish = publish
        self._clock = clock
        self._writer: writer.Writer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._uncommitted: collections.deque[plans.Plan] = collections.deque()
        self._uncommitted_finals = 0
        self._touched: dict[plans.Key, plans.Plan] = {}
        """Each record an uncommitted plan changed → the last such plan."""
        self._serial = 0
        self.healthy = True
        self.reason = ""
        """Why the store is unhealthy: its last error."""
        self._health_listeners: list[HealthListener] = []

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._writer is not None

    def start(self, *, max_group_rows: int = writer.MAX_GROUP_ROWS) -> None:
        """Moves the store's I/O to a writer thread; call on the event loop that will run
        the scheduler."""
        if self._writer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._writer = writer.Writer(
            self._store, on_done=self._done_in_writer, max_group_rows=max_group_rows
        )
        self._writer.start()

    async def stop(self) -> None:
        """Commits what was decided, stops the writer; later plans commit on the caller's
        thread."""
        current = self._writer
        if current is None:
            return
        await self.settled()
        await asyncio.to_thread(current.stop)
        self._settle()
        self._writer = None

    @property
    def commits(self) -> int:
        return self._writer.commits if self._writer is not None else 0

    # -- plans -------------------------------------------------------------------------------
    def enqueue(self, plan: plans.Plan) -> None:
        """Sends a plan just decided (and live in memory) on its way to the store."""
        if self._writer is None:
            self._commit_here(plan)
            return
        self._serial += 1
        plan.serial = self._serial
        if not plan.batch and not plan.undo and plan.reads is not None:
            depended = [self._touched[key] for key in plan.reads if key in self._touched]
            if not depended:
                self._committed(plan)
                return
            last = max(depended, key=lambda other: other.serial)
            last.followers.append(plan)  # told when `last` is: nothing to undo of its own
            plan.ticket = last.ticket
            return
        if plan.batch:
            plan.ticket = self._writer.submit(plan.batch)
        elif self._uncommitted:
            plan.ticket = self._uncommitted[-1].ticket
        else:
            self._committed(plan)
            return
        plan.keys = plans.touched(plan.undo)
        for key in plan.keys:
            self._touched[key] = plan
        self._uncommitted.append(plan)
        self._uncommitted_finals += plan.finals
        if plan.ticket is not None and plan.ticket.done:  # the writer is stopping
            self._settle()

    def wait_sync(self, plan: plans.Plan) -> None:
        """Blocks until the plan is committed; raises if it was rolled back."""
        if plan.state is plans.State.DECIDED:
            assert self._writer is not None and plan.ticket is not None
            self._writer.wait(plan.ticket)
            self._settle()
        self._outcome(plan)

    async def wait(self, plan: plans.Plan) -> None:
        """Waits until the plan is committed; raises if it was rolled back."""
        if plan.state is plans.State.DECIDED:
            assert self._loop is not None
            if plan.waiter is None:
                plan.waiter = self._loop.create_future()
            await asyncio.shield(plan.waiter)
        self._outcome(plan)

    async def settled(self) -> None:
        """Waits until everything decided so far is committed or rolled back."""
        while self._uncommitted:
            with contextlib.suppress(Exception):  # rolled back: settled too
                await self.wait(self._uncommitted[-1])

    # -- reads -------------------------------------------------------------------------------
    def read_sync(self, call: Callable[[base.Store], T]) -> T:
        """`call(store)` on the connection's thread, after the writes decided before it."""
        if self._writer is None:
            return call(self._store)
        ticket = self._writer.read(call)
        self._writer.wait(ticket)
        result: T = self._read_result(ticket)
        return result

    async def read(self, call: Callable[[base.Store], T]) -> T:
        if self._writer is None:
            return call(self._store)
        assert self._loop is not None
        waiter = self._loop.create_future()
        ticket = self._writer.read(call, waiter=waiter)
        if not ticket.done:
            await asyncio.shield(waiter)
        result: T = self._read_result(ticket)
        return result

    async def probe(self) -> bool:
        """Tries a tiny write; the store is healthy again if it works."""
        try:
            await self.read(lambda store: store.check_writable())
        except base.StoreUnavailable as error:
            self._set_health(False, str(error))
            return False
        self._set_health(True, "")
        return True

    # -- health ------------------------------------------------------------------------------
    def add_health_listener(self, listener: HealthListener) -> None:
        self._health_listeners.append(listener)

    def _set_health(self, healthy: bool, reason: str) -> None:
        if healthy == self.healthy and (healthy or reason == self.reason):
            return
        changed = healthy != self.healthy
        self.healthy, self.reason = healthy, reason
        if changed:
            if healthy:
                log.warning("the task store writes again")
            else:
                log.error("store unhealthy: %s", reason)
        for listener in list(self._health_listeners):
            try:
                listener(healthy, reason)
            except Exception:
                log.exception("store health listener failed")

    # -- internals ---------------------------------------------------------------------------
    def _commit_here(self, plan: plans.Plan) -> None:
        if plan.batch:
            try:
                batch.write(self._store, plan.batch)
            except Exception as error:
                self._roll_back([plan], error)
                self._outcome(plan)
        self._committed(plan)

    def _committed(self, plan: plans.Plan) -> None:
        plan.state = plans.State.COMMITTED
        plan.undo.clear()
        if plan.batch and not self.healthy:
            self._set_health(True, "")
        if plan.finals:
            self._tables.trim_finished(tables_module.FINISHED_KEPT + self._uncommitted_finals)
        self._publish(plan)

    def _done_in_writer(self, group: list[writer.Ticket]) -> None:
        """Called on the writer's thread: the rest happens on the event loop's."""
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._done, group)

    def _done(self, group: list[writer.Ticket]) -> None:
        for ticket in group:
            if ticket.waiter is not None and not ticket.waiter.done():
                ticket.waiter.set_result(None)
        self._settle()

    def _settle(self) -> None:
        """Publishes the plans whose commit is done, in order; rolls back on a failure."""
        while self._uncommitted:
            plan = self._uncommitted[0]
            ticket = plan.ticket
            assert ticket is not None
            if not ticket.done:
                return
            if ticket.error is not None:
                plans_now = list(self._uncommitted)
                self._uncommitted.clear()
                self._uncommitted_finals = 0
                self._roll_back(plans_now, ticket.error)
                if self._writer is not None:
                    self._writer.reset()
                return
            self._uncommitted.popleft()
            self._uncommitted_finals -= plan.finals
            self._forget(plan)
            self._committed(plan)
            _release(plan)
            for follower in plan.followers:
                self._committed(follower)
                _release(follower)

    def _roll_back(self, rolled: list[plans.Plan], error: BaseException) -> None:
        now = self._clock()
        for plan in reversed(rolled):
            self._forget(plan)
            self._tables.revert(plan, now)
            plan.state, plan.error = plans.State.ROLLED_BACK, error
            for follower in plan.followers:
                follower.state, follower.error = plans.State.ROLLED_BACK, error
        operations = collections.Counter(plan.operation for plan in rolled)
        log.log(
            logging.WARNING if self.healthy else logging.DEBUG,  # said once per outage
            "store write failed, rolled back %s: %s",
            ", ".join(f"{count} {name}" for name, count in operations.items()),
            error,
        )
        if isinstance(error, base.StoreUnavailable):
            self._set_health(False, str(error))
        for plan in rolled:
            _release(plan)
            for follower in plan.followers:
                _release(follower)

    def _forget(self, plan: plans.Plan) -> None:
        """The plan is no longer uncommitted: later plans need not wait for it."""
        for key in plan.keys:
            if self._touched.get(key) is plan:
                del self._touched[key]

    def _outcome(self, plan: plans.Plan) -> None:
        if plan.state is plans.State.ROLLED_BACK:
            error = plan.error
            if isinstance(error, base.StoreUnavailable) or error is None:
                raise base.StoreUnavailable(str(error) or "the task store failed; try again")
            raise error

    @staticmethod
    def _read_result(ticket: writer.Ticket) -> Any:  # the T of the call read
        if ticket.error is not None:
            raise ticket.error
        return ticket.result


def _release(plan: plans.Plan) -> None:
    if plan.waiter is not None and not plan.waiter.done():
        plan.waiter.set_result(None)
