"""Kubernetes' view of the scheduler: Task status and Worker objects, written with few API calls.

The store is the record; these objects are its face. Task status is coalesced: however often a
task changes between two flushes, its object gets one patch with the latest state. Worker
objects are patched when their state or task count changes, and for metrics at most every
`metrics_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from vahana.core import events as core_events
from vahana.core import models, reasons
from vahana.k8s import array_status, events, resources
from vahana.scheduling import records, scheduler

log = logging.getLogger(__name__)

RECHECK_SECONDS = 5.0
"""How often waiting Tasks' pending reasons are compared with what their status says."""


@dataclasses.dataclass
class TrackedTask:
    namespace: str
    name: str
    ttl_seconds: int | None = None
    deleting: bool = False
    uid: str = ""
    """The Task object's uid: its Events name it."""
    seen: core_events.Seen | None = None
    """What its Events have said so far."""
    reason: str = ""
    """The pending reason its status says (written last)."""


class TaskStatusMirror:
    """Writes scheduler task changes to the status of their Task objects, coalesced."""

    def __init__(
        self,
        sched: scheduler.Scheduler,
        api: k8s.ApiClient,
        *,
        flush_seconds: float = 0.5,
        recorder: events.EventRecorder | None = None,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        """`recorder`: where the Tasks' Events go (one per status write at most, plus a retry);
        None: no Events. `recheck_seconds`: how often waiting Tasks' pending reasons are looked
        at again (they change with the workers, not only with the task)."""
        self._scheduler = sched
        self._recorder = recorder
        self._objects = k8s.CustomObjectsApi(api)
        self._flush_seconds = flush_seconds
        self._tracked: dict[str, TrackedTask] = {}
        self._arrays: dict[tuple[str, str], array_status.TrackedArray] = {}
        self._array_of: dict[str, tuple[str, str]] = {}
        """Instance id → (namespace, name) of its array's Task object."""
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self.writes = 0
        """Status patches and deletions sent to the API server, for the bounded-writes figure."""
        self._recheck_seconds = recheck_seconds
        self._rechecked = time.monotonic()
        sched.add_listener(self._on_change)

    def track(
        self,
        task_id: str,
        namespace: str,
        name: str,
        ttl_seconds: int | None,
        uid: str = "",
    ) -> None:
        self._tracked[task_id] = TrackedTask(namespace, name, ttl_seconds, uid=uid)
        self._dirty.add(task_id)
        self._wake.set()

    def untrack(self, task_id: str) -> None:
        tracked = self._tracked.pop(task_id, None)
        self._dirty.discard(task_id)
        if tracked is not None and tracked.uid and self._recorder is not None:
            self._recorder.forget(tracked.uid)

    def track_array(
        self, instances: list[models.TaskRecord], namespace: str, name: str, ttl: int | None
    ) -> array_status.TrackedArray:
        """An array's Task object shows what its instances add up to; the caller writes the
        first status (`status()` of what this returns)."""
        key = (namespace, name)
        tracked = array_status.TrackedArray(
            namespace,
            name,
            ttl,
            phases={t.id: t.phase for t in instances},
            indices={t.id: t.spec.index for t in instances},
        )
        self._arrays[key] = tracked
        for task in instances:
            self._array_of[task.id] = key
            if task.is_final:
                tracked.update(task)
        return tracked

    def array_instances(self, namespace: str, name: str) -> list[str]:
        """Ids of the instances of the array tracked for that Task object ([] if none)."""
        tracked = self._arrays.get((namespace, name))
        return list(tracked.phases) if tracked is not None else []

    def untrack_array(self, namespace: str, name: str) -> None:
        tracked = self._arrays.pop((namespace, name), None)
        if tracked is not None:
            for task_id in tracked.phases:
                self._array_of.pop(task_id, None)
        self._dirty.discard(_array_key((namespace, name)))

    def _on_change(self, task: models.TaskRecord) -> None:
        if task.id in self._tracked:
            self._dirty.add(task.id)
            self._wake.set()
            return
        key = self._array_of.get(task.id)
        if key is not None and self._arrays[key].update(task):
            self._dirty.add(_array_key(key))
            self._wake.set()

    def recheck_pending(self) -> int:
        """Marks the waiting Tasks whose pending reason changed in kind since it was written
        (the pool's first worker came, or a quota freed): a reason changes with the workers
        and queues, which tell the mirror nothing. Returns how many it marked."""
        marked = 0
        for task_id, tracked in self._tracked.items():
            if task_id in self._dirty or not tracked.reason:
                continue
            try:
                task = self._scheduler.get_task(task_id)
            except records.UnknownTask:
                continue
            reason = self._scheduler.pending_reason(task)
            if reasons.kind(reason) != reasons.kind(tracked.reason):
                self._dirty.add(task_id)
                marked += 1
        return marked

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._recheck_seconds)
            self._wake.clear()
            if time.monotonic() - self._rechecked >= self._recheck_seconds:
                self._rechecked = time.monotonic()
                self.recheck_pending()
            if not self._dirty:
                continue
            dirty, self._dirty = self._dirty, set()
            for task_id in dirty:
                try:
                    await self._write(task_id)
                except Exception as error:  # API server unreachable (urllib3), …: retry later
                    log.warning("status write failed task_id=%s: %s", task_id, error)
                    self._dirty.add(task_id)
                    self._wake.set()
            # Coalescing window: changes during it go out together in the next round.
            await asyncio.sleep(self._flush_seconds)

    async def _write(self, task_id: str) -> None:
        if task_id.startswith(_ARRAY):
            await self._write_array(task_id)
            return
        tracked = self._tracked.get(task_id)
        if tracked is None:
            return
        try:
            task = self._scheduler.get_task(task_id)
        except records.UnknownTask:
            return
        reason = self._scheduler.pending_reason(task)
        body = {"status": resources.task_status(task, reason)}
        try:
            await asyncio.to_thread(
                self._objects.patch_namespaced_custom_object_status,
                resources.GROUP,
                resources.VERSION,
                tracked.namespace,
                resources.TASKS,
                tracked.name,
                body,
            )
            self.writes += 1
            tracked.reason = reason
        except ApiException as error:
            if error.status == 404:
                self.untrack(task_id)
                return
            log.warning("status write failed task_id=%s: %s", task_id, error.reason)
            self._dirty.add(task_id)
            self._wake.set()
            return
        await self._record_events(tracked, task, reason)
        if task.is_final and tracked.ttl_seconds is not None and not tracked.deleting:
            tracked.deleting = True
            self._delete_later(tracked, task.finished_at or time.time())

    async def _record_events(
        self, tracked: TrackedTask, task: models.TaskRecord, pending_reason: str
    ) -> None:
        if self._recorder is None or not tracked.uid:
            return
        why_ended = ""
        untold = core_events.untold_retry(tracked.seen, task)
        if untold is not None:  # rare: a retry that began and went on between two writes
            attempts = await self._scheduler.list_attempts_async(task.id)
            why_ended = next((a.message for a in attempts if a.attempt == untold), "")
        found, tracked.seen = core_events.task_events(tracked.seen, task, pending_reason, why_ended)
        ref = events.ObjectRef(
            "Task",
            f"{resources.GROUP}/{resources.VERSION}",
            tracked.namespace,
            tracked.name,
            tracked.uid,
        )
        for event in found:
            await self._recorder.record(ref, event)

    async def _write_array(self, dirty_key: str) -> None:
        namespace, _, name = dirty_key[len(_ARRAY) :].partition("/")
        tracked = self._arrays.get((namespace, name))
        if tracked is None:
            return
        body = {"status": tracked.status()}
        try:
            await asyncio.to_thread(
                self._objects.patch_namespaced_custom_object_status,
                resources.GROUP,
                resources.VERSION,
                namespace,
                resources.TASKS,
                name,
                body,
            )
            self.writes += 1
        except ApiException as error:
            if error.status == 404:
                self.untrack_array(namespace, name)
                return
            log.warning("status write failed array=%s/%s: %s", namespace, name, error.reason)
            tracked.written = None
            self._dirty.add(dirty_key)
            self._wake.set()
            return
        final = body["status"]["completionTime"] is not None
        if final and tracked.ttl_seconds is not None and not tracked.deleting:
            tracked.deleting = True
            self._delete_later(
                TrackedTask(namespace, name, tracked.ttl_seconds, deleting=True),
                tracked.finished_at or time.time(),
            )

    def keep_for_ttl(
        self, namespace: str, name: str, ttl_seconds: int | None, completion_time: str | None
    ) -> None:
        """A Task that finished before this operator started: remove it when its TTL is up."""
        if ttl_seconds is None:
            return
        finished = time.time()
        if completion_time:
            finished = datetime.datetime.fromisoformat(
                completion_time.replace("Z", "+00:00")
            ).timestamp()
        self._delete_later(TrackedTask(namespace, name, ttl_seconds, deleting=True), finished)

    def _delete_later(self, tracked: TrackedTask, finished_at: float) -> None:
        assert tracked.ttl_seconds is not None
        left = max(0.0, finished_at + tracked.ttl_seconds - time.time())
        asyncio.get_running_loop().call_later(
            left, lambda: asyncio.ensure_future(self._delete(tracked))
        )

    async def _delete(self, tracked: TrackedTask) -> None:
        """Removes a finished Task object after its TTL; the store keeps the history."""
        try:
            await asyncio.to_thread(
                self._objects.delete_namespaced_custom_object,
                resources.GROUP,
                resources.VERSION,
                tracked.namespace,
                resources.TASKS,
                tracked.name,
            )
            self.writes += 1
            log.info("removed finished Task %s/%s after its TTL", tracked.namespace, tracked.name)
        except ApiException as error:
            if error.status != 404:
                log.warning(
                    "TTL deletion of %s/%s failed: %s",
                    tracked.namespace,
                    tracked.name,
                    error.reason,
                )


