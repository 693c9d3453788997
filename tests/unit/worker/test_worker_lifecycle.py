"""The agent's lifecycle without a scheduler: a dying loop ends run() with exit code 1 (fail
fast, no hang), and shutdown() is idempotent. The stub below is a client object, not a server."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest
from vahana_worker import agent, backoff, settings
from vahana_worker.proto import worker_pb2 as pb


class ExplodingClient:
    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.closed = False

    def register(self, request: pb.RegisterWorkerRequest) -> pb.RegisterWorkerResponse:
        raise RuntimeError("bug in registration")

    def update_worker_status(
        self, status: int, reason: str, *, timeout: float | None = None
    ) -> pb.UpdateWorkerStatusResponse:
        self.statuses.append(status)
        return pb.UpdateWorkerStatusResponse(success=True)

    def close(self) -> None:
        self.closed = True


def make_worker(tmp_path: Path, stub: ExplodingClient) -> agent.Worker:
    config = settings.load({"worker_id": "w", "working_dir": str(tmp_path / "wd")}, {})
    return agent.Worker(config, scheduler=stub)  # type: ignore[arg-type]


def run_in_thread(worker: agent.Worker) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run()), daemon=True)
    thread.start()
    return thread, codes


def test_a_dying_loop_stops_the_worker_with_exit_code_1(tmp_path: Path) -> None:
    stub = ExplodingClient()
    thread, codes = run_in_thread(make_worker(tmp_path, stub))
    thread.join(timeout=30)
    assert codes == [1]
    assert stub.statuses == [pb.DRAINING, pb.TERMINATED]
    assert stub.closed


def test_shutdown_is_idempotent(tmp_path: Path) -> None:
    stub = ExplodingClient()
    worker = make_worker(tmp_path, stub)
    worker.shutdown("first")
    worker.shutdown("second")
    thread, codes = run_in_thread(worker)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert stub.statuses.count(pb.TERMINATED) == 1
    worker.shutdown("after the end")


def test_a_task_that_cannot_start_is_handed_back_and_the_others_still_start(
    tmp_path: Path,
) -> None:
    worker = make_worker(tmp_path, ExplodingClient())
    started: list[str] = []

    def start(task: pb.Task, *, streamed: bool = False, pause: bool = False) -> bool:
        if task.id == "bad":
            raise RuntimeError("can't start new thread")
        started.append(task.id)
        return pause

    worker._start_task = start  # type: ignore[method-assign]
    worker._handle_assignment(
        [pb.Task(id="bad", attempt=3), pb.Task(id="good", attempt=1)], [], False
    )
    assert started == ["good"]
    [handed_back] = worker._reporter.pending()
    assert (handed_back.task_id, handed_back.attempt, handed_back.status) == ("bad", 3, pb.FAILED)
    assert handed_back.failure_kind == pb.INFRASTRUCTURE


class RefusedCall(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAUTHENTICATED

    def details(self) -> str:
        return "the secret given is not pool 'ns/p''s bootstrap secret"


class RefusingClient(ExplodingClient):
    def __init__(self) -> None:
        super().__init__()
        self.registrations = 0

    def register(self, request: pb.RegisterWorkerRequest) -> pb.RegisterWorkerResponse:
        self.registrations += 1
        raise RefusedCall()


def test_a_worker_whose_credentials_are_refused_gives_up_with_exit_code_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = backoff.Backoff
    monkeypatch.setattr(backoff, "Backoff", lambda: fast(base=0.001, cap=0.002))
    stub = RefusingClient()
    thread, codes = run_in_thread(make_worker(tmp_path, stub))
    thread.join(timeout=30)
    assert codes == [1]
    assert stub.registrations == agent.REGISTRATION_REFUSALS
    assert stub.statuses[-1] == pb.TERMINATED


class HeldPoll:
    """A long poll that only a cancel ends (as the scheduler holds one with nothing to give)."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def result(self) -> pb.PollForTaskResponse:
        self.cancelled.wait(30)
        raise grpc.FutureCancelledError()

    def cancel(self) -> bool:
        self.cancelled.set()
        return True


