"""Sandbox paths stay inside the sandbox: absolute, `..` and escaping symlinks are refused."""

import os
from pathlib import Path

import pytest
from vahana_worker import staging


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    path = tmp_path / "sandbox"
    path.mkdir()
    return path


def test_relative_paths_are_accepted(sandbox: Path) -> None:
    assert staging.confine(sandbox, "data/in.txt", what="x") == sandbox.resolve() / "data/in.txt"
    assert staging.confine(sandbox, "./a", what="x") == sandbox.resolve() / "a"


@pytest.mark.parametrize("path", ["/etc/passwd", "/tmp/x"])
def test_absolute_paths_are_refused(sandbox: Path, path: str) -> None:
    with pytest.raises(staging.StagingError, match="absolute"):
        staging.confine(sandbox, path, what=f"input destination {path!r}")


@pytest.mark.parametrize("path", ["../x", "a/../../x", "a/..", ".."])
def test_dot_dot_is_refused(sandbox: Path, path: str) -> None:
    with pytest.raises(staging.StagingError, match=r"'\.\.'"):
        staging.confine(sandbox, path, what="x")


def test_empty_path_is_refused(sandbox: Path) -> None:
    with pytest.raises(staging.StagingError, match="empty"):
        staging.confine(sandbox, "", what="x")


def test_escaping_symlink_is_refused(sandbox: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, sandbox / "link")
    with pytest.raises(staging.StagingError, match="outside the sandbox"):
        staging.confine(sandbox, "link/file", what="x")
    os.symlink("/etc/passwd", sandbox / "passwd")
    with pytest.raises(staging.StagingError, match="outside the sandbox"):
        staging.confine(sandbox, "passwd", what="x")


def test_symlink_inside_the_sandbox_is_fine(sandbox: Path) -> None:
    (sandbox / "real").mkdir()
    os.symlink("real", sandbox / "alias")
    assert staging.confine(sandbox, "alias/f", what="x") == sandbox.resolve() / "alias/f"


def test_error_names_the_file(sandbox: Path) -> None:
    with pytest.raises(staging.StagingError) as caught:
        staging.stage_input(sandbox, "/nonexistent/in.csv", "../in.csv")
    assert "/nonexistent/in.csv" in str(caught.value)
    assert "'..'" in str(caught.value)


def test_output_source_must_stay_inside(sandbox: Path, tmp_path: Path) -> None:
    os.symlink("/etc/hostname", sandbox / "leak")
    with pytest.raises(staging.StagingError, match="outside the sandbox"):
        staging.collect_output(sandbox, "leak", "out", output_root=tmp_path / "outputs")
    with pytest.raises(staging.StagingError, match="absolute"):
        staging.collect_output(sandbox, "/etc/hostname", "out", output_root=tmp_path)
