"""`vahana logs NAME [-f]`: a task's whole kept output, and with -f what it writes while it
runs, byte for byte to stdout, until it ends."""

from __future__ import annotations

import sys
from typing import BinaryIO

from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import task_service_pb2_grpc


def copy_output(
    stub: task_service_pb2_grpc.TaskServiceStub,
    task: str,
    *,
    follow: bool,
    out: BinaryIO | None = None,
) -> int:
    """Writes the task's output to `out` (stdout) as it arrives; returns the bytes written.
    Ctrl-C ends the stream, completes the last line, then raises KeyboardInterrupt."""
    sink = out if out is not None else sys.stdout.buffer
    written = 0
    attempt = -1
    last = b"\n"
    interrupted = False
    stream = stub.ReadTaskOutput(tasks_pb.ReadTaskOutputRequest(id=task, follow=follow))
    try:
        for chunk in stream:
            if attempt not in (-1, chunk.attempt) and chunk.offset == 0:
                if not last.endswith(b"\n"):
                    sink.write(b"\n")
                sink.write(f"--- attempt {chunk.attempt} ---\n".encode())
            attempt = chunk.attempt
            if chunk.data:
                sink.write(chunk.data)
                sink.flush()  # a follower sees each piece as it comes
                written += len(chunk.data)
                last = chunk.data
    except KeyboardInterrupt:
        stream.cancel()
        interrupted = True
    if written and not last.endswith(b"\n"):
        sink.write(b"\n")
    sink.flush()
    if interrupted:
        raise KeyboardInterrupt  # the command ends as interrupted (exit status 130)
    return written
