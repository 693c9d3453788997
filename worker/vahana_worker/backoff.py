"""Retry pacing towards the scheduler: exponential backoff with full jitter and a circuit breaker.

`Backoff` gives the delay before the next retry of one loop. `CircuitBreaker` is shared by all the
worker's loops: after `failure_threshold` consecutive failures it opens and every loop waits
`reset_timeout` seconds; then one trial call is let through (half-open); its success closes the
breaker, its failure opens it again. Clock and randomness are injected so tests can drive them.

Both are capped by the heartbeat interval (`reconnect_cap`, `limit`): a worker that cannot reach
the scheduler tries again at least once per interval, so that a restarted scheduler hears from
every live worker well within its recovery grace (the silence limit plus one interval) and does
not rerun the tasks they are running.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)

RECONNECT_FLOOR = 0.5
"""Seconds: the shortest cap of a wait between two tries, however short the interval."""
RECONNECT_CEILING = 30.0
"""Seconds: the longest wait between two tries, however long the interval."""


def reconnect_cap(heartbeat_interval: float) -> float:
    """The longest wait between two tries to reach the scheduler: one heartbeat interval,
    within reason (never under `RECONNECT_FLOOR`, never over `RECONNECT_CEILING`)."""
    return min(RECONNECT_CEILING, max(RECONNECT_FLOOR, heartbeat_interval))


class Backoff:
    """Exponential backoff, full jitter: the n-th delay is uniform in [0, min(cap, base*2^n)]."""

    def __init__(
        self,
        *,
        base: float = 0.5,
        cap: float = 30.0,
        factor: float = 2.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if base <= 0 or cap < base or factor < 1:
            raise ValueError("need base > 0, cap >= base, factor >= 1")
        self._base = base
        self._cap = cap
        self._limit = cap
        """The cap in force: `cap`, or less (`limit`)."""
        self._factor = factor
        self._rand = rand
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # Cap the exponent so that factor**attempt cannot overflow after a long outage.
        exponent = min(self._attempt, 64)
        return float(min(self._limit, self._base * self._factor**exponent))

    def limit(self, seconds: float) -> None:
        """Caps the delays at `seconds` (at least `base`), or at the constructor's `cap` if
        that is lower; takes effect from the next delay."""
        self._limit = min(self._cap, max(self._base, seconds))

    def next_delay(self) -> float:
        """Returns the delay before the next retry (seconds) and advances the schedule."""
        delay = self._rand() * self.ceiling()
        self._attempt += 1
        return delay

    def reset(self) -> None:
        """Starts the schedule again from `base` (call after a success)."""
        self._attempt = 0


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """A thread-safe circuit breaker (closed → open → half-open → closed), shared by the loops."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "scheduler",
    ) -> None:
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError("need failure_threshold >= 1 and reset_timeout > 0")
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._configured_timeout = reset_timeout
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started_at: float | None = None
        self._closed = threading.Event()
        self._closed.set()

    def limit(self, seconds: float) -> None:
        """Lowers `reset_timeout` to `seconds` (never above the constructor's value): an open
        breaker lets a trial call through at least this often."""
        if seconds <= 0:
            raise ValueError("need seconds > 0")
        with self._lock:
            self._reset_timeout = min(self._configured_timeout, seconds)

    @property
    def reset_timeout(self) -> float:
        with self._lock:
            return self._reset_timeout

    def wait_closed(self, timeout: float) -> bool:
        """Waits until the breaker is closed (a call got through); False on timeout.

        For long-held calls (the long poll): they must not be the half-open trial, or every
        other call would wait behind them for as long as they are held.
        """
        return self._closed.wait(timeout)

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def acquire(self) -> float:
        """Asks to make a call. Returns 0 if it may go ahead, else the seconds to wait first.

        In the half-open state only one trial call is let through at a time; a trial whose outcome
        is never recorded stops blocking the others after `reset_timeout`.
        """
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                return 0.0
            if self._state is BreakerState.OPEN:
                remaining = self._opened_at + self._reset_timeout - now
                if remaining > 0:
                    return remaining
                self._set_state(BreakerState.HALF_OPEN)
                self._trial_started_at = now
                return 0.0
            # Half-open: one trial at a time.
            started = self._trial_started_at
            if started is None or now - started >= self._reset_timeout:
                self._trial_started_at = now
                return 0.0
            return max(0.0, started + self._reset_timeout - now)

    def record_success(self) -> None:
        """A call reached the scheduler: close the breaker."""
        with self._lock:
            self._failures = 0
            self._trial_started_at = None
            if self._state is not BreakerState.CLOSED:
                self._set_state(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A call failed for a transport reason: count it; open the breaker at the threshold."""
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or (
                self._state is BreakerState.CLOSED and self._failures >= self._threshold
            ):
                self._opened_at = self._clock()
                self._trial_started_at = None
                self._set_state(BreakerState.OPEN)

    def _set_state(self, state: BreakerState) -> None:
        old = self._state
        if state is BreakerState.CLOSED:
            self._closed.set()
        else:
            self._closed.clear()
        self._state = state
        level = logging.WARNING if state is BreakerState.OPEN else logging.INFO
        _log.log(
            level,
            "circuit breaker state changed",
            extra={
                "kv": {
                    "breaker": self._name,
                    "from": old.value,
                    "to": state.value,
                    "failures": self._failures,
                }
            },
        )
