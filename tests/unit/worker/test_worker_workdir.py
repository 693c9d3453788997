"""The start-up check of the working directory says what failed, where, why and what to do."""

from __future__ import annotations

from pathlib import Path

from vahana_worker import workdir


def test_a_usable_working_dir_passes_and_keeps_nothing_of_the_check(tmp_path: Path) -> None:
    working_dir = tmp_path / "new" / "work"
    assert workdir.check(working_dir) == ""
    assert [p.name for p in working_dir.iterdir()] == ["tasks"]
    assert list((working_dir / "tasks").iterdir()) == []
    assert workdir.check(working_dir) == ""  # again, on what the first check left


def test_a_path_through_a_file_names_the_path_the_error_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    why = workdir.check(tmp_path / "file" / "work")
    assert why.startswith(f"cannot create {tmp_path}/file/work: Not a directory (ENOTDIR); ")
    assert why.endswith("point --working-dir at a directory")
