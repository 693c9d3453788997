"""Waking long polls: a wake-up by name wakes that worker; a broadcast wakes as many waiting polls
as there are queued tasks, in the order the polls came, and a poll woken by it hands the turn on
while tasks are still queued, so every waiting worker is looked at if it takes that."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from vahana.rpc import wakeups


class Polls:
    """Workers whose polls wait on one Wakeups, as the WorkerService's long polls do."""

    def __init__(self, wakes: wakeups.Wakeups) -> None:
        self.wakes = wakes
        self.events: dict[str, asyncio.Event] = {}
        self.waits: dict[str, asyncio.Task[bool]] = {}

    def start(self, *workers: str, wants_tasks: bool = True) -> None:
        for worker in workers:
            event = self.wakes.arm(worker, wants_tasks=wants_tasks)
            self.events[worker] = event
            self.waits[worker] = asyncio.ensure_future(self.wakes.wait(worker, event, 30))

    async def woken(self) -> list[str]:
        """The workers whose waits ended, once the loop has run them."""
        for _ in range(20):  # wait_for's inner task and the wait's own step
            await asyncio.sleep(0)
        return [worker for worker, wait in self.waits.items() if wait.done() and wait.result()]

    def stop(self) -> None:
        for wait in self.waits.values():
            wait.cancel()


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


def test_a_broadcast_wakes_one_waiting_poll_per_queued_task_in_the_order_they_came() -> None:
    queued = [2]

    async def body() -> None:
        polls = Polls(wakeups.Wakeups(queued=lambda: queued[0]))
        polls.start("w1", "w2", "w3", "w4")
        polls.wakes.wake(None)
        assert await polls.woken() == ["w1", "w2"]
        assert polls.wakes.woken_by_broadcasts == 2
        polls.stop()

    run(body)


def test_a_poll_that_took_nothing_hands_its_turn_to_the_next_worker() -> None:
    queued = [1]

    async def body() -> None:
        wakes = wakeups.Wakeups(queued=lambda: queued[0])
        polls = Polls(wakes)
        polls.start("other-pool", "w2", "w3")
        wakes.wake(None)
        assert await polls.woken() == ["other-pool"]
        wakes.settle("other-pool")  # looked, took nothing: the task is still queued
        assert await polls.woken() == ["other-pool", "w2"]
        queued[0] = 0
        wakes.settle("w2")  # took it: nothing is left for w3
        assert await polls.woken() == ["other-pool", "w2"]
        polls.stop()

    run(body)


def test_every_waiting_worker_gets_its_turn_while_the_task_stays_queued() -> None:
    async def body() -> None:
        wakes = wakeups.Wakeups(queued=lambda: 1)
        polls = Polls(wakes)
        workers = [f"w{i}" for i in range(6)]
        polls.start(*workers)
        wakes.wake(None)
        for worker in workers:
            assert worker in await polls.woken()
            wakes.settle(worker)
        assert await polls.woken() == workers
        assert wakes.woken_by_broadcasts == len(workers)  # each once, not more
        polls.stop()

    run(body)


def test_a_poll_that_ends_before_it_looks_hands_its_turn_on() -> None:
    async def body() -> None:
        wakes = wakeups.Wakeups(queued=lambda: 1)
        polls = Polls(wakes)
        polls.start("gone", "w2")
        wakes.wake(None)
        assert await polls.woken() == ["gone"]
        wakes.release("gone")  # its call was cancelled (the worker went away)
        assert await polls.woken() == ["gone", "w2"]
        polls.stop()

    run(body)


def test_a_full_worker_is_passed_by_and_a_wake_by_name_reaches_it() -> None:
    async def body() -> None:
        wakes = wakeups.Wakeups(queued=lambda: 1)
        polls = Polls(wakes)
        polls.start("full", wants_tasks=False)
        polls.start("free")
        wakes.wake(None)
        assert await polls.woken() == ["free"]
        wakes.wake("full")  # one of its leases ended
        assert await polls.woken() == ["full", "free"]
        polls.stop()

    run(body)


def test_a_poll_armed_but_not_yet_waiting_is_woken_by_a_broadcast() -> None:
    """It looked for work before the tasks were queued: its wait must end at once."""

    async def body() -> None:
        wakes = wakeups.Wakeups(queued=lambda: 1)
        event = wakes.arm("deciding")
        wakes.wake(None)
        assert await wakes.wait("deciding", event, 30)

    run(body)


def test_without_a_queue_count_a_broadcast_wakes_every_waiting_poll() -> None:
    async def body() -> None:
        polls = Polls(wakeups.Wakeups())
        polls.start("w1", "w2", "w3")
        polls.wakes.wake(None)
        assert await polls.woken() == ["w1", "w2", "w3"]
        polls.stop()

    run(body)
