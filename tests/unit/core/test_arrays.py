"""Task arrays: instances from one submission, and the status they add up to."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st
from vahana.core import arrays, models

from tests.builders import make_task

P = models.TaskPhase


def _array(count: int, parameters: tuple[dict[str, str], ...] = ()) -> models.Submission:
    submission = make_task("sweep").env(A="1").key("run/default/sweep").submission()
    return dataclasses.replace(submission, array=models.ArraySpec(count, parameters))


def test_instances_carry_their_index_count_and_parameters() -> None:
    instances = arrays.expand(_array(2, ({"ALPHA": "0.1"}, {"ALPHA": "0.2"})))
    assert [i.spec.name for i in instances] == ["sweep[0]", "sweep[1]"]
    assert [i.key for i in instances] == ["run/default/sweep/0", "run/default/sweep/1"]
    assert dict(instances[1].spec.environment) == {
        "A": "1",
        "ALPHA": "0.2",
        "VAHANA_ARRAY_COUNT": "2",
        "VAHANA_ARRAY_INDEX": "1",
    }
    assert {(i.spec.array, i.array) for i in instances} == {("sweep", None)}


def test_a_plain_task_expands_to_itself() -> None:
    submission = make_task("one").submission()
    assert arrays.expand(submission) == [submission]


@given(st.integers(1, 500))
def test_names_of_instances_parse_back(count: int) -> None:
    names = [i.spec.name for i in arrays.expand(_array(count))]
    assert [arrays.parse_instance_name(n) for n in names] == [("sweep", i) for i in range(count)]


@given(st.lists(st.sampled_from(list(P)), min_size=1, max_size=60))
def test_a_summary_counts_every_instance_once(phases: list[models.TaskPhase]) -> None:
    instances = [
        make_task(f"s[{i}]").record(task_id=f"t{i}", phase=phase) for i, phase in enumerate(phases)
    ]
    instances = [
        dataclasses.replace(t, spec=dataclasses.replace(t.spec, array="s", index=i))
        for i, t in enumerate(instances)
    ]
    summary = arrays.summarize(instances)
    assert sum(summary.counts.values()) == summary.total == len(phases)
    assert summary.failed_indices == tuple(
        i for i, p in enumerate(phases) if p.is_final and p != P.COMPLETED
    )
    assert summary.phase.is_final == all(p.is_final for p in phases)
    assert (summary.phase == P.COMPLETED) == all(p == P.COMPLETED for p in phases)
    assert summary.progress == f"{summary.finished:,}/{len(phases):,}"


def test_progress_reads_like_a_person_would_write_it() -> None:
    done = [make_task("s").record(phase=P.COMPLETED)] * 9_812
    waiting = [make_task("s").record()] * 188
    assert arrays.summarize(done + waiting).progress == "9,812/10,000"


def test_parameter_names_must_be_environment_names() -> None:
    assert arrays.check_parameters([{"OK_1": "x"}, {"1bad": "y", "VAHANA_ARRAY_INDEX": "z"}]) == [
        ("spec.array.parameters[1].1bad", "not an environment name"),
        ("spec.array.parameters[1].VAHANA_ARRAY_INDEX", "set by the array"),
    ]
