"""Every field a client or worker sends is bounded; the CRD's schema says the same limits."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from builders import make_task
from vahana.core import bounds, models, validation
from vahana.manifests import schema


def _spec(**fields: Any) -> models.Submission:
    submission = make_task("t").submission()
    return dataclasses.replace(submission, spec=dataclasses.replace(submission.spec, **fields))


@pytest.mark.parametrize(
    ("submission", "expected"),
    [
        (_spec(command="x" * 3_000_000), "command: at most 65536 bytes (UTF-8), got 3000000"),
        (_spec(command="é" * 40_000), "command: at most 65536 bytes (UTF-8), got 80000"),
        (_spec(name="n" * 300), "name: at most 253 characters"),
        (dataclasses.replace(make_task("t").submission(), namespace="n" * 64), "namespace:"),
        (_spec(environment={f"V{i}": "" for i in range(257)}), "env: at most 256 variables"),
        (_spec(environment={"BIG": "v" * 65_537}), "env.BIG: at most 65536 bytes"),
        (
            _spec(environment={f"V{i}": "v" * 60_000 for i in range(5)}),
            "env: at most 262144 bytes in all",
        ),
        (
            _spec(resources=models.Resources(labels={f"k{i}": "v" for i in range(65)})),
            "workerSelector: at most 64 labels",
        ),
        (
            _spec(resources=models.Resources(preferred_labels={"k": "v" * 318})),
            "preferredWorkerLabels.k: a label value has at most 317 characters",
        ),
        (
            _spec(input_files=tuple(models.FileTransfer("a", "b") for _ in range(129))),
            "inputFiles: at most 128 entries",
        ),
        (
            _spec(output_files=(models.FileTransfer("a" * 2049, "b"),)),
            "outputFiles[0].source: at most 2048 bytes",
        ),
        (_spec(experiment_id="e" * 254), "experimentId: at most 253 characters"),
    ],
)
def test_a_field_past_its_bound_is_refused_naming_the_limit(
    submission: models.Submission, expected: str
) -> None:
    found = validation.problems(submission)
    assert any(expected in problem for problem in found), found


def test_a_command_at_its_bound_is_accepted() -> None:
    assert validation.problems(_spec(command="x" * bounds.COMMAND_BYTES)) == []


def test_cutting_keeps_whole_characters_and_says_what_was_cut() -> None:
    cut = bounds.head("é" * 10_000, 100)
    assert len(cut.encode()) <= 100 and cut.endswith("bytes cut)") and cut.startswith("é")
    kept = bounds.tail("aé" * 1_000, 101)
    assert len(kept.encode()) <= 101 and kept.endswith("aé")
    assert bounds.head("short", 100) == "short" and bounds.tail("short", 100) == "short"


def test_the_task_crd_carries_the_same_limits() -> None:
    spec = schema.openapi_schema("Task")["properties"]["spec"]["properties"]
    assert spec["command"]["maxLength"] == bounds.COMMAND_BYTES
    assert spec["pool"]["maxLength"] == bounds.POOL_CHARS
    assert spec["experimentId"]["maxLength"] == bounds.EXPERIMENT_ID_CHARS
    assert spec["env"]["maxProperties"] == bounds.ENV_VARS
    assert spec["env"]["additionalProperties"]["maxLength"] == bounds.ENV_VALUE_BYTES
    for labels in ("workerSelector", "preferredWorkerLabels"):
        assert spec[labels]["maxProperties"] == bounds.LABELS
        assert spec[labels]["additionalProperties"]["maxLength"] == bounds.LABEL_CHARS
    for files in ("inputFiles", "outputFiles"):
        assert spec[files]["maxItems"] == bounds.FILES
        for end in ("source", "destination"):
            assert spec[files]["items"]["properties"][end]["maxLength"] == bounds.PATH_BYTES
