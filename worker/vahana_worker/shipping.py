"""Sends running tasks' output to the scheduler as it comes, so that it is kept whole and
`vahana logs -f` can follow it.

The executor writes each task's output to a spool file beside the sandboxes (up to the cap),
never holding more than one pipe read in memory. This module's thread sends what is new in
every spool every `interval` (0.2 s), at most `per_call` bytes per call, from the offset the
scheduler says it holds: a lost call is resent, a scheduler that restarted is caught up, and
a slow one slows the sending, not the task. When a task ends, `finish` sends the rest before
its result is reported, so the output is complete once the task is. A scheduler that does not
know the call (an older one) turns the sending off; the status still carries the tail.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from vahana_worker.proto import worker_pb2 as pb

_log = logging.getLogger(__name__)

INTERVAL = 0.2
"""Seconds between sends while tasks run: the delay a follower sees, at most."""
PER_CALL = 1 << 20
"""Bytes of output in one call at most (the memory the sending holds)."""


@dataclasses.dataclass
class _Spool:
    task_id: str
    attempt: int
    path: Path
    sent: int = 0
    stale: bool = False
    """The scheduler answered that this attempt is no longer current: stop sending it."""


class OutputShipper:
    def __init__(
        self,
        send: Callable[[pb.AppendTaskOutputRequest], pb.AppendTaskOutputResponse],
        *,
        worker_id: str,
        directory: Path,
        interval: float = INTERVAL,
        per_call: int = PER_CALL,
        tail_bytes: int = 0,
    ) -> None:
        """`tail_bytes`: the tail the result carries; an output no longer than it of which
        nothing was sent yet is not sent at all — the scheduler keeps the tail as the whole."""
        self._send = send
        self._worker_id = worker_id
        self.directory = directory
        self._interval = interval
        self._per_call = per_call
        self._tail_bytes = tail_bytes
        self._spools: dict[tuple[str, int], _Spool] = {}
        self._lock = threading.Lock()  # the spools dict
        self._sending = threading.Lock()  # one call at a time; offsets change under it
        self._stop = threading.Event()
        self.disabled = False

    def path(self, name: str) -> Path:
        """Where the spool `name` (a sandbox's name) is written."""
        return self.directory / f"{name}.out"

    def track(self, task_id: str, attempt: int, name: str) -> Path:
        """Starts sending the spool `name` of a task attempt; returns its path."""
        path = self.path(name)
        with self._lock:
            self._spools[(task_id, attempt)] = _Spool(task_id, attempt, path)
        return path

    def run(self) -> None:
        """The sending loop, until `close()`."""
        while not self._stop.wait(self._interval):
            with self._lock:
                spools = list(self._spools.values())
            if spools and not self.disabled:
                self._ship(spools, final=False)

    def finish(self, task_id: str, attempt: int, *, timeout: float = 10.0) -> None:
        """Sends the rest of an ended attempt's output (for up to `timeout` seconds), then
        forgets it and removes its spool."""
        with self._lock:
            spool = self._spools.get((task_id, attempt))
        if spool is None:
            return
        deadline = time.monotonic() + timeout
        try:
            if spool.sent == 0 and _size(spool.path) <= self._tail_bytes:
                return  # the result's tail is all of it: no call of its own (short tasks)
            while not self.disabled and not spool.stale:
                size = _size(spool.path)
                if spool.sent >= size:
                    break
                if not self._ship([spool], final=True) and time.monotonic() < deadline:
                    time.sleep(min(self._interval, max(0.0, deadline - time.monotonic())))
                if time.monotonic() >= deadline:
                    _log.warning(
                        "output not all sent",
                        extra={"kv": {"task_id": task_id, "sent": spool.sent, "size": size}},
                    )
                    break
        finally:
            with self._lock:
                self._spools.pop((task_id, attempt), None)
            spool.path.unlink(missing_ok=True)

    def close(self) -> None:
        self._stop.set()

    def _ship(self, spools: list[_Spool], *, final: bool) -> bool:
        """One call with what is new in `spools`; False if it failed."""
        with self._sending:
            chunks: list[tuple[_Spool, pb.TaskOutputChunk]] = []
            budget = self._per_call
            for spool in spools:
                if spool.stale or budget <= 0:
                    continue
                data = _read(spool.path, spool.sent, budget)
                if not data:
                    continue
                budget -= len(data)
                chunk = pb.TaskOutputChunk(
                    task_id=spool.task_id,
                    attempt=spool.attempt,
                    offset=spool.sent,
                    data=data,
                    final=final and spool.sent + len(data) >= _size(spool.path),
                )
                chunks.append((spool, chunk))
            if not chunks:
                return True
            request = pb.AppendTaskOutputRequest(
                worker_id=self._worker_id, chunks=[chunk for _, chunk in chunks]
            )
            try:
                response = self._send(request)
            except grpc.RpcError as error:
                code = error.code() if hasattr(error, "code") else None
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    self.disabled = True
                    _log.info("the scheduler keeps no streamed output; only tails are sent")
                return False
            for (spool, _), held in zip(chunks, response.held, strict=False):
                if held < 0:
                    spool.stale = True
                else:
                    spool.sent = held
            return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read(path: Path, offset: int, limit: int) -> bytes:
    try:
        with open(path, "rb") as source:
            source.seek(offset)
            return source.read(limit)
    except FileNotFoundError:
        return b""
