"""`vahana submit` given hostile files: every refusal is a clear message that ends with "nothing
was submitted", never a traceback or raw terminal escapes, and the scheduler holds no task."""

from __future__ import annotations

from pathlib import Path

from tests.integration import harness
from tests.integration.test_cli import vahana
from tests.unit.manifests.test_hostile_yaml import BOMB

TASK = "apiVersion: vahana.dev/v1alpha1\nkind: Task\n"
GOOD = TASK + "metadata: {name: fine}\nspec: {command: 'true'}\n---\n"
FILES: dict[str, tuple[bytes, str]] = {
    "bomb": ((GOOD + BOMB).encode(), "aliases expand to more than"),
    "latin1": ((GOOD + TASK + "metadata: {name: caf\xe9}\n").encode("latin-1"), "offset"),
    "escapes": (
        (GOOD + TASK + 'metadata: {name: "\\e[31mred\\a"}\nspec: {command: x}\n').encode(),
        "\\x1b[31mred\\x07",
    ),
    "metadata": (
        (GOOD + TASK + "metadata: {name: a, nmespace: b}\nspec: {command: x}\n").encode(),
        "metadata.nmespace: unknown field",
    ),
    "nul": (
        (GOOD + TASK + 'metadata: {name: a}\nspec: {command: "a\\0b"}\n').encode(),
        "spec.command: must not contain NUL bytes",
    ),
    "path": (
        (
            GOOD + TASK + "metadata: {name: a}\nspec: {command: x, "
            "outputFiles: [{source: ../../etc, destination: out/}]}\n"
        ).encode(),
        "spec.outputFiles[0].source",
    ),
    "empty": (b"# nothing here\n", "no Task found"),
    # Accepted by the file's checks, refused by the scheduler: a key it cannot store.
    "key": (
        (TASK + 'metadata: {name: a, uid: "u\\0v"}\nspec: {command: x}\n').encode(),
        "the scheduler refused the tasks: invalid_argument",
    ),
}


def test_every_refusal_says_nothing_was_submitted(
    client: harness.Client, scheduler: harness.SchedulerProcess, tmp_path: Path
) -> None:
    server = f"--server={scheduler.address}"
    for name, (content, expected) in FILES.items():
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(content)
        result = vahana("submit", "-f", str(path), server, timeout=60)
        assert result.returncode in (1, 2), (name, result.stdout, result.stderr)
        assert expected in result.stderr, (name, result.stderr)
        assert result.stderr.rstrip().endswith(f"nothing was submitted from {path}"), name
        assert "Traceback" not in result.stderr and "\x1b[31mred" not in result.stderr, name
    unreachable = vahana("submit", "-f", str(tmp_path / "empty.yaml"), "--server=127.0.0.1:1")
    assert "nothing was submitted" in unreachable.stderr
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    refused_too = vahana("submit", "-f", str(good), f"--server=127.0.0.1:{harness.free_port()}")
    assert refused_too.returncode == 1 and "cannot reach the scheduler" in refused_too.stderr
    assert refused_too.stderr.rstrip().endswith("nothing was submitted from " + str(good))
    listed = vahana("get", "tasks", "-o", "json", server)
    assert listed.stdout.strip() == "[]", listed.stdout
