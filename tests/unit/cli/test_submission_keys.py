"""The idempotency keys `vahana submit` and `vahana run` give the tasks of a file."""

from __future__ import annotations

import pytest
from vahana.cli import client, main
from vahana.manifests import tasks as task_manifests

FILE = """\
apiVersion: vahana.dev/v1alpha1
kind: Task
metadata: {name: a}
spec: {command: 'true'}
---
apiVersion: vahana.dev/v1alpha1
kind: Task
metadata: {name: a, namespace: team-b}
spec: {command: 'true'}
---
apiVersion: vahana.dev/v1alpha1
kind: Task
metadata: {name: c, uid: 5a1c0e3e-0000-4000-8000-000000000001}
spec: {command: 'true'}
"""


def test_each_task_is_keyed_by_run_namespace_and_name_and_a_uid_is_kept() -> None:
    submissions = task_manifests.parse_task_documents(FILE, source="tasks.yaml")
    keyed = client.with_keys(submissions, "run-1")
    assert [s.key for s in keyed] == [
        "run-1/default/a",
        "run-1/team-b/a",
        "5a1c0e3e-0000-4000-8000-000000000001",
    ]
    assert [s.spec for s in keyed] == [s.spec for s in submissions]


def test_every_run_gets_a_new_key() -> None:
    assert client.new_run_key() != client.new_run_key()


@pytest.mark.parametrize("key", ["", "   ", "x" * (main.MAX_RUN_KEY + 1), "tab\there"])
def test_a_bad_idempotency_key_is_a_usage_error_naming_the_flag(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main.main(["submit", "-f", "-", "--idempotency-key", key])
    assert code == 2
    assert "--idempotency-key:" in capsys.readouterr().err
