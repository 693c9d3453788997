"""The task output store: chunks at offsets, resent or out of order, and the cap."""

from __future__ import annotations

from pathlib import Path

from vahana.store import outputs


def test_chunks_append_at_their_offsets_and_overlaps_add_only_new_bytes(tmp_path: Path) -> None:
    store = outputs.OutputStore(tmp_path, max_bytes=1000)
    assert store.append("t-1", 1, 0, b"hello ") == 6
    assert store.append("t-1", 1, 0, b"hello ") == 6, "a resent chunk changes nothing"
    assert store.append("t-1", 1, 3, b"lo world") == 11, "only the new part is written"
    assert store.append("t-1", 1, 20, b"later") == 11, "a gap: resend from 11"
    assert store.read("t-1", 1, 0, 100) == b"hello world"
    assert store.read("t-1", 1, 6, 3) == b"wor"
    assert store.size("t-1", 2) == 0 and store.read("t-1", 2, 0, 10) == b""


def test_past_the_cap_bytes_are_dropped_and_the_attempt_marked(tmp_path: Path) -> None:
    store = outputs.OutputStore(tmp_path, max_bytes=10)
    assert store.append("t-2", 1, 0, b"0123456") == 7
    assert store.append("t-2", 1, 7, b"789abcdef") == 16, "the sender goes on past the cap"
    assert store.append("t-2", 1, 16, b"more") == 20
    assert store.read("t-2", 1, 0, 100) == b"0123456789"
    assert store.truncated("t-2", 1) and not store.truncated("t-2", 2)


def test_task_ids_cannot_leave_the_root(tmp_path: Path) -> None:
    store = outputs.OutputStore(tmp_path / "out")
    store.append("../../etc/x", 1, 0, b"x")
    assert store.path("../../etc/x", 1).resolve().is_relative_to((tmp_path / "out").resolve())
    store.remove("../../etc/x")
    assert not any((tmp_path / "out").iterdir())
