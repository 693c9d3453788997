"""Hypothesis writes Task files — valid ones, ones with wrong field values, broken YAML
structure, aliases, bad bytes — and `vahana submit` reads each against a real scheduler. The CLI
never crashes with a traceback, never takes longer than a bound, and submits a file whole or
not at all: a refused file ends with "nothing was submitted" and the scheduler holds no task of
it."""

from __future__ import annotations

import contextlib
import io
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vahana.cli import main as cli
from vahana.proto import task_service_pb2 as tasks_pb

from tests.integration import harness

BOUND_SECONDS = 20.0
"""Longest one `vahana submit` may take, on a loaded 2-core machine."""

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True) | st.text(max_size=20)
HOSTILE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(["\x1b[31mred", "\x00", "../../etc/passwd", "/abs", "x" * 70_000, "é" * 40_000])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False)
    | HOSTILE_TEXT
    | st.sampled_from(["500m", "1Gi", "-1", "1h30m", "2026-12-02T10:00:00Z", "1e999", "y"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
SPEC_FIELDS = {
    "command": st.sampled_from(["true", "echo hi"]) | SCALARS,
    "resources": st.fixed_dictionaries(
        {}, optional={"cpu": SCALARS, "memory": SCALARS, "gpu": SCALARS}
    )
    | VALUES,
    "env": st.dictionaries(NAMES, HOSTILE_TEXT, max_size=3) | VALUES,
    "inputFiles": st.lists(
        st.fixed_dictionaries({"source": HOSTILE_TEXT, "destination": HOSTILE_TEXT}), max_size=2
    )
    | VALUES,
    "outputFiles": st.lists(
        st.fixed_dictionaries({"source": HOSTILE_TEXT, "destination": HOSTILE_TEXT}), max_size=2
    )
    | VALUES,
    "timeout": SCALARS,
    "priority": SCALARS,
    "retry": st.fixed_dictionaries({}, optional={"maxTaskRetries": SCALARS, "backoff": SCALARS}),
    "workerSelector": st.dictionaries(st.text(max_size=10), SCALARS, max_size=2),
    "unknownField": VALUES,
}


@st.composite
def task(draw: st.DrawFn) -> object:
    """A Task document: mostly well formed, with some fields given any value."""
    spec = {"command": "true"}
    for field in draw(st.lists(st.sampled_from(sorted(SPEC_FIELDS)), max_size=3, unique=True)):
        spec[field] = draw(SPEC_FIELDS[field])
    metadata: dict[str, object] = {"name": draw(NAMES)}
    if draw(st.booleans()):
        metadata[draw(st.sampled_from(["namespace", "labels", "lables", "uid"]))] = draw(SCALARS)
    document: dict[str, object] = {
        "apiVersion": draw(st.sampled_from(["vahana.dev/v1alpha1"] * 4 + ["v1", ""])),
        "kind": draw(st.sampled_from(["Task"] * 4 + ["Pod", "List"])),
        "metadata": metadata,
        "spec": spec,
    }
    return draw(st.sampled_from([document] * 6 + [spec, [document], None]))


@st.composite
def task_file(draw: st.DrawFn) -> bytes:
    """Several documents as YAML, then perhaps broken: cut, spliced, aliased, or bad bytes."""
    documents = draw(st.lists(task(), min_size=1, max_size=4))
    text = yaml.safe_dump_all(documents, allow_unicode=True, sort_keys=False)
    breakage = draw(
        st.sampled_from(["none"] * 5 + ["cut", "splice", "alias", "bytes", "tabs", "bomb"])
    )
    data = text.encode()
    if breakage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif breakage == "splice":
        at = draw(st.integers(0, len(data)))
        junk = draw(st.sampled_from([": ", "- ", "{", "]", "&a ", "*a", "!!python/object ", "\t"]))
        data = data[:at] + junk.encode() + data[at:]
    elif breakage == "alias":
        data += b"---\nlist: &l [a, b]\nagain: [*l, *l, *l]\n"
    elif breakage == "bytes":
        at = draw(st.integers(0, len(data)))
        data = (
            data[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xef\xbb\xbf"]))
            + data[at:]
        )
    elif breakage == "tabs":
        data = data.replace(b"  ", b"\t")
    elif breakage == "bomb":
        levels = "".join(
            f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'x'] * 9)}]\n" for i in range(8)
        )
        data += ("---\n" + levels).encode()
    return data


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[harness.SchedulerProcess, harness.Client]]:
    with tempfile.TemporaryDirectory(prefix="vh-") as state:
        scheduler = harness.SchedulerProcess(state_dir=Path(state)).start()
        client = harness.Client(scheduler.address)
        try:
            yield scheduler, client
        finally:
            client.close()
            scheduler.stop()


def task_count(client: harness.Client) -> int:
    count, request = 0, tasks_pb.ListTasksRequest()
    while True:
        page = client.tasks.ListTasks(request, timeout=10)
        count += len(page.tasks)
        if not page.next_page_token:
            return count
        request.page_token = page.next_page_token


def submit(path: Path, server: str) -> tuple[int | None, str, str, BaseException | None]:
    """`vahana submit -f path` in this process: exit code (None: still running at the bound),
    what it wrote to stdout and stderr, and any exception that escaped (a user's traceback)."""
    outcome: list[object] = []
    out, err = io.StringIO(), io.StringIO()

    def call() -> None:
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                outcome.append(cli.main(["submit", "-f", str(path), f"--server={server}"]))
        except BaseException as error:  # noqa: BLE001 - what a user would see as a traceback
            outcome.append(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(BOUND_SECONDS)
    if not outcome:
        return None, out.getvalue(), err.getvalue(), None
    result = outcome[0]
    if isinstance(result, BaseException):
        return 1, out.getvalue(), err.getvalue(), result
    return int(result), out.getvalue(), err.getvalue(), None  # type: ignore[call-overload]


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=task_file())
def test_the_cli_submits_a_fuzzed_file_whole_or_not_at_all(
    served: tuple[harness.SchedulerProcess, harness.Client], tmp_path: Path, data: bytes
) -> None:
    scheduler, client = served
    path = tmp_path / "tasks.yaml"
    path.write_bytes(data)
    before = task_count(client)
    started = time.monotonic()
    code, stdout, stderr, escaped = submit(path, scheduler.address)
    hypothesis.event(f"exit {code}")
    assert code is not None, f"still running after {BOUND_SECONDS} s"
    assert escaped is None, f"{escaped!r} escaped: a traceback"
    assert time.monotonic() - started < BOUND_SECONDS
    after = task_count(client)
    if code == 0:
        assert after - before == stdout.count(" submitted as "), "not the whole file submitted"
        assert after > before
    else:
        assert code in (1, 2), stderr  # 2: the file refused; 1: the scheduler refused it
        assert stderr.rstrip().endswith(f"nothing was submitted from {path}"), stderr
        assert "\x1b[31m" not in stderr and "Traceback" not in stderr
        assert after == before, "a refused file left tasks behind"
