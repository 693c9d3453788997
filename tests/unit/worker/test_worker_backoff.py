"""Backoff delays and the circuit breaker, driven by an injected clock and randomness."""

import logging

import pytest
from vahana_worker import backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    pause = backoff.Backoff(base=0.5, cap=4.0, rand=lambda: 1.0)
    assert [pause.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    pause.reset()
    assert pause.next_delay() == 0.5


def test_backoff_uses_full_jitter() -> None:
    draws = iter([0.0, 0.5, 0.25])
    pause = backoff.Backoff(base=1.0, cap=100.0, rand=lambda: next(draws))
    assert [pause.next_delay() for _ in range(3)] == [0.0, 1.0, 1.0]


def test_backoff_survives_a_very_long_outage() -> None:
    pause = backoff.Backoff(base=0.5, cap=30.0, rand=lambda: 1.0)
    for _ in range(5000):
        delay = pause.next_delay()
    assert delay == 30.0


def test_breaker_opens_after_threshold_and_half_opens_after_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = backoff.CircuitBreaker(failure_threshold=3, reset_timeout=10.0, clock=clock)
    caplog.set_level(logging.INFO, logger="vahana_worker.backoff")
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is backoff.BreakerState.CLOSED
    assert breaker.acquire() == 0.0
    breaker.record_failure()
    assert breaker.state is backoff.BreakerState.OPEN
    assert breaker.acquire() == pytest.approx(10.0)
    clock.now = 4.0
    assert breaker.acquire() == pytest.approx(6.0)
    clock.now = 10.0
    assert breaker.acquire() == 0.0  # the trial call
    assert breaker.state is backoff.BreakerState.HALF_OPEN
    assert breaker.acquire() > 0  # only one trial at a time
    breaker.record_success()
    assert breaker.state is backoff.BreakerState.CLOSED
    assert breaker.acquire() == 0.0
    changes = [(r.kv["from"], r.kv["to"]) for r in caplog.records if hasattr(r, "kv")]
    assert changes == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


def test_failed_trial_reopens_the_breaker() -> None:
    clock = FakeClock()
    breaker = backoff.CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    breaker.record_failure()
    clock.now = 5.0
    assert breaker.acquire() == 0.0
    breaker.record_failure()
    assert breaker.state is backoff.BreakerState.OPEN
    assert breaker.acquire() == pytest.approx(5.0)


def test_abandoned_trial_stops_blocking_after_reset_timeout() -> None:
    clock = FakeClock()
    breaker = backoff.CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    breaker.record_failure()
    clock.now = 5.0
    assert breaker.acquire() == 0.0
    clock.now = 7.0
    assert breaker.acquire() == pytest.approx(3.0)
    clock.now = 10.0
    assert breaker.acquire() == 0.0


def test_success_resets_the_failure_count() -> None:
    breaker = backoff.CircuitBreaker(failure_threshold=2, reset_timeout=1.0, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is backoff.BreakerState.CLOSED


def test_wait_closed_follows_the_breaker_state() -> None:
    now = [0.0]
    breaker = backoff.CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=lambda: now[0])
    assert breaker.wait_closed(timeout=0)
    breaker.record_failure()
    assert not breaker.wait_closed(timeout=0)
    now[0] += 5.0
    assert breaker.acquire() == 0.0  # the half-open trial
    assert not breaker.wait_closed(timeout=0)
    breaker.record_success()
    assert breaker.wait_closed(timeout=0)


# -- the reconnect cadence: at least one try per heartbeat interval --------------------------------
def test_the_wait_between_tries_is_capped_by_the_heartbeat_interval_within_reason() -> None:
    assert backoff.reconnect_cap(1.0) == 1.0
    assert backoff.reconnect_cap(0.1) == backoff.RECONNECT_FLOOR == 0.5  # no hammering
    assert backoff.reconnect_cap(3600.0) == backoff.RECONNECT_CEILING == 30.0


def test_a_limited_backoff_never_waits_longer_than_its_limit() -> None:
    pause = backoff.Backoff(base=0.5, cap=30.0, rand=lambda: 1.0)
    pause.limit(2.0)
    assert [pause.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    pause.limit(60.0)  # never above the constructor's cap
    assert [pause.next_delay() for _ in range(3)] == [16.0, 30.0, 30.0]
    pause.limit(0.01)  # never below its base
    assert pause.next_delay() == 0.5


def test_a_limited_breaker_lets_a_trial_through_at_least_that_often() -> None:
    clock = FakeClock()
    breaker = backoff.CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    breaker.limit(1.0)
    assert breaker.reset_timeout == 1.0
    breaker.record_failure()
    assert breaker.acquire() == pytest.approx(1.0)
    clock.now = 1.0
    assert breaker.acquire() == 0.0  # the trial
    breaker.limit(60.0)  # never above the constructor's timeout
    assert breaker.reset_timeout == 5.0
    with pytest.raises(ValueError):
        breaker.limit(0.0)
