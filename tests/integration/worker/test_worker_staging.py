"""Input staging (local path, file:// URL, http:// URL) and output collection, through the
executor with real files and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana_worker import executor, staging

pytestmark = pytest.mark.integration


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server serving a temporary directory; yields (base URL, directory)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def run_task(
    tmp_path: Path,
    command: str,
    *,
    inputs: tuple[tuple[str, str], ...] = (),
    outputs: tuple[tuple[str, str], ...] = (),
) -> executor.Result:
    spec = executor.TaskSpec(
        task_id="stage", attempt=1, command=command, timeout=30, inputs=inputs, outputs=outputs
    )
    return executor.TaskRun(
        spec, working_dir=tmp_path / "work", output_limit=4096, output_root=tmp_path
    ).run()


def test_inputs_from_path_file_url_and_http(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    base, root = http_root
    local = tmp_path / "local.txt"
    local.write_text("from path\n")
    via_url = tmp_path / "url.txt"
    via_url.write_text("from file url\n")
    (root / "remote.txt").write_text("from http\n")
    result = run_task(
        tmp_path,
        "cat in/local.txt url.txt remote.txt",
        inputs=((str(local), "in/local.txt"), (via_url.as_uri(), ""), (f"{base}/remote.txt", "")),
    )
    assert result.outcome is executor.Outcome.COMPLETED, result.message
    assert result.output_tail == "from path\nfrom file url\nfrom http\n"


def test_directory_input_and_trailing_slash_destination(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "a.txt").write_text("A")
    single = tmp_path / "b.txt"
    single.write_text("B")
    result = run_task(
        tmp_path, "cat d/sub/a.txt into/b.txt", inputs=((str(data), "d"), (str(single), "into/"))
    )
    assert result.outcome is executor.Outcome.COMPLETED, result.message
    assert result.output_tail == "AB"


@pytest.mark.parametrize(
    ("source", "destination", "reason"),
    [
        ("/nonexistent/input.csv", "", "not found"),
        ("gs://bucket/key", "", "unsupported URL scheme"),
        ("__LOCAL__", "/etc/evil", "absolute"),
        ("__LOCAL__", "../evil", "'..'"),
    ],
)
def test_bad_inputs_fail_with_staging(
    tmp_path: Path, source: str, destination: str, reason: str
) -> None:
    marker = tmp_path / "ran"
    if source == "__LOCAL__":
        source = str(tmp_path / "ok.txt")
        Path(source).write_text("x")
    result = run_task(tmp_path, f"touch {marker}", inputs=((source, destination),))
    assert result.outcome is executor.Outcome.FAILED
    assert result.failure_kind is executor.FailureKind.STAGING
    assert reason in result.message and source in result.message
    assert not marker.exists(), "the command must not run after a staging error"


def test_http_404_fails_with_staging(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    result = run_task(tmp_path, "true", inputs=((f"{base}/missing.bin", ""),))
    assert result.failure_kind is executor.FailureKind.STAGING
    assert "HTTP 404" in result.message and "missing.bin" in result.message


def test_input_through_an_escaping_symlink_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("x")
    sandbox = tmp_path / "sb"
    sandbox.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (sandbox / "link").symlink_to(outside)
    with pytest.raises(staging.StagingError, match="outside the sandbox"):
        staging.stage_input(sandbox, str(source), "link/in.txt")
    assert not (outside / "in.txt").exists()


def test_outputs_collected_to_path_dir_and_file_url(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    exact = tmp_path / "deep" / "exact.txt"
    url_target = tmp_path / "by-url.txt"
    result = run_task(
        tmp_path,
        "echo one > a.txt; mkdir -p out/sub; echo two > out/sub/b.txt; echo three > c.txt",
        outputs=(
            ("a.txt", str(results_dir)),
            ("out", f"{tmp_path}/tree/"),
            ("c.txt", str(exact)),
            ("a.txt", url_target.as_uri()),
        ),
    )
    assert result.outcome is executor.Outcome.COMPLETED, result.message
    assert (results_dir / "a.txt").read_text() == "one\n"
    assert (tmp_path / "tree" / "out" / "sub" / "b.txt").read_text() == "two\n"
    assert exact.read_text() == "three\n"
    assert url_target.read_text() == "one\n"
    assert list(result.output_files) == [
        str(results_dir / "a.txt"),
        f"{tmp_path}/tree/out",
        str(exact),
        str(url_target),
    ]


def test_missing_output_fails_with_staging(tmp_path: Path) -> None:
    result = run_task(tmp_path, "echo ran", outputs=(("result.csv", str(tmp_path / "r")),))
    assert result.outcome is executor.Outcome.FAILED
    assert result.failure_kind is executor.FailureKind.STAGING
    assert "result.csv" in result.message and "not found" in result.message
    assert result.output_tail == "ran\n"


def test_failed_command_skips_output_collection(tmp_path: Path) -> None:
    result = run_task(tmp_path, "exit 4", outputs=(("missing", str(tmp_path / "r")),))
    assert result.failure_kind is executor.FailureKind.TASK_ERROR
    assert result.exit_code == 4
