"""Where a task attempt's whole output is kept in the pool's storage: one object per attempt
under the prefix, whatever the task id holds, and prefixes checked when the worker starts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vahana_worker import outputlog, settings, storage


@pytest.mark.parametrize(
    ("prefix", "task_id", "attempt", "url"),
    [
        ("s3://logs/kept/", "work/hello", 1, "s3://logs/kept/work/hello/attempt-1.log"),
        ("s3://logs/kept", "sweep[17]", 2, "s3://logs/kept/sweep_17_/attempt-2.log"),
        ("sftp://h/data/", "a b/../c", 3, "sftp://h/data/a_b/_/c/attempt-3.log"),
    ],
)
def test_each_attempt_has_its_object_under_the_prefix(
    prefix: str, task_id: str, attempt: int, url: str
) -> None:
    assert outputlog.location(prefix, task_id, attempt) == url


@given(st.text(min_size=1, max_size=60), st.integers(min_value=1, max_value=99))
def test_no_task_id_leaves_the_prefix(task_id: str, attempt: int) -> None:
    url = outputlog.location("sftp://store/data/logs/", task_id, attempt)
    assert url.startswith("sftp://store/data/logs/") and url.endswith(f"/attempt-{attempt}.log")
    parsed = storage.parse(url)  # refuses '..' parts
    assert parsed.path.startswith("/data/logs/")


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("/var/log/vahana", "must be s3://bucket/prefix/ or sftp://host/path/"),
        ("s3://", "expected s3://bucket/key"),
        ("s3://b/../x/", "'..' is not allowed"),
        ("sftp:///data/", "expected sftp://[user@]host[:port]/path"),
    ],
)
def test_a_bad_prefix_stops_the_worker_naming_the_setting(prefix: str, message: str) -> None:
    errors = settings.Settings(server_address="s:1", task_output_url=prefix).validate()
    assert [e for e in errors if e.startswith("task_output_url: ") and message in e], errors