_ARRAY = "array:"


def _array_key(key: tuple[str, str]) -> str:
    """The array's entry among the dirty task ids."""
    return f"{_ARRAY}{key[0]}/{key[1]}"


PoolLookup = Callable[[str], "tuple[str, str, str] | None"]
"""Scheduler pool key → (namespace, name, uid) of its WorkerPool, if it is one."""


@dataclasses.dataclass
class _Written:
    namespace: str
    name: str
    state: tuple[Any, ...]
    metrics_at: float


class WorkerMirror:
    """Keeps one Worker object per registered worker, owned by its WorkerPool."""

    def __init__(
        self,
        sched: scheduler.Scheduler,
        api: k8s.ApiClient,
        *,
        pool_of: PoolLookup,
        default_namespace: str,
        metrics_seconds: float = 10.0,
        tick_seconds: float = 1.0,
    ) -> None:
        self._scheduler = sched
        self._objects = k8s.CustomObjectsApi(api)
        self._pool_of = pool_of
        self._default_namespace = default_namespace
        self._metrics_seconds = metrics_seconds
        self._tick = tick_seconds
        self._written: dict[str, _Written] = {}
        self.writes = 0

    async def run(self) -> None:
        await self._adopt()
        while True:
            try:
                await self.sync()
            except Exception:
                log.exception("worker mirror sync failed")
            await asyncio.sleep(self._tick)

    async def _adopt(self) -> None:
        """Learns the Worker objects a previous operator left, so none is created twice."""
        with contextlib.suppress(Exception):  # none adopted: creating them again gets a 409
            listing = await asyncio.to_thread(
                self._objects.list_cluster_custom_object,
                resources.GROUP,
                resources.VERSION,
                resources.WORKERS,
                label_selector=f"{resources.MANAGED_LABEL}=vahana",
            )
            for item in cast(dict[str, Any], listing).get("items", []):
                worker_id = (item.get("status") or {}).get("workerId")
                if worker_id:
                    meta = item["metadata"]
                    self._written[worker_id] = _Written(meta["namespace"], meta["name"], (), 0.0)

    async def sync(self) -> None:
        now = time.time()
        live = {worker.id: worker for worker in self._scheduler.list_workers()}
        for worker_id, worker in live.items():
            state = (worker.state.value, len(worker.leases), worker.pool)
            written = self._written.get(worker_id)
            if written is None or written.state == ():
                await self._create(worker, state, now)
            elif written.state != state or now - written.metrics_at >= self._metrics_seconds:
                await self._patch(worker, written, state, now)
        for worker_id in [w for w in self._written if w not in live]:
            await self._delete(worker_id)

    def _place(
        self, worker: models.WorkerRecord
    ) -> tuple[str, list[dict[str, Any]], dict[str, str]]:
        pool = self._pool_of(worker.pool) if worker.pool else None
        labels = {resources.MANAGED_LABEL: "vahana"}
        if pool is None:
            return self._default_namespace, [], labels
        namespace, name, uid = pool
        labels[resources.POOL_LABEL] = name
        owner = {
            "apiVersion": f"{resources.GROUP}/{resources.VERSION}",
            "kind": "WorkerPool",
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
        return namespace, [owner], labels

    async def _create(
        self, worker: models.WorkerRecord, state: tuple[Any, ...], now: float
    ) -> None:
        namespace, owners, labels = self._place(worker)
        name = resources.worker_object_name(worker.id)
        body = {
            "apiVersion": f"{resources.GROUP}/{resources.VERSION}",
            "kind": "Worker",
            "metadata": {"name": name, "labels": labels, "ownerReferences": owners},
        }
        try:
            await asyncio.to_thread(
                self._objects.create_namespaced_custom_object,
                resources.GROUP,
                resources.VERSION,
                namespace,
                resources.WORKERS,
                body,
            )
            self.writes += 1
        except ApiException as error:
            if error.status != 409:  # already there (adopted): just write the status
                log.warning("creating Worker %s/%s failed: %s", namespace, name, error.reason)
                return
        written = _Written(namespace, name, (), 0.0)
        self._written[worker.id] = written
        await self._patch(worker, written, state, now)

    async def _patch(
        self, worker: models.WorkerRecord, written: _Written, state: tuple[Any, ...], now: float
    ) -> None:
        body = {"status": resources.worker_status(worker)}
        try:
            await asyncio.to_thread(
                self._objects.patch_namespaced_custom_object_status,
                resources.GROUP,
                resources.VERSION,
                written.namespace,
                resources.WORKERS,
                written.name,
                body,
            )
            self.writes += 1
        except ApiException as error:
            if error.status == 404:
                written.state = ()  # gone (its pool was deleted?): create again next round
            else:
                log.warning("Worker status write failed worker_id=%s: %s", worker.id, error.reason)
            return
        written.state, written.metrics_at = state, now

    async def _delete(self, worker_id: str) -> None:
        written = self._written.pop(worker_id)
        try:
            await asyncio.to_thread(
                self._objects.delete_namespaced_custom_object,
                resources.GROUP,
                resources.VERSION,
                written.namespace,
                resources.WORKERS,
                written.name,
            )
            self.writes += 1
        except ApiException as error:
            if error.status != 404:
                log.warning("deleting Worker %s failed: %s", written.name, error.reason)
