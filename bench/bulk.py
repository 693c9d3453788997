"""A client that submits one large batch over gRPC, in its own process (`submission_under_load`).

    python -m bench.bulk ADDRESS --tasks 100000 --pool bulk

Builds the SubmitTasks request first, prints `ready`, waits for a `go` line on stdin, sends it
(one call), and prints one JSON line: the call's seconds and the number of ids returned.
Its own process, so that building and sending 100,000 tasks takes nothing from the measuring
process's event loop.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import grpc
from vahana.proto import task_service_pb2 as tpb
from vahana.proto import task_service_pb2_grpc
from vahana.proto import worker_pb2 as wpb


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--pool", default="bulk")
    args = parser.parse_args(argv)
    request = tpb.SubmitTasksRequest(
        tasks=[
            tpb.TaskSubmission(spec=wpb.Task(name=f"bulk-{i}", command="true"), pool=args.pool)
            for i in range(args.tasks)
        ]
    )
    with grpc.insecure_channel(
        args.address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        grpc.channel_ready_future(channel).result(timeout=30)
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        started = time.perf_counter()
        reply = stub.SubmitTasks(request, timeout=600)
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "ids": len(reply.task_ids)}), flush=True)


if __name__ == "__main__":
    main()
