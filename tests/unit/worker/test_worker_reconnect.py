"""The worker tries to reach the scheduler at least once per heartbeat interval: its backoffs,
its circuit breaker and its channel's reconnect backoff are capped by the interval, and follow
the interval the scheduler asks for at registration."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import duration_pb2
from vahana_worker import agent, client, settings
from vahana_worker.proto import worker_pb2 as pb


class RegisteringClient:
    """A stand-in client whose registrations succeed with the scheduler's interval."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def register(self, request: pb.RegisterWorkerRequest) -> pb.RegisterWorkerResponse:
        return pb.RegisterWorkerResponse(
            success=True,
            message="registered",
            heartbeat_interval=duration_pb2.Duration(seconds=int(self.interval)),
        )

    def close(self) -> None:
        pass


def make_worker(tmp_path: Path, interval: str, stub: RegisteringClient) -> agent.Worker:
    config = settings.load(
        {"worker_id": "w", "working_dir": str(tmp_path), "heartbeat_interval": interval}, {}
    )
    return agent.Worker(config, scheduler=stub)  # type: ignore[arg-type]


def longest_waits(worker: agent.Worker) -> list[float]:
    """The longest wait of each of the worker's backoffs, after a long outage."""
    waits = []
    for pause in worker._pauses:
        for _ in range(20):
            pause.next_delay()
        waits.append(pause.ceiling())
    return waits


def test_waits_between_tries_follow_the_heartbeat_interval(tmp_path: Path) -> None:
    worker = make_worker(tmp_path, "1s", RegisteringClient(interval=2))
    worker._new_pause()  # a loop's (the reporter made its own)
    assert len(worker._pauses) == 2
    assert longest_waits(worker) == [1.0, 1.0]
    assert worker._breaker.reset_timeout == 1.0
    # The scheduler asks for 2 s at registration: every wait follows.
    assert worker._register(worker._new_pause())
    assert longest_waits(worker) == [2.0, 2.0, 2.0]
    assert worker._breaker.reset_timeout == 2.0


def test_long_intervals_keep_the_usual_caps(tmp_path: Path) -> None:
    worker = make_worker(tmp_path, "5m", RegisteringClient(interval=300))
    assert longest_waits(worker) == [30.0]
    assert worker._breaker.reset_timeout == 5.0


def test_the_channel_reconnects_at_least_once_per_interval(tmp_path: Path) -> None:
    def reconnect_ms(interval: str) -> int:
        config = settings.load({"worker_id": "w", "heartbeat_interval": interval}, {})
        return dict(client.channel_options(config))["grpc.max_reconnect_backoff_ms"]

    assert reconnect_ms("1s") == 1_000
    assert reconnect_ms("100ms") == 500
    assert reconnect_ms("30s") == 10_000
