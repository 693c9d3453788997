"""Status builders of the custom resources."""

from __future__ import annotations

from vahana.core import models
from vahana.k8s import resources


def test_task_status_names_phase_worker_exit_code_and_times() -> None:
    task = models.TaskRecord(
        id="t-1",
        spec=models.TaskSpec(name="a", command="x"),
        created_at=0.0,
        seq=1,
        phase=models.TaskPhase.TIMED_OUT,
        attempt=2,
        worker_id="w",
        exit_code=137,
        started_at=1_700_000_000.0,
        finished_at=1_700_000_060.0,
        output_tail="x" * 10_000,
    )
    status = resources.task_status(task)
    assert status["phase"] == "TimedOut"
    assert (status["attempt"], status["worker"], status["exitCode"]) == (2, "w", 137)
    assert status["startTime"] == "2023-11-14T22:13:20Z"
    assert len(status["outputTail"]) == resources.OUTPUT_TAIL_LIMIT


def test_worker_object_names_are_valid_and_distinct() -> None:
    assert resources.worker_object_name("gpu-abc123") == "gpu-abc123"
    odd = [resources.worker_object_name(i) for i in ("Host_1", "host-1", "HOST 1")]
    assert len(set(odd)) == 3
    assert all(name == name.lower() and " " not in name and "_" not in name for name in odd)
