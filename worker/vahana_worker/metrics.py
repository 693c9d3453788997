"""An optional Prometheus endpoint for the worker, built on the standard library alone.

The worker distribution depends only on grpcio and protobuf, so this module writes the text
exposition format (version 0.0.4) itself and serves it with `http.server` on a daemon thread:
active tasks and slots, tasks run by outcome, the circuit breaker's state and the status updates
waiting to be delivered. Off unless `--metrics-port` is given.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("completed", "failed", "timed_out", "cancelled")
BREAKER_STATES = ("closed", "open", "half-open")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The worker's figures at one scrape."""

    active_tasks: int
    task_slots: int
    outcomes: Mapping[str, int]
    breaker_state: str
    buffered_updates: int


class OutcomeCounter:
    """Tasks run, by outcome; thread-safe (task threads add, the HTTP thread reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(OUTCOMES, 0)

    def add(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] = self._counts.get(outcome, 0) + 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def _family(name: str, kind: str, help_text: str, samples: Sequence[tuple[str, float]]) -> str:
    # In this format a counter's family carries its sample's name, `_total` included.
    full = f"{name}_total" if kind == "counter" else name
    lines = [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
    lines += [f"{full}{labels} {value:g}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def render(snapshot: Snapshot) -> str:
    """The snapshot in the Prometheus text format."""
    return "".join(
        (
            _family(
                "vahana_worker_active_tasks",
                "gauge",
                "Tasks running in this worker's slots.",
                [("", snapshot.active_tasks)],
            ),
            _family(
                "vahana_worker_task_slots",
                "gauge",
                "Tasks this worker runs at once (--max-tasks).",
                [("", snapshot.task_slots)],
            ),
            _family(
                "vahana_worker_tasks",
                "counter",
                "Tasks this worker ran to an end, by outcome.",
                [(f'{{outcome="{o}"}}', n) for o, n in sorted(snapshot.outcomes.items())],
            ),
            _family(
                "vahana_worker_circuit_breaker_state",
                "gauge",
                "The circuit breaker on calls to the scheduler: 1 for its current state.",
                [
                    (f'{{state="{s}"}}', 1 if s == snapshot.breaker_state else 0)
                    for s in BREAKER_STATES
                ],
            ),
            _family(
                "vahana_worker_status_updates_buffered",
                "gauge",
                "Task status updates not yet delivered to the scheduler.",
                [("", snapshot.buffered_updates)],
            ),
        )
    )


class MetricsServer:
    """Serves `render(snapshot())` at /metrics on host:port (0: a free port, see `port`)."""

    def __init__(self, snapshot: Callable[[], Snapshot], *, host: str, port: int) -> None:
        import http.server  # here: only workers with --metrics-port pay its 15 ms of import

        take = snapshot

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?", 1)[0] not in ("/metrics", "/metrics/"):
                    self.send_error(404, "metrics are at /metrics")
                    return
                body = render(take()).encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # scrapes are not worth a log line each

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stops serving; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
