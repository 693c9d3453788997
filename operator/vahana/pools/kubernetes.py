"""The Kubernetes pool: one batch/v1 Job per worker, found again by its labels."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, cast

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from vahana.pools import base, credentials, jobs, stores

log = logging.getLogger(__name__)


class KubernetesPool:
    """Starts and stops worker Jobs through the Kubernetes API (blocking calls)."""

    def __init__(
        self, api: k8s.ApiClient, spec: jobs.KubernetesPoolSpec, bootstrap_token: str = ""
    ) -> None:
        self.name = spec.pool
        self.spec = spec
        self.bootstrap_token = bootstrap_token
        self._batch = k8s.BatchV1Api(api)
        self._core = k8s.CoreV1Api(api)
        self._last_error = ""
        self._secret_written = ""
        """Name of the bootstrap Secret known to exist."""

    def start_workers(self, count: int) -> list[str]:
        started = []
        if count > 0 and self.spec.bootstrap_secret:
            self._write_bootstrap_secret()
        for _ in range(count):
            worker_id = jobs.new_worker_id(self.spec.pool)
            manifest = jobs.build_worker_job(self.spec, worker_id)
            try:
                # The client takes plain dicts as well as its model classes.
                self._batch.create_namespaced_job(self.spec.namespace, cast(Any, manifest))
            except ApiException as error:
                self._last_error = f"creating Job {jobs.job_name(worker_id)}: {_reason(error)}"
                log.warning("pool=%s %s", self.name, self._last_error)
                raise base.PoolError(self._last_error) from error
            log.info(
                "started worker_id=%s job=%s pool=%s",
                worker_id,
                jobs.job_name(worker_id),
                self.name,
            )
            started.append(worker_id)
        return started

    def _write_bootstrap_secret(self) -> None:
        """Creates the Secret the worker Pods read the pool's secret from. Its name carries a
        digest of the secret, so one that exists already holds this very secret."""
        name = self.spec.bootstrap_secret
        if name == self._secret_written:
            return
        manifest = jobs.build_bootstrap_secret(self.spec, self.bootstrap_token)
        try:
            self._core.create_namespaced_secret(self.spec.namespace, cast(Any, manifest))
        except ApiException as error:
            if error.status != 409:
                self._last_error = f"creating Secret {name}: {_reason(error)}"
                if error.status == 403:
                    self._last_error += (
                        " — the operator needs create on Secrets for its pools' bootstrap "
                        "secrets (the chart grants it with auth.bootstrapSecretName)"
                    )
                log.warning("pool=%s %s", self.name, self._last_error)
                raise base.PoolError(self._last_error) from error
        log.info("pool=%s bootstrap Secret %s in place", self.name, name)
        self._secret_written = name

    def stop_workers(self, worker_ids: Sequence[str]) -> None:
        """Deletes the workers' Jobs; their Pods get SIGTERM and the workers drain."""
        for worker_id in worker_ids:
            try:
                self._batch.delete_namespaced_job(
                    jobs.job_name(worker_id), self.spec.namespace, propagation_policy="Background"
                )
            except ApiException as error:
                if error.status != 404:
                    self._last_error = f"deleting Job {jobs.job_name(worker_id)}: {_reason(error)}"
                    raise

    def list_workers(self) -> list[base.PoolWorker]:
        listing = self._batch.list_namespaced_job(
            self.spec.namespace, label_selector=f"{jobs.POOL_LABEL}={self.spec.pool}"
        )
        return [_pool_worker(job) for job in listing.items]

    def status(self) -> base.PoolStatus:
        return base.summarize(self.name, self.list_workers(), self._last_error)

    def close(self, timeout: float = 30.0) -> None:
        self.stop_workers([w.worker_id for w in self.list_workers()])


