"""Why a local worker's process ended, as the keeper and the scheduler say it."""

from __future__ import annotations

from pathlib import Path

from vahana.pools import local


def test_a_failed_worker_s_reason_ends_with_the_last_line_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("starting\nusage: vahana-worker ...\ncgroups: must be auto or off\n\n")
    reason = local._exit_reason(41, 2, log)
    assert reason == (
        f"its process (pid 41) exited with 2; its log ({log}) ends: cgroups: must be auto or off"
    )


def test_the_log_s_line_is_shown_safe_and_short(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("\x1b]0;retitled\x07" + "x" * 1000 + "\n")
    reason = local._exit_reason(41, 1, log)
    assert "\x1b" not in reason and "\x07" not in reason
    assert reason.endswith("…") and len(reason.partition(" ends: ")[2]) < 320  # escapes included


def test_a_killed_or_clean_exit_and_a_missing_log_quote_nothing(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("task started\n")
    assert local._exit_reason(41, -9, log) == "its process (pid 41) was killed by signal 9"
    assert local._exit_reason(41, 0, log) == "its process (pid 41) exited with 0"
    assert local._exit_reason(41, 3, tmp_path / "none.log") == "its process (pid 41) exited with 3"
