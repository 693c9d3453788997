"""Leader election on a coordination.k8s.io/v1 Lease: of several replicas, only one acts.

A standby waits for the Lease before it opens the store or binds the gRPC port, so the Service
only ever routes workers to the leader. The leader renews the Lease; if it cannot renew before
the Lease would expire, it stops (and its pod restarts as a standby) rather than risk two
leaders.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


class LostLeadership(RuntimeError):
    """The Lease could not be renewed in time, or another replica took it."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


class LeaderElector:
    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float = 15.0,
        renew_seconds: float = 5.0,
    ) -> None:
        self._leases = k8s.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._lease_seconds = lease_seconds
        self._renew_seconds = renew_seconds
        # A thread of its own: in the loop's shared executor a renewal would queue behind the
        # operator's other API calls, and a busy operator would lose its Lease to a standby.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")

    async def _attempt(self) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._try_acquire)

    async def acquire(self) -> None:
        """Returns once this replica holds the Lease."""
        announced = False
        while not await self._attempt():
            if not announced:
                log.info("standby: waiting for lease %s/%s", self.namespace, self.name)
                announced = True
            await asyncio.sleep(self._renew_seconds / 2)
        log.info("leader: holding lease %s/%s as %s", self.namespace, self.name, self.identity)

    async def keep(self) -> None:
        """Renews the Lease until cancelled; raises LostLeadership when it cannot."""
        renewed_at = time.monotonic()
        while True:
            await asyncio.sleep(self._renew_seconds)
            try:
                held = await self._attempt()
            except Exception as error:  # ApiException, or the API server briefly unreachable
                log.warning("lease renewal failed: %s", getattr(error, "reason", error))
                held = None
            if held:
                renewed_at = time.monotonic()
            elif held is False:
                raise LostLeadership(f"lease {self.namespace}/{self.name} taken by another replica")
            elif time.monotonic() - renewed_at > self._lease_seconds - self._renew_seconds:
                raise LostLeadership(f"lease {self.namespace}/{self.name} not renewed in time")

    def release(self) -> None:
        """Gives the Lease up at once so a standby need not wait for it to expire."""
        try:
            lease = self._leases.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = ""
                lease.spec.renew_time = None
                self._leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            log.warning("lease release failed: %s", error.reason)

    def _try_acquire(self) -> bool:
        """One attempt to create, take over or renew the Lease (optimistic concurrency)."""
        now = _now()
        try:
            lease = self._leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            body = k8s.V1Lease(
                metadata=k8s.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(now, transitions=0),
            )
            try:
                self._leases.create_namespaced_lease(self.namespace, body)
                return True
            except ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
        spec = lease.spec or k8s.V1LeaseSpec()  # a Lease without spec is free to take
        ours = spec.holder_identity == self.identity
        expired = (
            not spec.holder_identity
            or spec.renew_time is None
            or (now - spec.renew_time).total_seconds() > (spec.lease_duration_seconds or 0)
        )
        if not ours and not expired:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if ours else 1)
        lease.spec = self._spec(
            now, transitions=transitions, acquired=spec.acquire_time if ours else None
        )
        try:
            # The resourceVersion in `lease` makes this fail if another replica got there first.
            self._leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def _spec(
        self, now: datetime.datetime, *, transitions: int, acquired: datetime.datetime | None = None
    ) -> k8s.V1LeaseSpec:
        return k8s.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=int(self._lease_seconds),
            acquire_time=acquired or now,
            renew_time=now,
            lease_transitions=transitions,
        )
