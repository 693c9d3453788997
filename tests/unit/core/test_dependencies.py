"""The pure dependency logic: checks naming what is wrong, order, resolution, readiness."""

from __future__ import annotations

import dataclasses

from builders import make_task
from vahana.core import arrays, dependencies, models

P = models.TaskPhase


def nodes(*builders) -> list[dependencies.Node]:
    return dependencies.nodes_of(b.submission() for b in builders)


def test_a_diamond_is_accepted_and_ordered_upstream_first():
    given = [
        make_task("d").after("b", "c").submission(),
        make_task("b").after("a").submission(),
        make_task("c").after("a").submission(),
        make_task("a").submission(),
    ]
    assert dependencies.problems(dependencies.nodes_of(given), {}) == []
    order = [given[i].spec.name for i in dependencies.order(given)]
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")


def test_a_cycle_is_named_in_order():
    found = dependencies.problems(
        nodes(
            make_task("a").after("c"),
            make_task("b").after("a"),
            make_task("c").after("b"),
            make_task("x"),
        ),
        {},
    )
    assert found == [
        "spec.dependsOn: the dependencies form a cycle: a → c → b → a — remove one of them"
    ]


def test_an_unknown_name_is_named_with_its_task_and_field():
    [found] = dependencies.problems(nodes(make_task("b").after("nope")), {})
    assert found.startswith("task b: spec.dependsOn[0]: no task named nope in namespace ")


def test_a_name_submitted_before_is_known():
    known = {("", "a"): None}
    assert dependencies.problems(nodes(make_task("b").after("a")), known) == []


def test_self_dependency_and_repeated_names_are_refused():
    found = dependencies.problems(
        nodes(make_task("a").after("a"), make_task("b").after("a", "a")), {}
    )
    assert any("cannot depend on itself" in line for line in found)
    assert any("a is named twice" in line for line in found)


def array_of(name: str, count: int, *after: str, same_index: bool = False):
    builder = make_task(name).after(*after, same_index=same_index)
    return arrays.expand(dataclasses.replace(builder.submission(), array=models.ArraySpec(count)))


def test_same_index_needs_arrays_of_one_size():
    given = array_of("a", 3) + array_of("b", 4, "a", same_index=True)
    [found] = dependencies.problems(dependencies.nodes_of(given), {})
    assert "b has 4 instances and a has 3" in found
    single = [make_task("a").submission(), *array_of("b", 2, "a", same_index=True)]
    assert dependencies.problems(dependencies.nodes_of(single), {}) == []  # a is waited for whole
    not_array = [*array_of("a", 2), make_task("b").after("a", same_index=True).submission()]
    [found] = dependencies.problems(dependencies.nodes_of(not_array), {})
    assert "b is not an array" in found


def test_array_on_array_links_are_bounded():
    given = array_of("a", 400) + array_of("b", 400, "a")
    [found] = dependencies.problems(dependencies.nodes_of(given), {})
    assert "160,000 task-to-task links" in found and "sameIndex" in found
    paired = array_of("a", 400) + array_of("b", 400, "a", same_index=True)
    assert dependencies.problems(dependencies.nodes_of(paired), {}) == []


def test_resolve_element_wise_or_every_instance():
    target = dependencies.Target(("a0", "a1", "a2"), array=True)
    [_, b1, _] = array_of("b", 3, "a", same_index=True)
    assert dependencies.resolve(b1.spec, {"a": target}) == {"a": ("a1",)}
    [_, c1, _] = array_of("c", 3, "a")
    assert dependencies.resolve(c1.spec, {"a": target}) == {"a": ("a0", "a1", "a2")}


def record(name: str, phase: models.TaskPhase, *after: str, any_end: bool = False):
    return make_task(name).after(*after, any_end=any_end).record(phase=phase)


def test_readiness_waits_runs_and_fails():
    d = dataclasses.replace(record("d", P.PENDING, "b", "c"), upstream={"b": ("b",), "c": ("c",)})
    tasks = {"b": record("b", P.RUNNING), "c": record("c", P.PENDING)}
    standing = dependencies.readiness(d, tasks.get)
    assert standing.waiting_for == ("b", "c") and not standing.ready
    assert dependencies.reason(standing.waiting_for) == "waiting for b, c"
    tasks = {"b": record("b", P.COMPLETED), "c": record("c", P.COMPLETED)}
    assert dependencies.readiness(d, tasks.get).ready
    tasks = {"b": record("b", P.FAILED), "c": record("c", P.RUNNING)}
    failed = dependencies.readiness(d, tasks.get).failed
    assert failed is not None and failed.spec.name == "b"
    assert dependencies.failure_message(failed) == "upstream failed: b ended FAILED"


def test_afterany_runs_after_a_failure():
    d = dataclasses.replace(record("d", P.PENDING, "b", any_end=True), upstream={"b": ("b",)})
    assert dependencies.readiness(d, {"b": record("b", P.FAILED)}.get).ready


def test_a_long_reason_is_cut():
    assert dependencies.reason([f"t{i}" for i in range(8)]) == (
        "waiting for t0, t1, t2, t3, t4 and 3 more"
    )


def test_find_cycles_handles_long_chains_without_recursion():
    chain = {f"n{i}": [f"n{i + 1}"] for i in range(5000)}
    assert dependencies.find_cycles(chain) == []
    chain["n5000"] = ["n0"]
    [cycle] = dependencies.find_cycles(chain)
    assert cycle[0] == cycle[-1] and len(cycle) == 5002
