"""The row layout: a spec is stored exactly as `dataclasses.asdict` would lay it out."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given
from hypothesis import strategies as st
from vahana.core import models
from vahana.store import codec

text = st.text(max_size=8)
labels = st.dictionaries(text, text, max_size=3)
transfers = st.lists(st.builds(models.FileTransfer, text, text), max_size=2).map(tuple)
specs = st.builds(
    models.TaskSpec,
    name=text,
    command=text,
    input_files=transfers,
    output_files=transfers,
    environment=labels,
    resources=st.builds(
        models.Resources,
        cpu_cores=st.floats(0, 64),
        memory_bytes=st.integers(0, 2**40),
        gpus=st.integers(0, 8),
        labels=labels,
        preferred_labels=labels,
    ),
    priority=st.integers(-10, 10),
    deadline=st.one_of(st.none(), st.floats(0, 2e9)),
    timeout_seconds=st.floats(0, 1e6),
    experiment_id=text,
    limits=st.builds(models.Limits, *(st.integers(0, 2**31) for _ in range(5))),
)


@given(specs)
def test_a_spec_is_stored_as_asdict_lays_it_out(spec: models.TaskSpec) -> None:
    assert codec.spec_to_json(spec) == json.dumps(dataclasses.asdict(spec), separators=(",", ":"))
    assert codec.spec_from_json(codec.spec_to_json(spec)) == spec


@given(st.builds(models.RetryPolicy, st.integers(0, 9), st.integers(0, 9), st.floats(0, 60)))
def test_a_retry_policy_is_stored_as_asdict_lays_it_out(retry: models.RetryPolicy) -> None:
    assert codec.retry_to_json(retry) == json.dumps(dataclasses.asdict(retry))
