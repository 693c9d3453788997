"""Delivers task status updates to the scheduler in batches, surviving scheduler outages.

`submit()` only appends to a buffer. One sender thread sends whatever has accumulated as a single
BatchUpdateTaskStatus call as soon as there is anything that may not wait (an update may be held a
little for others to join it); updates arriving while a call is in flight go in the next one.
Updates of one task keep their order (RUNNING before the final one). Per result: accepted or
refused (stale lease, unknown task) → forgotten; `cancel` → the agent is told to stop the task. A
transport failure keeps the whole batch, in order, at the head of the buffer and retries after a
backoff, so results finished during an outage arrive after it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import grpc

from vahana_worker import backoff, client
from vahana_worker.proto import worker_pb2 as pb

_log = logging.getLogger(__name__)

MAX_BATCH = 500
"""Most updates sent in one call."""


class StatusSink(Protocol):
    """The calls the reporter makes (SchedulerClient satisfies it)."""

    def batch_update(
        self, updates: list[pb.UpdateTaskStatusRequest], max_tasks: int = 0
    ) -> pb.BatchUpdateTaskStatusResponse: ...

    def update_task_status(
        self, update: pb.UpdateTaskStatusRequest
    ) -> pb.UpdateTaskStatusResponse: ...


def _kv(update: pb.UpdateTaskStatusRequest) -> dict[str, object]:
    return {
        "task_id": update.task_id,
        "attempt": update.attempt,
        "status": pb.TaskStatus.Name(update.status),
    }


class Reporter:
    """Buffers status updates and sends them from its own thread (`run()`)."""

    def __init__(
        self,
        sink: StatusSink,
        *,
        breaker: backoff.CircuitBreaker,
        on_cancel: Callable[[str, int], None],
        free_slots: Callable[[], int] = lambda: 0,
        slot_idle: Callable[[], bool] = lambda: False,
        on_dispatch: Callable[[pb.BatchUpdateTaskStatusResponse], None] = lambda _: None,
        on_unknown_worker: Callable[[], None],
        make_backoff: Callable[[], backoff.Backoff] = backoff.Backoff,
    ) -> None:
        self._sink = sink
        self._breaker = breaker
        self._on_cancel = on_cancel
        # A report also asks for the worker's next tasks (as many as it has free slots), so
        # finishing one task and getting the next is one call, not two.
        self._free_slots = free_slots
        self._slot_idle = slot_idle
        """Whether a slot is free with no queued task for it (so updates held for the tasks
        a call asked for end their hold when its answer did not fill every slot)."""
        self._on_dispatch = on_dispatch
        self._on_unknown_worker = on_unknown_worker
        self._backoff = make_backoff()
        self._cond = threading.Condition()
        self._buffer: list[pb.UpdateTaskStatusRequest] = []
        self._hold_until: float | None = None
        """While every buffered update may wait: when the first of them must go."""
        self._in_flight_batch: list[pb.UpdateTaskStatusRequest] = []
        self._closed = threading.Event()
        self._kick = threading.Event()
        self._batch_unsupported = False
        self._asking = False
        """A call in flight asked for tasks (read and written under `_cond`)."""
        self._submitted = 0
        self._done = 0
        """Updates submitted, and of them delivered or refused: in order, so the first `_done`."""

    def submit(
        self,
        update: pb.UpdateTaskStatusRequest,
        *,
        may_wait: float = 0.0,
        may_wait_for_answer: float = 0.0,
    ) -> None:
        """Queues one update for delivery.

        `may_wait`: seconds the update may be held for others to join it in one call (a
        RUNNING report waiting for its short task's result). `may_wait_for_answer`: seconds
        it may be held instead while a call in flight asked for tasks (their RUNNING reports
        would join it). An update that may not wait sends everything buffered with it.
        """
        with self._cond:
            if self._asking:
                may_wait = max(may_wait, may_wait_for_answer)
            self._submitted += 1
            first = not self._buffer
            held_until = self._hold_until
            if may_wait > 0 and (held_until is not None or first):
                due = time.monotonic() + may_wait
                self._hold_until = due if held_until is None else min(held_until, due)
            else:
                self._hold_until = None
            self._buffer.append(update)
            # The sender waits for a first update, or for the hold to end: it is woken only
            # when this update changes one of them (a wake-up per report cost a futex call
            # and a round of the GIL, twice per task).
            if first or self._hold_until != held_until:
                self._cond.notify_all()

    def pending(self) -> list[pb.UpdateTaskStatusRequest]:
        """Updates not yet delivered (in flight or buffered), oldest first."""
        with self._cond:
            return [*self._in_flight_batch, *self._buffer]

    def retry_now(self) -> None:
        """Cuts a backoff wait short (the link is back)."""
        self._kick.set()

    def flush(self, timeout: float) -> bool:
        """Waits until nothing is left to deliver; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._buffer and not self._in_flight_batch, timeout=timeout
            )

    def delivered(self, timeout: float) -> bool:
        """Waits until the updates submitted so far are delivered (not those that come
        meanwhile); False on timeout."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._done >= target, timeout=timeout)

    def close(self) -> None:
        """Stops the sender thread after its current call; what is still buffered is logged."""
        self._closed.set()
        self._kick.set()
        with self._cond:
            self._cond.notify_all()
            left = list(self._buffer)
        for update in left:
            _log.error("status update not delivered", extra={"kv": _kv(update)})

    def run(self) -> None:
        """The sender loop; returns after close()."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._buffer) or self._closed.is_set())
                while self._hold_until is not None and not self._closed.is_set():
                    left = self._hold_until - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(timeout=left)
                if self._closed.is_set():
                    return
                batch = self._buffer[:MAX_BATCH]
                del self._buffer[: len(batch)]
                self._hold_until = None
                self._in_flight_batch = batch
            delivered = self._wait_breaker() and self._send(batch)
            # What its answer brought has been started or queued by now. If a slot is still
            # free with nothing queued for it, the updates held for that answer go now: they
            # ask for its next task. (Asked outside `_cond`: the agent's lock comes first.)
            idle = delivered and self._asking and self._slot_idle()
            with self._cond:
                self._asking = False
                if not delivered:
                    self._buffer[:0] = batch
                else:
                    self._done += len(batch)
                    if idle:
                        self._hold_until = None
                self._in_flight_batch = []
                self._cond.notify_all()
            if not delivered:
                self._pause(self._backoff.next_delay())

    def _wait_breaker(self) -> bool:
        while not self._closed.is_set():
            delay = self._breaker.acquire()
            if delay <= 0:
                return True
            self._pause(delay)
        return False

    def _pause(self, seconds: float) -> None:
        self._kick.wait(timeout=seconds)
        self._kick.clear()

    def _send(self, batch: list[pb.UpdateTaskStatusRequest]) -> bool:
        """One delivery attempt; True if the batch is done with (delivered or refused)."""
        response: pb.BatchUpdateTaskStatusResponse | None = None
        try:
            if self._batch_unsupported:
                results = self._send_each(batch)
            else:
                asks = self._free_slots()
                with self._cond:
                    self._asking = asks > 0
                try:
                    response = self._sink.batch_update(batch, max_tasks=asks)
                    results = list(response.results)
                except grpc.RpcError as exc:
                    if client.code_of(exc) is not grpc.StatusCode.INVALID_ARGUMENT:
                        raise
                    _log.warning(
                        "status updates refused as invalid; sending them one by one",
                        extra={"kv": {"error": client.details_of(exc), "updates": len(batch)}},
                    )
                    with self._cond:
                        self._asking = False  # one by one, no call asks for tasks
                    results = self._send_each(batch)
        except grpc.RpcError as exc:
            code = client.code_of(exc)
            if code is grpc.StatusCode.UNIMPLEMENTED and not self._batch_unsupported:
                _log.warning("scheduler lacks BatchUpdateTaskStatus; sending updates one by one")
                self._batch_unsupported = True
                self._breaker.record_success()
                return False
            if client.is_transient(exc):
                self._breaker.record_failure()
            else:
                self._breaker.record_success()
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED):
                self._on_unknown_worker()
            _log.warning(
                "status updates not delivered; will retry",
                extra={
                    "kv": {
                        "code": code.name,
                        "error": client.details_of(exc),
                        "updates": len(batch),
                    }
                },
            )
            return False
        self._breaker.record_success()
        self._backoff.reset()
        self._apply(batch, results)
        if response is not None and (response.tasks or response.cancel_tasks or response.drain):
            self._on_dispatch(response)
        return True

    def _send_each(self, batch: list[pb.UpdateTaskStatusRequest]) -> list[pb.UpdateResult]:
        """Sends the updates one by one, so that one the scheduler cannot take does not hold
        back the others: a hand-back (PENDING), which an older scheduler does not know, goes as
        the infrastructure failure it used to be; any other invalid update is dropped, logged."""
        results: list[pb.UpdateResult] = []
        for update in batch:
            try:
                results.append(self._send_one(update))
            except grpc.RpcError as exc:
                if client.code_of(exc) is not grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                if update.status == pb.PENDING:
                    fallback = pb.UpdateTaskStatusRequest()
                    fallback.CopyFrom(update)
                    fallback.status = pb.FAILED
                    fallback.failure_kind = pb.INFRASTRUCTURE
                    results.append(self._send_one(fallback))
                    continue
                _log.error(
                    "status update refused as invalid; dropped",
                    extra={"kv": {**_kv(update), "error": client.details_of(exc)}},
                )
                results.append(
                    pb.UpdateResult(
                        task_id=update.task_id,
                        attempt=update.attempt,
                        accepted=False,
                        message=client.details_of(exc),
                    )
                )
        return results

    def _send_one(self, update: pb.UpdateTaskStatusRequest) -> pb.UpdateResult:
        try:
            response = self._sink.update_task_status(update)
        except grpc.RpcError as exc:
            if client.code_of(exc) in (
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.NOT_FOUND,
            ):
                return pb.UpdateResult(
                    task_id=update.task_id,
                    attempt=update.attempt,
                    accepted=False,
                    message=client.details_of(exc),
                )
            raise
        return pb.UpdateResult(
            task_id=update.task_id,
            attempt=update.attempt,
            accepted=response.success,
            message=response.message,
            cancel=response.cancel,
        )

    def _apply(
        self, batch: list[pb.UpdateTaskStatusRequest], results: list[pb.UpdateResult]
    ) -> None:
        by_lease = {(r.task_id, r.attempt): r for r in results}
        for update in batch:
            kv = _kv(update)
            result = by_lease.get((update.task_id, update.attempt))
            if result is None:
                _log.debug("status update delivered", extra={"kv": kv})
                continue
            if result.accepted:
                _log.debug("status update accepted", extra={"kv": kv})
            else:
                _log.warning(
                    "status update refused by the scheduler",
                    extra={"kv": {**kv, "reason": result.message}},
                )
            if result.cancel:
                self._on_cancel(update.task_id, update.attempt)
