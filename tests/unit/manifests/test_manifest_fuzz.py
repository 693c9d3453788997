"""Random input to the Task parser: only ManifestError (or Submissions) ever comes out."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vahana.manifests import errors, tasks

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
KEYS = (
    st.sampled_from(
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
    )
    | st.text(max_size=6)
    | st.integers()
)
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
