"""Keeps a task attempt's whole output in the pool's storage when the attempt ends, so that it
outlives the worker, the pilot and the scheduler's own copy: `<prefix><task id>/attempt-<n>.log`
under the pool's `spec.storage.taskOutput` (the worker's `--task-output-url`).

The output is the attempt's spool (what was sent to the scheduler while it ran, up to the cap),
or its tail when the output was short enough never to be spooled. An output the cap cut ends
with a note and its last bytes, as `vahana logs` shows it. A failed upload does not change the
task's outcome: the command ran as it did and the scheduler keeps its copy; the task's message
says that the output was not kept and why.
"""

from __future__ import annotations

import re
from pathlib import Path

from vahana_worker import storage

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def check_prefix(prefix: str) -> None:
    """ValueError saying what is wrong with a `--task-output-url`."""
    if not storage.is_storage_url(prefix):
        raise ValueError(f"{prefix!r} must be s3://bucket/prefix/ or sftp://host/path/")
    storage.parse(prefix.rstrip("/") + "/x")  # the bucket or host and path are well formed


def location(prefix: str, task_id: str, attempt: int) -> str:
    """Where an attempt's output goes: each part of the task id (`namespace/name`, an array's
    `name[7]`) made safe as a path segment, so no id can climb out of the prefix."""
    parts = [_UNSAFE.sub("_", part).lstrip(".") or "_" for part in task_id.split("/")]
    return f"{prefix.rstrip('/')}/{'/'.join(parts)}/attempt-{attempt}.log"


def keep(
    *,
    prefix: str,
    task_id: str,
    attempt: int,
    spool: Path | None,
    tail: str,
    cap: int,
    scratch: Path,
    stores: storage.StorageConfig,
) -> str:
    """Uploads the attempt's output; returns its URL. TransferError when it cannot be kept.

    `spool`: the file the output was written to while the task ran (None or missing: the tail
    is all of it); `cap`: the most the spool holds, past which the output was cut; `scratch`:
    a file name this call may use and removes."""
    url = location(prefix, task_id, attempt)
    spooled = spool is not None and spool.is_file() and spool.stat().st_size > 0
    try:
        if spooled:
            assert spool is not None
            if spool.stat().st_size >= cap > 0:
                ending = tail.encode()
                note = f"\n[vahana: output cut at {cap} bytes; its last {len(ending)} bytes:]\n"
                with open(spool, "ab") as out:  # as `vahana logs` ends a cut output
                    out.write(note.encode() + ending)
            storage.upload(spool, url, stores)
        else:
            scratch.parent.mkdir(parents=True, exist_ok=True)
            scratch.write_bytes(tail.encode())
            storage.upload(scratch, url, stores)
    finally:
        if not spooled:
            scratch.unlink(missing_ok=True)
    return url
