"""Dependencies between tasks: `spec.dependsOn`, checked, ordered, resolved and judged.

A task names the tasks it waits for, in its namespace: tasks of the same submission (a run
file, one `kubectl apply`) or tasks submitted before. `afterok` (the default) lets it run once
every one of them completed; if one ends otherwise, the dependent never runs and ends
UPSTREAM_FAILED naming it. `afterany` lets it run once they ended, however. An array depends
on every instance of an upstream array, or with `sameIndex` instance i on instance i only.

Pure logic: the scheduler keeps the graph in memory (`scheduling.waits`) and asks here what
a submission may be, in which order to accept it, and whether a dependent may run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence

from vahana.core import models

P = models.TaskPhase

MAX_LINKS = 100_000
"""Task-to-task links one submission may make. An array that depends on every instance of
another makes count × count of them; past this, put one task between the two arrays."""

REASON_NAMES_SHOWN = 5
"""Names a pending reason lists before it says "and N more"."""


@dataclasses.dataclass(frozen=True)
class Node:
    """A task (or a whole array) of a submission, as the graph sees it."""

    namespace: str
    name: str
    """The Task's name: an array's, not an instance's."""
    depends_on: tuple[models.Dependency, ...]
    count: int | None = None
    """The array's instances; None for a single task."""


@dataclasses.dataclass(frozen=True)
class Target:
    """What a dependency's name stands for: one task, or an array's instances in index order."""

    ids: tuple[str, ...]
    array: bool = False


Known = Mapping[tuple[str, str], int | None]
"""(namespace, name) → instances (None: a single task) of the tasks submitted before."""


def node_name(spec: models.TaskSpec) -> str:
    """The name a dependency uses for this task: its array's for an instance."""
    return spec.array or spec.name


def nodes_of(submissions: Iterable[models.Submission]) -> list[Node]:
    """The nodes of a submission whose arrays are given as their instances (or unexpanded)."""
    nodes: dict[tuple[str, str], Node] = {}
    for submission in submissions:
        spec = submission.spec
        key = (submission.namespace, node_name(spec))
        node = nodes.get(key)
        if submission.array is not None:
            count: int | None = submission.array.count
        elif spec.array:
            count = (node.count or 0) + 1 if node is not None else 1
        else:
            count = None
        nodes[key] = Node(submission.namespace, key[1], spec.depends_on, count)
    return list(nodes.values())


def problems(nodes: Sequence[Node], known: Known | None) -> list[str]:
    """Why a submission of these nodes cannot be accepted, each naming its task and field:
    names that are nowhere, a task that waits for itself, sameIndex between tasks that are
    not arrays of one size, too many links, and cycles (every one, named in order).
    `known` None: names outside the nodes are not checked (the scheduler will)."""
    here: dict[tuple[str, str], Node] = {(n.namespace, n.name): n for n in nodes}
    found: list[str] = []
    links = 0
    for node in nodes:
        seen: set[str] = set()
        for number, dependency in enumerate(node.depends_on):
            field = f"task {node.name}: spec.dependsOn[{number}]"
            name, key = dependency.name, (node.namespace, dependency.name)
            if name in seen:
                found.append(f"{field}: {name} is named twice — name it once")
                continue
            seen.add(name)
            if name == node.name:
                found.append(f"{field}: a task cannot depend on itself — remove {name}")
                continue
            if key in here:
                upstream: int | None = here[key].count
            elif known is None:
                upstream = None
            elif key in known:
                upstream = known[key]
            else:
                found.append(
                    f"{field}: no task named {name} in namespace {node.namespace} — fix the "
                    "name, or submit that task too"
                )
                continue
            if dependency.same_index and node.count is None:
                found.append(
                    f"{field}: sameIndex pairs the instances of two arrays, and {node.name} is "
                    "not an array — leave sameIndex out"
                )
                continue
            if dependency.same_index and upstream is not None and node.count != upstream:
                found.append(
                    f"{field}: sameIndex needs arrays of one size, but {node.name} has "
                    f"{node.count} instances and {name} has {upstream} — give both one count"
                )
                continue
            links += (node.count or 1) * (1 if dependency.same_index else (upstream or 1))
    if links > MAX_LINKS:
        found.append(
            f"spec.dependsOn: these tasks make {links:,} task-to-task links, more than "
            f"{MAX_LINKS:,} — an array that depends on every instance of another makes count × "
            "count of them: use sameIndex, or put one task between the two arrays"
        )
    for namespace in sorted({node.namespace for node in nodes}):
        graph = {
            n.name: [d.name for d in n.depends_on if (namespace, d.name) in here]
            for n in nodes
            if n.namespace == namespace
        }
        for cycle in find_cycles(graph):
            found.append(
                f"spec.dependsOn: the dependencies form a cycle: {' → '.join(cycle)} — "
                "remove one of them"
            )
    return found


