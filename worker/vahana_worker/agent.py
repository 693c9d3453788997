"""The Worker: registers, long-polls for tasks, runs them in slots, heartbeats, reports, drains.

Threads: the *link* loop (registration, heartbeats, handing back queued tasks that waited too
long), the *poll* loop (one PollForTask always outstanding, asking for as many tasks as there
are free slots, plus room in the prefetch queue), the reporter's sender, and one thread per
running slot (reused: a slot whose task ends starts the next queued one on the same thread).

Prefetch: while the running tasks are short (none has been running `prefetch_wait`, and the
last one took so little that the queued ones should start within half of it: `prefetch_room`),
the worker asks for up to `prefetch` tasks more than it has slots; they wait in its queue, and
a report is held back (≤ `REPORT_HOLD`) while there is a task to go on with (queued, or asked
for by a call in flight), so one call carries several results and brings several tasks. A
queued task that waits `prefetch_wait` for a slot is handed back (status PENDING), as are all
queued tasks when the worker drains.

All calls to the scheduler share one circuit breaker; each loop backs off on its own. Running
tasks never depend on the link: they keep running through an outage and their results wait in
the reporter. Backoffs and breaker are capped by the heartbeat interval (`backoff.reconnect_cap`):
the worker tries to reach the scheduler at least once per interval, so that a restarted
scheduler hears from it within its recovery grace and does not rerun its tasks.

Lifecycle (after Temporal's worker): `run()` first checks that sandboxes can be made in the
working dir (`workdir`; exit 1 saying why if not, before registering) and takes custody of its
tasks' processes (`custody`: reaping orphans, task cgroups, ending what an earlier life of this
worker id left running, the guardian that ends this life's tasks if the worker dies). It then
blocks until `shutdown()` (idempotent, safe from a signal handler) or until a loop dies, then
drains in stages — stop polling, hand back the queued tasks, say DRAINING, give running tasks
`drain_timeout`, kill the rest (reported FAILED/INFRASTRUCTURE "worker shutting down"), end
stray orphans, flush the reporter, say TERMINATED — and returns the exit code.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from vahana_worker import (
    backoff,
    client,
    custody,
    executor,
    messages,
    metrics,
    outputlog,
    reporter,
    sandboxes,
    settings,
    shipping,
    startgate,
    storage,
    sysmetrics,
    threads,
    workdir,
)
from vahana_worker.proto import worker_pb2 as pb

_log = logging.getLogger(__name__)

FLUSH_TIMEOUT = 15.0
"""Seconds the reporter gets on shutdown to deliver the last results."""
STATUS_CALL_TIMEOUT = 5.0
"""Deadline of the DRAINING and TERMINATED calls on shutdown."""
KILLED_EXIT_CODES = frozenset({128 + 1, 128 + 9, 128 + 15, -1, -9, -15})
"""Exit codes of a task killed by SIGHUP, SIGKILL or SIGTERM."""
TERMINATED_EXIT_CODES = frozenset({128 + 15, -15})
"""Exit codes of a task killed by SIGTERM: of those signals the only one the worker outlives
(it drains on it). A SIGKILL or SIGHUP that ended the allocation would have ended the worker too,
which then reports nothing."""
STOP_CHECK = 0.1
"""Seconds between looks at `_stopping` while the poll loop waits to be registered or for the
link: a drain right after start-up must not wait a second for it."""
KILLED_GRACE = 5 * STOP_CHECK
"""Seconds to wait, after a task was killed by SIGTERM, for the worker's own: a batch system
ending the allocation (scancel, walltime) signals the task and the worker at once, and the main
thread acts on the worker's within STOP_CHECK (the rest is room for a busy host). The task's
result, and its slot, wait this long."""
REPORT_HOLD = 0.05
"""Seconds a report may be held for others to join it while the worker has a task to go on
with (queued, or coming in answer to a call in flight): a worker working through a queue of
short tasks then makes one call per queue (their RUNNING reports, results and the next tasks
together), not one or two per task. At 20 ms a busy 2-core host made a call per 4-5 `true`
tasks, not per 7-8, and spent 5 % more CPU per task. A task handed out to an idle worker's
poll, and the result of one with nothing after it, are reported at once."""
REPOLL_WAIT = 0.005
"""Seconds the poll thread waits, after a poll's answer brought tasks, for their RUNNING
reports to be delivered before it polls again: the scheduler hears of them sooner when the
next poll does not arrive with them (bench/README.md has the A/B)."""
REGISTRATION_REFUSALS = 8
"""Registrations in a row the scheduler refuses for the worker's credentials (UNAUTHENTICATED,
PERMISSION_DENIED) before the worker gives up and exits (~45 s of backoff at the default 30 s
heartbeat interval, less at shorter ones, which cap the backoff): a worker that can never
register (a rotated bootstrap secret, another pool's certificate) makes way for one its pool
starts with the right ones, instead of holding its slot forever."""
ALLOCATION_MARGIN = 10.0
"""Seconds before `allocation_ends_at - drain_timeout` at which the worker starts draining."""


@dataclasses.dataclass
class _Slot:
    """A task running in one of the worker's slots."""

    spec: executor.TaskSpec
    run: executor.TaskRun
    queued_at: float = 0.0
    """When it was queued behind the running tasks (monotonic); 0: started when it came."""
    started_at: float = 0.0
    """When it started (monotonic)."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.spec.task_id, self.spec.attempt)


def prefetch_room(prefetch: int, *, slots: int, wait: float, last_run: float) -> int:
    """How many tasks may queue behind the running ones: at most `prefetch`, and only as many
    as are likely to start within half of `wait` if each takes `last_run` seconds (the k-th
    queued starts after about ceil(k / slots) runs), so that tasks of a fair part of a second
    are not queued only to be handed back."""
    runs = wait / 2 / last_run if last_run > 0 else math.inf
    return prefetch if runs >= prefetch else min(prefetch, slots * int(runs))


def _ev(msg: str, *, level: int = logging.INFO, **fields: object) -> None:
    _log.log(level, msg, extra={"kv": fields})


class Worker:
    """One worker process's agent. Construct, call `run()` from the main thread."""

    def __init__(
        self,
        config: settings.Settings,
        *,
        scheduler: client.SchedulerClient | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._client = scheduler or client.SchedulerClient(config)
        # A stand-in client (tests) may carry no credentials: then there is no token to renew.
        self._credentials: client.Credentials = getattr(
            self._client, "credentials", client.Credentials()
        )
        self._now = wall_clock
        self._heartbeat_interval = config.heartbeat_interval
        self._pauses: list[backoff.Backoff] = []
        """Every backoff of the loops: capped anew when the heartbeat interval changes."""
        self._breaker = backoff.CircuitBreaker(failure_threshold=5, reset_timeout=5.0)
        self._breaker.limit(backoff.reconnect_cap(self._heartbeat_interval))
        self._reporter = reporter.Reporter(
            self._client,
            breaker=self._breaker,
            on_cancel=lambda task_id, attempt: self._stop_lease(
                task_id, attempt, executor.StopReason.CANCELLED
            ),
            on_unknown_worker=self._request_register,
            free_slots=self._free_slots,
            slot_idle=self._slot_idle,
            on_dispatch=lambda response: self._handle_assignment(
                list(response.tasks), list(response.cancel_tasks), response.drain, streamed=True
            ),
            make_backoff=self._new_pause,
        )
        self._cpu = sysmetrics.CpuSampler()
        self._working_dir = Path(config.working_dir)

        self._lock = threading.Condition()
        self._slots: dict[tuple[str, int], _Slot] = {}
        self._queued: dict[tuple[str, int], _Slot] = {}
        """Prefetched tasks waiting for a slot, oldest first."""
        self._last_run_seconds: float | None = None
        self._shutdown_requested = threading.Event()
        self._shutdown_reason = ""
        self._fatal: BaseException | None = None
        self._refused_registrations = 0
        self._stopping = threading.Event()  # no more polling, no new tasks
        self._link_stop = threading.Event()  # the link loop ends
        self._link_wake = threading.Event()
        self._needs_register = threading.Event()
        self._needs_register.set()
        self._registered = threading.Event()
        self._poll_lock = threading.Lock()
        self._poll: tuple[grpc.Future, int] | None = None
        self._poll_cancelled = False
        self._threads: list[threading.Thread] = []
        self._task_threads = threads.ThreadReuser("task")
        self._custody = custody.Custody(config)
        self._janitor = executor.Janitor()
        self._sandboxes = sandboxes.Sandboxes(self._working_dir / "tasks")
        self._started = False
        self._outcomes = metrics.OutcomeCounter()
        self._metrics_server: metrics.MetricsServer | None = None
        send = getattr(self._client, "append_output", None)  # stand-in clients may lack it
        self._shipper = (
            shipping.OutputShipper(
                send,
                worker_id=config.worker_id,
                directory=self._working_dir / "task-output",
                # The result carries the last output_limit bytes: a shorter output is whole.
                tail_bytes=config.output_limit,
            )
            if config.stream_output and send is not None
            else None
        )

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        """Runs until shutdown; returns the process exit code (0 clean, 1 after a fatal error)."""
        if self._started:
            raise RuntimeError("Worker.run() may be called once")
        self._started = True
        why = workdir.check(self._working_dir)
        if why:
            _ev(
                "cannot make task sandboxes in the working directory",
                level=logging.ERROR,
                reason=why,
            )
            return 1
        self._sandboxes.sweep()
        if not self._custody.take():
            return 1
        if self._config.metrics_port:
            try:
                self._metrics_server = metrics.MetricsServer(
                    self.metrics_snapshot,
                    host=self._config.metrics_host,
                    port=self._config.metrics_port,
                ).start()
            except OSError as exc:
                _ev(
                    "cannot serve metrics",
                    level=logging.ERROR,
                    address=f"{self._config.metrics_host}:{self._config.metrics_port}",
                    error=str(exc),
                )
                return 1
        _ev(
            "worker starting",
            server=self._config.server_address,
            max_tasks=self._config.max_tasks,
            working_dir=str(self._working_dir),
        )
        if self._shipper is not None:
            # Not guarded: it never raises, and its failure costs followers, not tasks.
            threading.Thread(target=self._shipper.run, name="output", daemon=True).start()
        for name, body in (
            ("link", self._link_loop),
            ("poll", self._poll_loop),
            ("reporter", self._reporter.run),
        ):
            thread = threading.Thread(target=self._guard, args=(name, body), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
        # Python runs signal handlers on the main thread only; a SIGTERM the kernel gives to
        # another thread (gRPC's, a task's) waits for this wait to end: short, so a drain
        # starts within STOP_CHECK, not a second later.
        while not self._shutdown_requested.wait(timeout=STOP_CHECK):
            pass
        self._drain()
        if self._fatal is not None:
            _ev("worker stopped after a fatal error", level=logging.ERROR, error=repr(self._fatal))
            return 1
        _ev("worker stopped")
        return 0

    def shutdown(self, reason: str = "shutdown requested") -> None:
        """Asks the worker to drain and stop. Idempotent; returns at once."""
        with self._lock:
            if self._shutdown_requested.is_set():
                return
            self._shutdown_reason = reason
            self._shutdown_requested.set()

    def _guard(self, name: str, body: Callable[[], None]) -> None:
        """Runs a loop; if it dies, the worker shuts down instead of hanging (fail fast)."""
        try:
            body()
        except BaseException as exc:
            self._fatal = exc
            _log.exception("loop died", extra={"kv": {"loop": name}})
            self.shutdown(reason=f"{name} loop failed: {exc!r}")

    def _drain(self) -> None:
        reason = self._shutdown_reason
        _ev("worker draining", reason=reason, running=len(self._slots))
        self._stopping.set()
        self._cancel_poll(force=True)
        # DRAINING first: the scheduler may still hold this worker's long poll open (a cancel
        # takes a moment to reach it), and a task handed back while it does would go straight
        # back to this worker over that poll, only to be handed back a second time. A draining
        # worker's poll gets nothing.
        self._set_worker_status(pb.DRAINING, reason)
        with self._lock:
            queued = list(self._queued.values())
            self._queued.clear()
        for slot in queued:
            self._hand_back(slot.spec, "the worker is draining")
        grace = 0.0 if self._fatal is not None else self._config.drain_timeout
        with self._lock:
            drained = self._lock.wait_for(lambda: not self._slots, timeout=grace)
            left = list(self._slots.values())
        if not drained:
            for slot in left:
                _ev(
                    "killing task on shutdown", task_id=slot.spec.task_id, attempt=slot.spec.attempt
                )
                slot.run.stop(executor.StopReason.SHUTDOWN)
            with self._lock:
                self._lock.wait_for(lambda: not self._slots, timeout=self._config.kill_grace + 10)
        self._janitor.close()  # every sandbox and task cgroup done with before custody ends
        self._sandboxes.close()
        self._custody.release()
        self._link_stop.set()
        self._link_wake.set()
        self._reporter.retry_now()
        if not self._reporter.flush(timeout=FLUSH_TIMEOUT):
            _ev("could not deliver every result before exiting", level=logging.ERROR)
        self._reporter.close()
        if self._shipper is not None:
            self._shipper.close()
        self._set_worker_status(pb.TERMINATED, reason)
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._client.close()
        if self._metrics_server is not None:
            self._metrics_server.close()

    def metrics_snapshot(self) -> metrics.Snapshot:
        """The figures the optional /metrics endpoint serves."""
        with self._lock:
            active = len(self._slots)  # running; queued tasks are not active
        return metrics.Snapshot(
            active_tasks=active,
            task_slots=self._config.max_tasks,
            outcomes=self._outcomes.counts(),
            breaker_state=self._breaker.state.value,
            buffered_updates=len(self._reporter.pending()),
        )

    def _set_worker_status(self, status: pb.WorkerStatus, reason: str) -> None:
        try:
            self._client.update_worker_status(status, reason, timeout=STATUS_CALL_TIMEOUT)
        except grpc.RpcError as exc:
            _ev(
                "could not report worker status",
                level=logging.WARNING,
                status=pb.WorkerStatus.Name(status),
                code=client.code_of(exc).name,
            )

    # -- shared helpers --------------------------------------------------------------------

    def _leases(self) -> list[tuple[str, int]]:
        """Leases this worker holds: running tasks, and finished ones whose result is not yet
        delivered (else the scheduler, not seeing them, would rerun a task that is done)."""
        with self._lock:  # a finishing task moves from slot to reporter under this lock
            held = dict.fromkeys([*self._slots, *self._queued])
            pending = self._reporter.pending()
        for update in pending:
            held.setdefault((update.task_id, update.attempt))
        return list(held)

    def _free_slots(self) -> int:
        """Tasks to ask the scheduler for: free slots, plus room in the prefetch queue while
        the tasks are short."""
        if self._stopping.is_set():
            return 0
        with self._lock:
            held = len(self._slots) + len(self._queued)
            return max(0, self._config.max_tasks + self._prefetch_locked() - held)

    def _slot_idle(self) -> bool:
        """A slot is free and no queued task waits for one."""
        with self._lock:
            return len(self._slots) < self._config.max_tasks and not self._queued

    def _prefetch_locked(self) -> int:
        """How many tasks may wait in the queue now (caller holds the lock)."""
        wait = self._config.prefetch_wait
        if self._config.prefetch <= 0 or self._last_run_seconds is None:
            return 0
        now = time.monotonic()
        if any(now - slot.started_at >= wait for slot in self._slots.values()):
            return 0  # a long task: what queues behind it would wait, then go back
        return prefetch_room(
            self._config.prefetch,
            slots=self._config.max_tasks,
            wait=wait,
            last_run=self._last_run_seconds,
        )

    def _wait_breaker(self, stop: threading.Event) -> bool:
        """Waits until the circuit breaker lets a call through; False if `stop` came first."""
        while not stop.is_set():
            delay = self._breaker.acquire()
            if delay <= 0:
                return True
            stop.wait(timeout=delay)
        return False

    def _call_failed(
        self, call: str, exc: grpc.RpcError, pause: backoff.Backoff, stop: threading.Event
    ) -> None:
        """Books a failed call (breaker, re-registration) and backs off."""
        code = client.code_of(exc)
        if client.is_transient(exc):
            self._breaker.record_failure()
        else:
            self._breaker.record_success()  # the scheduler answered
        if code is grpc.StatusCode.UNAUTHENTICATED:
            self._credentials.forget()
        if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED):
            self._request_register()
        delay = pause.next_delay()
        _ev(
            "call to scheduler failed",
            level=logging.WARNING,
            call=call,
            code=code.name,
            error=client.details_of(exc),
            retry_in=f"{delay:.2f}s",
        )
        stop.wait(timeout=delay)

    def _new_pause(self) -> backoff.Backoff:
        """A loop's backoff, capped by the heartbeat interval."""
        pause = backoff.Backoff()
        pause.limit(backoff.reconnect_cap(self._heartbeat_interval))
        self._pauses.append(pause)
        return pause

    def _set_heartbeat_interval(self, interval: float) -> None:
        """The interval the scheduler asked for; the waits between tries follow it."""
        self._heartbeat_interval = interval
        cap = backoff.reconnect_cap(interval)
        self._breaker.limit(cap)
        for pause in list(self._pauses):
            pause.limit(cap)

    def _call_succeeded(self, pause: backoff.Backoff) -> None:
        self._breaker.record_success()
        pause.reset()

    def _request_register(self) -> None:
        if not self._needs_register.is_set():
            _ev("re-registering with the scheduler")
        self._registered.clear()
        self._needs_register.set()
        self._link_wake.set()

    # -- link loop: registration and heartbeats -------------------------------------------

    def _link_loop(self) -> None:
        pause = self._new_pause()
        next_beat = 0.0
        # Queued tasks are looked at this often, so none waits much past prefetch_wait.
        tick = self._config.prefetch_wait / 2 if self._config.prefetch > 0 else 5.0
        while not self._link_stop.is_set():
            self._check_allocation_end()
            self._hand_back_stale()
            if self._credentials.renewal_due() and not self._needs_register.is_set():
                self._request_register()  # a fresh token before this one expires
            stopping = self._stopping.is_set() or self._shutdown_requested.is_set()
            if self._needs_register.is_set() and not stopping:
                if self._wait_breaker(self._link_stop) and self._register(pause):
                    next_beat = time.monotonic()  # first figures right away
                continue
            wait = next_beat - time.monotonic()
            if wait > 0:
                self._link_wake.wait(timeout=min(wait, 5.0, tick))
                self._link_wake.clear()
                continue
            if self._wait_breaker(self._link_stop) and self._heartbeat(pause):
                next_beat = time.monotonic() + self._heartbeat_interval

    def _register(self, pause: backoff.Backoff) -> bool:
        request = messages.register_request(self._config, self._leases())
        try:
            response = self._client.register(request)
        except grpc.RpcError as exc:
            if client.code_of(exc) is grpc.StatusCode.FAILED_PRECONDITION:
                # Quarantined: its attempts all failed in this worker. Retrying would change
                # nothing; exiting lets its pool start another worker in its place.
                message = f"the scheduler refuses this worker: {client.details_of(exc)}"
                _ev("giving up: " + message, level=logging.ERROR)
                self._fatal = PermissionError(message)
                self.shutdown(reason=message)
                return False
            if client.code_of(exc) in (
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
            ):
                self._refused_registrations += 1
                if self._refused_registrations >= REGISTRATION_REFUSALS:
                    self._give_up_registering(exc)
                    return False
            self._call_failed("RegisterWorker", exc, pause, self._link_stop)
            return False
        self._refused_registrations = 0
        self._call_succeeded(pause)
        if not response.success:
            delay = pause.next_delay()
            _ev(
                "registration refused",
                level=logging.WARNING,
                reason=response.message,
                retry_in=f"{delay:.2f}s",
            )
            self._link_stop.wait(timeout=delay)
            return False
        if response.HasField("heartbeat_interval"):
            interval = messages.seconds_of(response.heartbeat_interval)
            if interval > 0:
                self._set_heartbeat_interval(interval)
        self._needs_register.clear()
        startgate.release_soon()  # the workers started with it: at its first task, or soon
        self._registered.set()
        _ev(
            "registered",
            running=len(request.running_tasks),
            heartbeat_interval=f"{self._heartbeat_interval:g}s",
        )
        for lease in response.revoked_tasks:
            self._stop_lease(lease.task_id, lease.attempt, executor.StopReason.REVOKED)
        self._reporter.retry_now()
        return True

    def _give_up_registering(self, exc: grpc.RpcError) -> None:
        message = (
            f"the scheduler refused this worker's credentials {self._refused_registrations} "
            f"times in a row ({client.code_of(exc).name}: {client.details_of(exc)})"
        )
        _ev("giving up: " + message, level=logging.ERROR)
        self._fatal = PermissionError(message)
        self.shutdown(reason=message)

    def _worker_status(self) -> pb.WorkerStatus:
        if self._stopping.is_set():
            return pb.DRAINING
        with self._lock:
            full = len(self._slots) >= self._config.max_tasks
        return pb.BUSY if full else pb.AVAILABLE

    def _heartbeat(self, pause: backoff.Backoff) -> bool:
        leases = self._leases()
        mem = sysmetrics.memory()
        request = pb.HeartbeatRequest(
            worker_id=self._config.worker_id,
            metrics=pb.WorkerMetrics(
                cpu_usage=self._cpu.percent(),
                memory_usage=mem.percent,
                active_tasks=len(leases),
                timestamp=messages.timestamp(self._now()),
                memory_used_bytes=mem.used_bytes,
                load_average=sysmetrics.load_average(),
            ),
            status=self._worker_status(),
            running_tasks=messages.leases(leases),
        )
        try:
            response = self._client.heartbeat(request)
        except grpc.RpcError as exc:
            self._call_failed("SendHeartbeat", exc, pause, self._link_stop)
            return False
        self._call_succeeded(pause)
        _log.debug("heartbeat sent", extra={"kv": {"active_tasks": len(leases)}})
        for lease in response.cancel_tasks:
            self._stop_lease(lease.task_id, lease.attempt, executor.StopReason.CANCELLED)
        if response.reregister:
            self._request_register()
        if response.drain:
            self.shutdown(reason="drain requested by the scheduler")
        return True

    def _check_allocation_end(self) -> None:
        ends_at = self._config.allocation_ends_at
        if ends_at is None or self._shutdown_requested.is_set():
            return
        if self._now() >= ends_at - self._config.drain_timeout - ALLOCATION_MARGIN:
            self.shutdown(reason="allocation is ending")

    # -- poll loop -------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        pause = self._new_pause()
        while not self._stopping.is_set():
            if not self._registered.wait(timeout=STOP_CHECK):
                continue
            if not self._breaker.wait_closed(timeout=STOP_CHECK):
                continue  # heartbeats and reports probe the link; the long poll waits
            free = self._free_slots()
            _log.debug("polling", extra={"kv": {"max_tasks": free}})
            future = self._client.poll(max_tasks=free, wait=self._config.poll_wait)
            with self._poll_lock:
                self._poll = (future, free)
                self._poll_cancelled = False
            if self._stopping.is_set():
                # The drain began while this poll was being made: its cancel found none.
                self._cancel_poll(force=True)
            elif free == 0 and self._free_slots() > 0:
                self._cancel_poll()  # a slot freed while the poll was being set up
            try:
                response = future.result()
            except (grpc.RpcError, grpc.FutureCancelledError) as exc:
                with self._poll_lock:
                    cancelled_by_us = self._poll_cancelled
                    self._poll = None
                if cancelled_by_us or self._stopping.is_set():
                    continue
                if isinstance(exc, grpc.RpcError):
                    self._call_failed("PollForTask", exc, pause, self._stopping)
                continue
            with self._poll_lock:
                self._poll = None
            self._call_succeeded(pause)
            self._handle_poll(response)
            if response.has_task or response.more_tasks:
                # The tasks' RUNNING reports go first: sent together, the next poll and the
                # reports would each wait for the other at the scheduler.
                self._reporter.delivered(timeout=REPOLL_WAIT)

    def _cancel_poll(self, *, force: bool = False) -> None:
        """Cancels the outstanding poll if it asked for no tasks (or on shutdown, `force`).

        A poll asking for tasks is left alone otherwise: cancelling it could lose tasks the
        scheduler is handing out at that moment.
        """
        with self._poll_lock:
            if self._poll is None:
                return
            future, asked = self._poll
            if asked == 0 or force:
                self._poll_cancelled = True
                future.cancel()

    def _handle_poll(self, response: pb.PollForTaskResponse) -> None:
        tasks = ([response.task] if response.has_task else []) + list(response.more_tasks)
        self._handle_assignment(tasks, list(response.cancel_tasks), response.drain)

    def _handle_assignment(
        self,
        tasks: list[pb.Task],
        cancels: list[pb.TaskLease],
        drain: bool,
        *,
        streamed: bool = False,
    ) -> None:
        """Acts on what a poll or a report's answer handed out: stops, new tasks, drain."""
        for lease in cancels:
            self._stop_lease(lease.task_id, lease.attempt, executor.StopReason.CANCELLED)
        _log.debug(
            "tasks handed out",
            extra={"kv": {"tasks": len(tasks), "cancels": len(cancels), "drain": drain}},
        )
        # Tasks a poll hands out report RUNNING at once: once the first of them has, the
        # report's threads are let through before the task starts (`_start_task`); the
        # RUNNINGs of the others go together in the reporter's next call.
        pause = not streamed
        for task in tasks:
            try:
                if self._start_task(task, streamed=streamed, pause=pause):
                    pause = False
            except Exception as error:
                # One task that cannot start (a bad value, no thread to spare) must not take
                # the worker and its running tasks down: hand it back to be run elsewhere.
                _log.exception("task could not start", extra={"kv": {"task_id": task.id}})
                self._reporter.submit(
                    messages.final_update(
                        worker_id=self._config.worker_id,
                        task_id=task.id,
                        attempt=task.attempt,
                        result=executor.Result(
                            executor.Outcome.FAILED,
                            message=f"the worker could not start it: {error}",
                            failure_kind=executor.FailureKind.INFRASTRUCTURE,
                        ),
                        now=self._now(),
                    )
                )
        if drain:
            self.shutdown(reason="drain requested by the scheduler")

    # -- tasks -----------------------------------------------------------------------------

    def _start_task(self, task: pb.Task, *, streamed: bool = False, pause: bool = False) -> bool:
        """Starts the task, or queues it behind the running ones, or hands it back (draining).
        `pause`: once a task that starts at once has reported RUNNING, let the report's
        threads run before starting it; returns whether it did."""
        spec = messages.spec_from_task(
            task,
            default_timeout=self._config.task_timeout,
            default_limits=self._config.task_limits,
        )
        run = executor.TaskRun(
            spec,
            working_dir=self._working_dir,
            output_limit=self._config.output_limit,
            keep_sandbox=self._config.keep_sandboxes,
            base_env=self._config.task_env,
            output_root=Path(self._config.output_dir) if self._config.output_dir else None,
            user=self._config.task_user_ids(),
            cgroup_manager=self._custody.cgroups,
            orphans=self._custody.orphans,
            worker_id=self._config.worker_id,
            kill_grace=self._config.kill_grace,
            janitor=self._janitor,
            sandboxes=self._sandboxes,
            stores=self._config.stores,
            spool=(
                self._shipper.path(executor.sandbox_name(spec.task_id, spec.attempt))
                if self._shipper is not None
                else None
            ),
            spool_limit=self._config.output_keep,
            # The workers started with this one wait for its first task (`startgate`).
            on_start=startgate.release,
        )
        slot = _Slot(spec, run)
        with self._lock:
            if slot.key in self._slots or slot.key in self._queued:
                _ev(
                    "task already held; duplicate ignored",
                    level=logging.WARNING,
                    task_id=spec.task_id,
                    attempt=spec.attempt,
                )
                return False
            refuse = self._stopping.is_set()
            start = not refuse and len(self._slots) < self._config.max_tasks
            if start:
                slot.started_at = time.monotonic()
                self._slots[slot.key] = slot
            elif not refuse:
                # Every slot is busy: the scheduler gave it as prefetch. It waits its turn.
                slot.queued_at = time.monotonic()
                self._queued[slot.key] = slot
        if refuse:
            self._hand_back(spec, "the worker is draining")  # handed out while we stopped
        elif start:
            # Reported here, not from the task's thread: the scheduler hears of it a thread
            # hand-over sooner. One handed out with a report's answer may wait for its result.
            self._report_running(spec, may_wait=REPORT_HOLD if streamed else 0.0)
            if pause:
                # The report goes on through two more threads, the reporter's and then gRPC's,
                # which would each wait for the GIL while this (poll) thread starts the task
                # and polls again: about half a millisecond of the task's dispatch.
                threads.let_others_run()
            try:
                self._task_threads.submit(lambda: self._run_slot(slot))
            except BaseException:
                # No thread to run it: the slot is free again, and the caller reports the
                # task failed (after its RUNNING).
                with self._lock:
                    self._slots.pop(slot.key, None)
                    self._lock.notify_all()
                raise
            return pause
        return False

    def _report_running(self, spec: executor.TaskSpec, *, may_wait: float) -> None:
        self._reporter.submit(
            messages.running_update(
                worker_id=self._config.worker_id,
                task_id=spec.task_id,
                attempt=spec.attempt,
                now=self._now(),
            ),
            may_wait=may_wait,
        )

    def _run_slot(self, slot: _Slot) -> None:
        """Runs the slot's task, then the queued ones that the slot takes over in turn."""
        next_slot: _Slot | None = slot
        while next_slot is not None:
            next_slot = self._run_task(next_slot)

    def _run_task(self, slot: _Slot) -> _Slot | None:
        """Runs one task and reports it; returns the queued task this slot goes on with."""
        spec = slot.spec
        if slot.queued_at:
            # Taken from the queue: RUNNING can wait for the result unless this task emptied
            # the queue, when the call should go now and bring the next tasks.
            with self._lock:
                may_wait = REPORT_HOLD if self._queued else 0.0
            self._report_running(spec, may_wait=may_wait)
        _ev(
            "task started", task_id=spec.task_id, attempt=spec.attempt, timeout=f"{spec.timeout:g}s"
        )
        if self._shipper is not None:
            self._shipper.track(spec.task_id, spec.attempt, slot.run.sandbox_name)
        try:
            result = slot.run.run()
        except Exception as exc:  # the worker's fault (disk full, ...), not the task's
            _log.exception(
                "task crashed in the worker",
                extra={"kv": {"task_id": spec.task_id, "attempt": spec.attempt}},
            )
            result = executor.Result(
                executor.Outcome.FAILED,
                message=f"worker error: {exc}",
                failure_kind=executor.FailureKind.INFRASTRUCTURE,
            )
        if self._killed_with_the_worker(result):  # the allocation ended: not the task's fault
            result = dataclasses.replace(
                result,
                failure_kind=executor.FailureKind.INFRASTRUCTURE,
                message="killed by a signal while the worker was stopping (allocation ended)",
            )
        if self._config.task_output_url:
            result = self._keep_output(slot, result)
        if self._shipper is not None:
            # The output is complete at the scheduler before the result says the task ended.
            self._shipper.finish(spec.task_id, spec.attempt)
        seconds = time.monotonic() - slot.started_at
        _ev(
            "task finished",
            task_id=spec.task_id,
            attempt=spec.attempt,
            outcome=result.outcome.value,
            exit_code=result.exit_code,
            failure_kind=result.failure_kind.value,
            message=result.message or None,
            seconds=f"{seconds:.3f}",
        )
        self._outcomes.add(result.outcome.value)
        with self._lock:
            # Free the slot and queue the result together: the report then asks for the next
            # task, and no heartbeat sees the lease in neither place.
            self._slots.pop(slot.key, None)
            self._last_run_seconds = seconds
            next_slot = self._take_queued_locked()
            # With a queued task to go on with, or a call in flight that asked for tasks, the
            # result may wait to share a call with the next task's RUNNING.
            self._report(
                spec,
                result,
                may_wait=REPORT_HOLD if next_slot is not None else 0.0,
                may_wait_for_answer=REPORT_HOLD,
            )
            self._lock.notify_all()
        # A poll held for zero tasks is not re-issued here: the scheduler answers it when the
        # report has freed the slot and brought no task with it.
        return next_slot

    def _killed_with_the_worker(self, result: executor.Result) -> bool:
        """True if the signal that killed the task came as the worker itself was stopping.
        Only a task that failed on its own is asked about: a timed-out one was killed by this
        worker, and one that hit one of its limits (the kernel kills at the memory limit)
        failed on its own account."""
        if (
            result.outcome != executor.Outcome.FAILED
            or result.failure_kind != executor.FailureKind.TASK_ERROR
            or result.exit_code not in KILLED_EXIT_CODES
            or result.limit_hit
        ):
            return False
        if result.exit_code in TERMINATED_EXIT_CODES:
            return self._stopping.wait(KILLED_GRACE)
        return self._stopping.is_set()

    def _keep_output(self, slot: _Slot, result: executor.Result) -> executor.Result:
        """Keeps the ended attempt's whole output in the pool's storage (before the shipper
        removes its spool); a failure is told in the message, the outcome stays."""
        spec, name = slot.spec, slot.run.sandbox_name
        try:
            url = outputlog.keep(
                prefix=self._config.task_output_url,
                task_id=spec.task_id,
                attempt=spec.attempt,
                spool=self._shipper.path(name) if self._shipper is not None else None,
                tail=result.output_tail,
                cap=self._config.output_keep,
                scratch=self._working_dir / "task-output" / f"{name}.tail",
                stores=self._config.stores,
            )
        except (storage.TransferError, OSError) as exc:
            where = outputlog.location(self._config.task_output_url, spec.task_id, spec.attempt)
            note = f"whole output not kept at {where}: {exc}"
            _ev(
                "output not kept",
                level=logging.WARNING,
                task_id=spec.task_id,
                attempt=spec.attempt,
                error=str(exc),
            )
            message = f"{result.message}; {note}" if result.message else note
            return dataclasses.replace(result, message=message)
        return dataclasses.replace(result, output_log=url)

    def _take_queued_locked(self) -> _Slot | None:
        """Moves the oldest queued task into a free slot (caller holds the lock)."""
        if not self._queued or self._stopping.is_set():
            return None
        slot = self._queued.pop(next(iter(self._queued)))
        slot.started_at = time.monotonic()
        self._slots[slot.key] = slot
        return slot

    def _hand_back_stale(self) -> None:
        """Hands back queued tasks that waited `prefetch_wait` for a slot (a task before them
        turned out long): elsewhere, or here later, they need not wait for it."""
        deadline = time.monotonic() - self._config.prefetch_wait
        with self._lock:
            stale = [slot for slot in self._queued.values() if slot.queued_at <= deadline]
            for slot in stale:
                del self._queued[slot.key]
            if stale:
                self._last_run_seconds = None  # no more prefetch until a short task ends
        for slot in stale:
            self._hand_back(
                slot.spec,
                f"waited {self._config.prefetch_wait:g}s in the worker's queue for a slot",
            )

    def _hand_back(self, spec: executor.TaskSpec, why: str) -> None:
        _ev("handing back a task not started", task_id=spec.task_id, attempt=spec.attempt, why=why)
        self._reporter.submit(
            messages.hand_back_update(
                worker_id=self._config.worker_id,
                task_id=spec.task_id,
                attempt=spec.attempt,
                why=why,
                now=self._now(),
            )
        )

    def _report(
        self,
        spec: executor.TaskSpec,
        result: executor.Result,
        *,
        may_wait: float = 0.0,
        may_wait_for_answer: float = 0.0,
    ) -> None:
        self._reporter.submit(
            messages.final_update(
                worker_id=self._config.worker_id,
                task_id=spec.task_id,
                attempt=spec.attempt,
                result=result,
                now=self._now(),
            ),
            may_wait=may_wait,
            may_wait_for_answer=may_wait_for_answer,
        )

    def _stop_lease(self, task_id: str, attempt: int, reason: executor.StopReason) -> None:
        """Stops the matching running task(s); attempt 0 matches every attempt. A matching
        queued task is dropped (revoked), reported cancelled, or handed back (shutdown)."""
        with self._lock:
            slots = [
                slot
                for (tid, att), slot in self._slots.items()
                if tid == task_id and attempt in (0, att)
            ]
            queued = [
                slot
                for (tid, att), slot in self._queued.items()
                if tid == task_id and attempt in (0, att)
            ]
            for slot in queued:
                del self._queued[slot.key]
        if not slots and not queued:
            _log.debug(
                "stop for a task not running here",
                extra={"kv": {"task_id": task_id, "attempt": attempt}},
            )
        for slot in queued:
            _ev(
                "dropping queued task",
                task_id=task_id,
                attempt=slot.spec.attempt,
                reason=reason.value,
            )
            if reason is executor.StopReason.CANCELLED:
                self._report(
                    slot.spec,
                    executor.Result(
                        executor.Outcome.CANCELLED, message="cancelled before it started"
                    ),
                )
            elif reason is executor.StopReason.SHUTDOWN:
                self._hand_back(slot.spec, "the worker is shutting down")
        for slot in slots:
            _ev("stopping task", task_id=task_id, attempt=slot.spec.attempt, reason=reason.value)
            slot.run.stop(reason)
