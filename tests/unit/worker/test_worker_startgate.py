"""The start gate: workers forked together wait for the first one's first task."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from vahana_worker import startgate, zygote


@pytest.fixture(autouse=True)
def no_gate_left() -> Iterator[None]:
    yield
    startgate.release()
    if zygote._gate is not None:
        os.close(zygote._gate)
        zygote._gate = None


def test_a_waiting_worker_goes_on_once_the_holder_releases() -> None:
    read_fd, write_fd = os.pipe()
    startgate.hold(write_fd)
    assert not startgate.is_open(read_fd)
    threading.Timer(0.05, startgate.release).start()
    began = time.monotonic()
    startgate.wait_turn(read_fd, timeout=60)
    assert time.monotonic() - began < 30, "it waited for the timeout, not for the release"
    with pytest.raises(OSError):
        os.fstat(read_fd)  # closed by wait_turn
    startgate.release()  # a second release is a no-op


def test_a_first_worker_with_no_task_lets_the_others_go_soon() -> None:
    read_fd, write_fd = os.pipe()
    startgate.hold(write_fd)
    startgate.release_soon(0.01)
    began = time.monotonic()
    startgate.wait_turn(read_fd, timeout=60)
    assert time.monotonic() - began < 30, "it waited for the timeout, not for the grace"


def test_a_waiting_worker_goes_on_after_its_timeout_if_nothing_is_released() -> None:
    read_fd, write_fd = os.pipe()
    try:
        began = time.monotonic()
        startgate.wait_turn(read_fd, timeout=0.05)
        assert time.monotonic() - began >= 0.05
    finally:
        os.close(write_fd)


def test_release_without_a_gate_does_nothing() -> None:
    startgate.release()
    startgate.release()


def test_the_zygote_makes_one_gate_per_start_and_a_new_one_once_it_opened() -> None:
    held = zygote._gate_for_next(60)
    assert held is not None  # the first worker holds it
    assert zygote._gate_for_next(60) is None  # the next ones wait on it
    assert zygote._gate_for_next(60) is None
    os.close(held)  # the first worker started a task (or exited)
    again = zygote._gate_for_next(60)
    assert again is not None  # a new start: its first worker holds a new gate
    assert zygote._gate_for_next(60) is None
    os.close(again)


def test_a_gate_older_than_the_wait_is_not_waited_on() -> None:
    # Its first worker idles (no task yet): a worker forked later starts a gate of its own.
    held = zygote._gate_for_next(60)
    assert held is not None
    try:
        later = zygote._gate_for_next(0)
        assert later is not None
        os.close(later)
    finally:
        os.close(held)