def _pool_worker(job: Any) -> base.PoolWorker:
    worker_id = (job.metadata.labels or {}).get(jobs.WORKER_LABEL, job.metadata.name)
    status = job.status
    conditions = {c.type: c for c in (status.conditions or []) if c.status == "True"}
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        state = base.PoolWorkerState.EXITED
        detail = f"job {job.metadata.name} complete"
    elif "Failed" in conditions or "FailureTarget" in conditions:
        state = base.PoolWorkerState.FAILED
        failed = conditions.get("Failed") or conditions["FailureTarget"]
        detail = f"job {job.metadata.name} failed: {failed.reason}: {failed.message or ''}".strip()
    elif job.metadata.deletion_timestamp is not None:
        state, detail = base.PoolWorkerState.STOPPING, f"job {job.metadata.name} deleting"
    elif status.ready or (status.active and status.start_time and _pod_running(status)):
        state, detail = base.PoolWorkerState.RUNNING, f"job {job.metadata.name}"
    else:
        state, detail = base.PoolWorkerState.STARTING, f"job {job.metadata.name} starting"
    return base.PoolWorker(worker_id, state, detail)


def _pod_running(status: Any) -> bool:
    return bool(status.active) and (status.ready is None or status.ready > 0)


def _reason(error: ApiException) -> str:
    """`422 Unprocessable Entity: <the API server's message>`."""
    try:
        message = json.loads(error.body or "{}").get("message", "")
    except ValueError:
        message = (error.body or "")[:300]
    return f"{error.status} {error.reason}: {message}".strip()


def factory(api: k8s.ApiClient) -> base.AdapterFactory:
    """Adapter factory for WorkerPools of type kubernetes, talking to the API through `api`."""

    def build(context: base.PoolContext, previous: base.WorkerPool | None) -> base.WorkerPool:
        spec = pool_spec(context)
        if isinstance(previous, KubernetesPool):
            previous.spec = spec
            previous.bootstrap_token = context.bootstrap_secret
            return previous
        return KubernetesPool(api, spec, context.bootstrap_secret)

    return build


def pool_spec(context: base.PoolContext) -> jobs.KubernetesPoolSpec:
    """The Job builder's view of a WorkerPool; ValueError says what is wrong with it."""
    section = context.spec.get("kubernetes") or {}
    need = context.spec.get("resources") or {}
    if section.get("namespace") and section["namespace"] != context.namespace:
        raise ValueError(
            "spec.kubernetes.namespace: worker Jobs run in the WorkerPool's own namespace "
            f"({context.namespace}) so that they are owned and garbage-collected with it — "
            "create the WorkerPool in the namespace where the workers should run"
        )
    if not section.get("image"):
        raise ValueError("spec.kubernetes.image: required — the image with vahana-worker in it")
    if context.tls_required and not section.get("tlsSecretName"):
        raise ValueError(
            "spec.kubernetes.tlsSecretName: required — this scheduler serves mutual TLS, so "
            "its workers need a Secret with ca.crt, tls.crt and tls.key"
        )
    return jobs.KubernetesPoolSpec(
        pool=context.name,
        namespace=context.namespace,
        pool_uid=context.uid,
        pool_key=context.key,
        image=section["image"],
        server_address=context.server_address,
        service_account=section.get("serviceAccountName", ""),
        node_selector=section.get("nodeSelector") or {},
        tolerations=section.get("tolerations") or (),
        image_pull_policy=section.get("imagePullPolicy", ""),
        cpu=str(need.get("cpu", "1")),
        memory=str(need.get("memory", "1Gi")),
        gpus=context.capacity.gpus,
        tasks_per_worker=int(context.spec["tasksPerWorker"]),
        labels=context.capacity.labels,
        heartbeat_interval_seconds=context.heartbeat_interval_seconds,
        drain_timeout_seconds=context.drain_timeout_seconds,
        tls_secret=section.get("tlsSecretName", ""),
        bootstrap_secret=credentials.bootstrap_secret_name(context.name, context.bootstrap_secret)
        if context.bootstrap_secret
        else "",
        storage_env=stores.job_env(context.spec),
    )