def find_cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Cycles of a graph (node → the nodes it depends on), each as its path back to its start
    (`[a, b, a]`); one per strongly connected part, found without recursion."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path; 2: done
    for start in graph:
        if start in state:
            continue
        path: list[str] = [start]
        branches = [iter(graph.get(start, ()))]
        state[start] = 1
        while path:
            step = next(branches[-1], None)
            if step is None:
                state[path.pop()] = 2
                branches.pop()
            elif state.get(step) == 1:
                cycles.append([*path[path.index(step) :], step])
            elif step not in state and step in graph:
                state[step] = 1
                path.append(step)
                branches.append(iter(graph.get(step, ())))
    return cycles


def order(submissions: Sequence[models.Submission]) -> list[int]:
    """Indices of the submissions in an order where every task comes after the tasks of the
    submission it depends on (else in the order given); assumes no cycle."""
    key_of = [(s.namespace, node_name(s.spec)) for s in submissions]
    present = set(key_of)
    done: set[tuple[str, str]] = set()
    remaining = {key: 0 for key in key_of}
    for key in key_of:
        remaining[key] += 1
    result: list[int] = []
    waiting = list(range(len(submissions)))
    while waiting:
        later: list[int] = []
        for index in waiting:
            spec, namespace = submissions[index].spec, submissions[index].namespace
            blocked = any(
                (namespace, d.name) in present and (namespace, d.name) not in done
                for d in spec.depends_on
            )
            if blocked:
                later.append(index)
                continue
            result.append(index)
            remaining[key_of[index]] -= 1
            if not remaining[key_of[index]]:
                done.add(key_of[index])
        if len(later) == len(waiting):  # a cycle after all: keep the order given
            result.extend(later)
            break
        waiting = later
    return result


def resolve(spec: models.TaskSpec, targets: Mapping[str, Target]) -> dict[str, tuple[str, ...]]:
    """Each dependency's name → the ids it stands for, for this task (or instance)."""
    upstream: dict[str, tuple[str, ...]] = {}
    for dependency in spec.depends_on:
        target = targets[dependency.name]
        if dependency.same_index and target.array and spec.array:
            upstream[dependency.name] = (target.ids[spec.index],)
        else:
            upstream[dependency.name] = target.ids
    return upstream


def conditions(spec: models.TaskSpec) -> dict[str, models.Condition]:
    return {d.name: d.condition for d in spec.depends_on}


def blocks(condition: models.Condition, upstream: models.TaskRecord | None) -> bool:
    """Whether the upstream's end keeps the dependent from ever running: under afterok, an
    end other than COMPLETED (a task gone from the store counts as such)."""
    if upstream is None:
        return True
    return (
        condition == models.Condition.AFTER_OK
        and upstream.phase.is_final
        and upstream.phase != P.COMPLETED
    )


@dataclasses.dataclass(frozen=True)
class Readiness:
    """Where a dependent stands."""

    waiting_for: tuple[str, ...] = ()
    """The dependencies (names) with an upstream task not ended yet."""
    unfinished: int = 0
    """Upstream tasks not ended yet."""
    failed: models.TaskRecord | None = None
    """An upstream whose end keeps it from running (the first found)."""
    failed_name: str = ""
    """The id of that upstream, when the store no longer has it."""

    @property
    def ready(self) -> bool:
        return not self.unfinished and self.failed is None and not self.failed_name


def readiness(
    task: models.TaskRecord, lookup: Callable[[str], models.TaskRecord | None]
) -> Readiness:
    """The dependent's standing, from each upstream task as `lookup` finds it."""
    rule = conditions(task.spec)
    waiting: list[str] = []
    unfinished = 0
    for name, ids in task.upstream.items():
        open_here = 0
        for task_id in ids:
            upstream = lookup(task_id)
            if blocks(rule.get(name, models.Condition.AFTER_OK), upstream):
                return Readiness(failed=upstream, failed_name="" if upstream else task_id)
            if upstream is not None and not upstream.is_final:
                open_here += 1
        if open_here:
            waiting.append(name)
            unfinished += open_here
    return Readiness(tuple(waiting), unfinished)


def failure_message(upstream: models.TaskRecord | None, missing_id: str = "") -> str:
    """The message of a task that ends UPSTREAM_FAILED, naming the upstream that failed."""
    if upstream is None:
        return f"upstream failed: dependency {missing_id} is no longer known"
    message = f"upstream failed: {upstream.spec.name} ended {upstream.phase.value}"
    if upstream.phase == P.UPSTREAM_FAILED and upstream.message:
        message += f" ({upstream.message})"
    return message


def reason(waiting_for: Sequence[str]) -> str:
    """A waiting dependent's pending reason: "waiting for b, c"."""
    shown = ", ".join(waiting_for[:REASON_NAMES_SHOWN])
    more = len(waiting_for) - REASON_NAMES_SHOWN
    return f"waiting for {shown}" + (f" and {more} more" if more > 0 else "")
