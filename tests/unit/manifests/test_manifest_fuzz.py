"""Random input to the Task parser: only ManifestError (or Submissions) ever comes out."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vahana.manifests import errors, schema, tasks

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        ["500m", "1Gi", "-1", "1h30m", "vahana.dev/v1alpha1", "Task", "List", "1e999"]
    )
)
STRING_KEYS = st.sampled_from(
    [
        "apiVersion",
        "kind",
        "metadata",
        "spec",
        "name",
        "command",
        "resources",
        "cpu",
        "memory",
        "gpu",
        "env",
        "inputFiles",
        "source",
        "destination",
        "timeout",
        "deadline",
        "retry",
        "backoff",
        "items",
        "uid",
        "namespace",
        "priority",
    ]
) | st.text(max_size=6)
KEYS = STRING_KEYS | st.integers()
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


def base(spec: object) -> dict[str, object]:
    return {
        "apiVersion": "vahana.dev/v1alpha1",
        "kind": "Task",
        "metadata": {"name": "f"},
        "spec": spec,
    }


def parse(text: str) -> None:
    try:
        submissions = tasks.parse_task_documents(text, source="fuzz.yaml")
    except errors.ManifestError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)
    else:
        assert submissions


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_random_documents(value: object) -> None:
    parse(yaml.safe_dump(value))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_specs(spec: object) -> None:
    parse(yaml.safe_dump(base(spec)))
    try:
        tasks.submission_from_resource(base(spec))
    except errors.ManifestError as exc:
        assert exc.problems


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    parse(text)


@settings(max_examples=200)
@given(st.text(alphabet=":-[]{}#&*!|>'\"%@` \n\tab1", max_size=80))
def test_yaml_punctuation(text: str) -> None:
    parse(text)


@given(VALUES)
def test_submission_from_any_object(value: object) -> None:
    try:
        tasks.submission_from_resource(value)  # type: ignore[arg-type]
    except errors.ManifestError as exc:
        assert exc.problems


AGREEMENT_SPECS = [
    {"command": "true"},
    {"command": "true", "env": {"GOOD_NAME": "1"}},
    {"command": "true", "env": {"1bad": "x"}},
    {"command": "true", "env": {"A": 1}},
    {"command": "true", "deadline": "2026-12-02T10:00:00Z"},
    {"command": "true", "deadline": "tomorrow"},
    {"command": "true", "resources": {"cpu": "500m", "memory": "1Gi", "gpu": 1}},
    {"command": "true", "resources": {"cpu": -1}},
    {"command": "true", "retry": {"maxTaskRetries": 2, "backoff": "1s"}},
    {"command": ""},
    {"command": "true", "colour": "red"},
]


def agree(obj: object) -> None:
    """The compiled yes/no check and the full validator give the same verdict."""
    errors_found = list(schema.validator("Task").iter_errors(obj))
    assert schema.is_valid("Task")(obj) == (not errors_found), errors_found


def test_compiled_check_agrees_with_the_full_validator_on_known_cases() -> None:
    for spec in AGREEMENT_SPECS:
        agree(base(spec))


STRING_KEYED = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRING_KEYS, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(STRING_KEYS, STRING_KEYED, max_size=6))  # other keys are refused before
def test_compiled_check_agrees_with_the_full_validator(spec: object) -> None:
    agree(base(spec))
