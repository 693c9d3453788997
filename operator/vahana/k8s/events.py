"""Kubernetes Events on Vahana's objects (Tasks, WorkerPools), aggregated like client-go's
recorder: an Event with the same reason and message on the same object again raises the count
of the one already there (one PATCH; `kubectl describe` shows "x3 over 1m") instead of adding
another. Events are best effort: a refused write is logged, never retried, and never holds up
the status write it goes with.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
import secrets
import socket
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from vahana.core import events as core_events

log = logging.getLogger(__name__)
COMPONENT = "vahana-operator"
REMEMBERED = 20_000
"""Events remembered for aggregation; the oldest are forgotten first (then a repeat is new)."""


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    kind: str
    api_version: str
    namespace: str
    name: str
    uid: str


@dataclasses.dataclass
class _Posted:
    name: str
    count: int


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, api: k8s.ApiClient) -> None:
        self._core = k8s.CoreV1Api(api)
        self._posted: collections.OrderedDict[tuple[str, str, str], _Posted] = (
            collections.OrderedDict()
        )
        self._instance = socket.gethostname()
        self.writes = 0
        """Event creations and patches sent to the API server."""

    async def record(self, ref: ObjectRef, event: core_events.Event) -> None:
        key = (ref.uid, event.reason, event.message)
        posted = self._posted.get(key)
        body: Any  # dicts: the client sends them as they are
        try:
            if posted is not None:
                posted.count += 1
                body = {"count": posted.count, "lastTimestamp": _now()}
                await asyncio.to_thread(
                    self._core.patch_namespaced_event, posted.name, ref.namespace, body
                )
                self._posted.move_to_end(key)
            else:
                name = f"{ref.name}.{secrets.token_hex(8)}"
                body = self._body(ref, event, name)
                await asyncio.to_thread(self._core.create_namespaced_event, ref.namespace, body)
                self._posted[key] = _Posted(name, 1)
                while len(self._posted) > REMEMBERED:
                    self._posted.popitem(last=False)
            self.writes += 1
        except ApiException as error:
            if posted is not None and error.status == 404:  # expired: post it anew
                self._posted.pop(key, None)
                await self.record(ref, event)
                return
            log.warning(
                "event %s on %s %s/%s not recorded: %s",
                event.reason,
                ref.kind,
                ref.namespace,
                ref.name,
                error.reason,
            )
        except Exception as error:  # the API server unreachable: events are best effort
            log.warning("event %s not recorded: %s", event.reason, error)

    def forget(self, uid: str) -> None:
        """Drops what is remembered of an object's Events (it is gone)."""
        for key in [k for k in self._posted if k[0] == uid]:
            del self._posted[key]

    def _body(self, ref: ObjectRef, event: core_events.Event, name: str) -> dict[str, Any]:
        now = _now()
        return {
            "metadata": {"name": name, "namespace": ref.namespace},
            "involvedObject": {
                "kind": ref.kind,
                "apiVersion": ref.api_version,
                "namespace": ref.namespace,
                "name": ref.name,
                "uid": ref.uid,
            },
            "reason": event.reason,
            "message": event.message[:1024],
            "type": event.type,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
        }
