"""Task resources: create → queue; delete → cancel the running attempt, then let go."""

from __future__ import annotations

import dataclasses
from typing import Any

import kopf

from vahana.core import arrays
from vahana.k8s import pipelines, resources
from vahana.manifests import tasks as task_manifests
from vahana.scheduling import pool_manager, records

FINAL_PHASES = {"Completed", "Failed", "Cancelled", "TimedOut", "UpstreamFailed"}


def register(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.resume(resources.GROUP, resources.VERSION, resources.TASKS, registry=registry)
    @kopf.on.create(
        resources.GROUP,
        resources.VERSION,
        resources.TASKS,
        registry=registry,
        retries=10,
        backoff=2,
    )
    async def task_create(
        body: kopf.Body,
        meta: kopf.Meta,
        spec: kopf.Spec,
        memo: kopf.Memo,
        patch: kopf.Patch,
        logger: Any,
        **_: Any,
    ) -> None:
        if body.get("status", {}).get("phase") in FINAL_PHASES:
            # Finished before this operator started (a new store, a new leader): the object
            # keeps its result; running it again would run a finished task twice.
            memo.task_mirror.keep_for_ttl(
                meta["namespace"],
                meta["name"],
                spec.get("ttlSecondsAfterFinished"),
                body["status"].get("completionTime"),
            )
            return
        try:
            submission = task_manifests.submission_from_resource(resources.plain(body))
        except task_manifests.ManifestError as error:
            patch.status["phase"] = "Failed"
            patch.status["message"] = str(error)
            patch.status["conditions"] = [
                resources.condition(
                    "Accepted", False, "InvalidSpec", str(error), generation=meta.get("generation")
                )
            ]
            raise kopf.PermanentError(f"invalid Task: {error}") from error
        namespace = meta["namespace"]
        if spec.get("pool"):
            submission = dataclasses.replace(
                submission, pool=pool_manager.pool_key(namespace, spec["pool"])
            )
        try:
            if submission.array is not None:
                ids = await memo.scheduler.submit_async(arrays.expand(submission))
            else:
                ids = await memo.scheduler.submit_async([submission])
        except records.RefusedDependencies as error:
            await _refused(error, meta, memo, patch)
            raise  # _refused raises; this is for the type checker
        if submission.array is not None:
            instances = [memo.scheduler.get_task(task_id) for task_id in ids]
            tracked = memo.task_mirror.track_array(
                instances, namespace, meta["name"], spec.get("ttlSecondsAfterFinished")
            )
            patch.status.update(tracked.status())
            patch.status["observedGeneration"] = meta.get("generation")
            message = f"accepted as an array of {len(ids):,} instances"
            patch.status["conditions"] = [
                resources.condition(
                    "Accepted", True, "Queued", message, generation=meta.get("generation")
                )
            ]
            logger.info(message)
            return
        [task_id] = ids
        memo.task_mirror.track(
            task_id,
            namespace,
            meta["name"],
            spec.get("ttlSecondsAfterFinished"),
            uid=meta.get("uid", ""),
        )
        task = memo.scheduler.get_task(task_id)
        patch.status.update(resources.task_status(task, memo.scheduler.pending_reason(task)))
        patch.status["observedGeneration"] = meta.get("generation")
        patch.status["conditions"] = [
            resources.condition(
                "Accepted",
                True,
                "Queued",
                f"accepted as task {task_id}",
                generation=meta.get("generation"),
            )
        ]
        logger.info(f"accepted as task {task_id}")

    @kopf.on.delete(resources.GROUP, resources.VERSION, resources.TASKS, registry=registry)
    async def task_delete(
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        memo: kopf.Memo,
        logger: Any,
        **_: Any,
    ) -> None:
        if spec.get("array") is not None:
            await _delete_array(meta, memo, logger)
            return
        task_id = status.get("taskId") or memo.scheduler.find_by_key(meta["uid"])
        if not task_id:
            return  # never accepted: nothing to stop
        try:
            task = memo.scheduler.get_task(task_id)
        except records.UnknownTask:
            return
        if not task.is_final:
            memo.scheduler.cancel(task.id, "its Task object was deleted")
            task = memo.scheduler.get_task(task.id)
        if not task.is_final:
            raise kopf.TemporaryError(
                f"waiting for task {task.id} to stop on worker {task.worker_id}", delay=1
            )
        memo.task_mirror.untrack(task.id)
        logger.info(f"task {task.id} is {task.phase.value}; releasing the Task object")


async def _refused(
    error: records.RefusedDependencies, meta: kopf.Meta, memo: kopf.Memo, patch: kopf.Patch
) -> None:
    """A Task whose dependencies the scheduler refused: it waits while a name it gives is a
    Task not accepted yet; otherwise it is refused for good, naming what is wrong."""
    name, namespace = meta["name"], meta["namespace"]
    problem = "; ".join(p for p in error.problems if "no task named" not in p)
    if not problem and error.unknown:
        graph = await pipelines.namespace_graph(memo.api, namespace)
        problem = pipelines.verdict(name, error.unknown, graph)
        if not problem:
            raise kopf.TemporaryError(
                f"waiting for Task {', '.join(error.unknown)} to be accepted", delay=1
            )
    message = problem or str(error)
    patch.status["phase"] = "Failed"
    patch.status["message"] = message
    patch.status["conditions"] = [
        resources.condition(
            "Accepted", False, "InvalidDependencies", message, generation=meta.get("generation")
        )
    ]
    raise kopf.PermanentError(f"invalid Task: {message}")


async def _delete_array(meta: kopf.Meta, memo: kopf.Memo, logger: Any) -> None:
    """Cancels the array's instances that still run or wait; lets go once all are final."""
    namespace, name = meta["namespace"], meta["name"]
    ids = memo.task_mirror.array_instances(namespace, name)
    if not ids:  # not tracked by this operator run: its instances' keys are uid/index
        instances = await memo.scheduler.get_array_async(name)
        ids = [t.id for t in instances if t.key.startswith(meta["uid"] + "/")]
    live = [t for t in map(memo.scheduler.get_task, ids) if not t.is_final]
    for task in live:
        await memo.scheduler.cancel_async(task.id, "its Task object was deleted")
    still = [t for t in map(memo.scheduler.get_task, ids) if not t.is_final]
    if still:
        raise kopf.TemporaryError(f"waiting for {len(still)} instance(s) to stop", delay=1)
    memo.task_mirror.untrack_array(namespace, name)
    logger.info(f"array {name}: {len(ids)} instance(s) final; releasing the Task object")
