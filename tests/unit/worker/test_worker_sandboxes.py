"""Sandboxes: an emptied one is renamed for the next task (no inode freed or made); anything
a task changed or left is removed instead, so no task sees what another left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from vahana_worker import sandboxes


def made(tasks: Path, name: str, pool: sandboxes.Sandboxes) -> Path:
    path = tasks / name
    pool.make(str(path))
    assert sorted(os.listdir(path)) == ["tmp"] and not os.listdir(path / "tmp")
    return path


def test_an_emptied_sandbox_becomes_the_next_tasks_by_rename(tmp_path: Path) -> None:
    pool = sandboxes.Sandboxes(tmp_path)
    first = made(tmp_path, "a-a1", pool)
    inode = first.stat().st_ino
    pool.remove(str(first))
    assert not first.exists()
    second = made(tmp_path, "b-a1", pool)
    assert second.stat().st_ino == inode
    assert sorted(os.listdir(tmp_path)) == ["b-a1"]


@pytest.mark.parametrize(
    "leave",
    [
        lambda box: (box / "out.txt").write_text("left"),
        lambda box: (box / "tmp" / "scratch").write_text("left"),
        lambda box: os.chmod(box / "tmp", 0o700),
        lambda box: os.chmod(box, 0o700),
        lambda box: os.rmdir(box / "tmp"),
        lambda box: os.setxattr(box, "user.note", b"left"),
    ],
    ids=["a file", "a file in tmp", "tmp's mode", "its mode", "no tmp", "an xattr"],
)
def test_a_sandbox_its_task_changed_is_removed_not_kept(tmp_path: Path, leave: object) -> None:
    pool = sandboxes.Sandboxes(tmp_path)
    box = made(tmp_path, "a-a1", pool)
    as_made = (box.stat().st_mode, (box / "tmp").stat().st_mode)
    try:
        leave(box)  # type: ignore[operator]
    except OSError as error:  # no user xattrs on this filesystem
        pytest.skip(f"cannot change the sandbox this way here: {error}")
    pool.remove(str(box))
    assert os.listdir(tmp_path) == []
    fresh = made(tmp_path, "b-a1", pool)
    assert (fresh.stat().st_mode, (fresh / "tmp").stat().st_mode) == as_made
    assert not os.listxattr(fresh)


def test_spares_are_bounded_and_go_on_close_and_on_sweep(tmp_path: Path) -> None:
    pool = sandboxes.Sandboxes(tmp_path, limit=2)
    boxes = [made(tmp_path, f"t{i}-a1", pool) for i in range(4)]
    for box in boxes:
        pool.remove(str(box))
    spares = [n for n in os.listdir(tmp_path) if n.startswith(sandboxes.SPARE_PREFIX)]
    assert len(spares) == 2 and len(os.listdir(tmp_path)) == 2
    pool.close()
    assert os.listdir(tmp_path) == []
    (tmp_path / f"{sandboxes.SPARE_PREFIX}9" / "tmp").mkdir(parents=True)  # an earlier life's
    sandboxes.Sandboxes(tmp_path).sweep()
    assert os.listdir(tmp_path) == []


def test_a_leftover_of_the_same_attempt_is_replaced(tmp_path: Path) -> None:
    pool = sandboxes.Sandboxes(tmp_path)
    pool.remove(str(made(tmp_path, "spare-a1", pool)))  # one spare kept
    leftover = tmp_path / "t-a1"
    (leftover / "tmp").mkdir(parents=True)
    (leftover / "old").write_text("an earlier life's")
    box = made(tmp_path, "t-a1", pool)
    assert not (box / "old").exists()