class DrainedWhilePolling(ExplodingClient):
    """Registers; its first poll is made just as the worker begins to drain (SIGTERM right
    after start-up), so the drain's cancel finds no poll to cancel yet."""

    def __init__(self, worker: list[agent.Worker]) -> None:
        super().__init__()
        self.worker = worker
        self.polls: list[HeldPoll] = []

    def register(self, request: pb.RegisterWorkerRequest) -> pb.RegisterWorkerResponse:
        return pb.RegisterWorkerResponse(success=True, message="registered")

    def heartbeat(self, request: pb.HeartbeatRequest) -> pb.HeartbeatResponse:
        return pb.HeartbeatResponse(success=True)

    def poll(self, *, max_tasks: int, wait: float) -> HeldPoll:
        [worker] = self.worker
        worker.shutdown("received SIGTERM")
        stopping = worker._stopping
        assert stopping.wait(10), "the drain did not begin"
        held = HeldPoll()
        self.polls.append(held)
        return held


def test_a_drain_that_begins_while_a_poll_is_made_still_cancels_it(tmp_path: Path) -> None:
    made: list[agent.Worker] = []
    stub = DrainedWhilePolling(made)
    made.append(make_worker(tmp_path, stub))
    thread, codes = run_in_thread(made[0])
    thread.join(timeout=30)
    assert codes == [0]
    [held] = stub.polls
    assert held.cancelled.is_set(), "the poll made during the drain was left to run"
    assert stub.statuses == [pb.DRAINING, pb.TERMINATED]


class DonePoll:
    def __init__(self, response: pb.PollForTaskResponse) -> None:
        self.response = response

    def result(self) -> pb.PollForTaskResponse:
        return self.response

    def cancel(self) -> bool:
        return False


class OneTaskClient(DrainedWhilePolling):
    """Its first poll brings a task; its reports take `report_seconds` to deliver; its second
    poll notes what had been delivered by then, and the worker is told to drain."""

    def __init__(self, worker: list[agent.Worker], report_seconds: float) -> None:
        super().__init__(worker)
        self.report_seconds = report_seconds
        self.delivered: list[tuple[str, int]] = []
        self.delivered_at_second_poll: list[tuple[str, int]] | None = None

    def poll(self, *, max_tasks: int, wait: float) -> HeldPoll | DonePoll:  # type: ignore[override]
        if not self.polls and self.delivered_at_second_poll is None:
            self.delivered_at_second_poll = []  # the first poll
            task = pb.Task(id="t", attempt=1, command="true")
            return DonePoll(pb.PollForTaskResponse(has_task=True, task=task))
        self.delivered_at_second_poll = list(self.delivered)
        return super().poll(max_tasks=max_tasks, wait=wait)

    def batch_update(
        self, updates: list[pb.UpdateTaskStatusRequest], max_tasks: int = 0
    ) -> pb.BatchUpdateTaskStatusResponse:
        threading.Event().wait(self.report_seconds)  # the call's round trip
        self.delivered += [(u.task_id, u.status) for u in updates]
        results = [
            pb.UpdateResult(task_id=u.task_id, attempt=u.attempt, accepted=True) for u in updates
        ]
        return pb.BatchUpdateTaskStatusResponse(success=True, results=results)


@pytest.mark.parametrize(("repoll_wait", "report_seconds"), [(30.0, 0.05), (0.05, 2.0)])
def test_the_next_poll_waits_a_while_for_the_running_report_of_a_task_a_poll_brought(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repoll_wait: float, report_seconds: float
) -> None:
    monkeypatch.setattr(agent, "REPOLL_WAIT", repoll_wait)
    made: list[agent.Worker] = []
    stub = OneTaskClient(made, report_seconds)
    made.append(make_worker(tmp_path, stub))
    thread, codes = run_in_thread(made[0])
    thread.join(timeout=30)
    assert codes == [0]
    assert stub.delivered_at_second_poll is not None
    if report_seconds < repoll_wait:
        assert ("t", pb.RUNNING) in stub.delivered_at_second_poll
    else:  # a slow scheduler does not hold the poll longer than that
        assert stub.delivered_at_second_poll == []
