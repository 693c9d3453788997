"""Submission checks: every problem is reported, each naming its field and a fix."""

from __future__ import annotations

import dataclasses

import pytest
from builders import make_task
from vahana.core import models, validation


def with_spec(**changes) -> models.Submission:
    submission = make_task("t").submission()
    return dataclasses.replace(submission, spec=dataclasses.replace(submission.spec, **changes))


def test_a_good_submission_has_no_problems() -> None:
    submission = (
        make_task("t")
        .cpu(1)
        .memory(1)
        .gpus(1)
        .timeout(10)
        .env(A_1="x")
        .retries(task=1, infra=1, backoff=1, max_backoff=2)
        .submission()
    )
    assert validation.problems(submission) == []


@pytest.mark.parametrize(
    ("submission", "field"),
    [
        (with_spec(command="  "), "command: must not be empty"),
        (with_spec(command="echo\x00"), "command: must not contain NUL"),
        (make_task("t").cpu(-1).submission(), "resources.cpu: must be ≥ 0, got -1"),
        (make_task("t").memory(-5).submission(), "resources.memory: must be ≥ 0, got -5"),
        (make_task("t").gpus(-1).submission(), "resources.gpu: must be ≥ 0, got -1"),
        (make_task("t").timeout(-1).submission(), "timeout: must be ≥ 0"),
        (make_task("t").env(**{"1BAD": "x"}).submission(), "env.1BAD: is not a valid variable"),
        (make_task("t").env(**{"A-B": "x"}).submission(), "env.A-B: is not a valid variable"),
        (with_spec(input_files=(models.FileTransfer("", "d"),)), "inputFiles[0].source"),
        (
            with_spec(output_files=(models.FileTransfer("a", "b"), models.FileTransfer("s", ""))),
            "outputFiles[1].destination",
        ),
        (make_task("t").retries(task=-1).submission(), "retry.maxTaskRetries: must be ≥ 0"),
        (make_task("t").retries(infra=-1).submission(), "retry.maxInfraRetries: must be ≥ 0"),
        (make_task("t").retries(backoff=-1).submission(), "retry.backoff: must be ≥ 0"),
        (make_task("t").retries(max_backoff=-1).submission(), "retry.backoff: must be ≥ 0"),
    ],
)
def test_each_problem_names_its_field(submission, field: str) -> None:
    found = validation.problems(submission)
    assert len(found) == 1, found
    assert found[0].startswith(field)


def test_every_problem_is_reported_with_the_given_prefix() -> None:
    submission = make_task("t").command("").cpu(-1).gpus(-1).retries(task=-1).submission()
    found = validation.problems(submission, where="tasks[3]")
    assert [p.split(":")[0] for p in found] == [
        "tasks[3].command",
        "tasks[3].resources.cpu",
        "tasks[3].resources.gpu",
        "tasks[3].retry.maxTaskRetries",
    ]
