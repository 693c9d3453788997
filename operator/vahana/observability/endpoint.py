"""The `/metrics` HTTP endpoint, served by asyncio on the scheduler's own event loop.

Serving on the loop (rather than prometheus-client's HTTP thread) means a scrape reads the
scheduler's queue and workers between two of its units of work, never in the middle of one:
no lock, no copy. The server speaks just enough HTTP/1.1 for Prometheus and curl: GET or HEAD
of /metrics, content negotiated between the text format and OpenMetrics, one request per
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CollectorRegistry, exposition

log = logging.getLogger(__name__)

READ_TIMEOUT = 10.0
"""Seconds a client gets to send its request head."""
MAX_HEAD = 16 * 1024
"""Bytes of request line and headers accepted."""


class PortInUse(OSError):
    """The metrics port could not be bound: the message says why and what to do."""


class MetricsEndpoint:
    """`await start()` listens on host:port (0: a free port, see `port`); `await stop()`."""

    def __init__(self, registry: CollectorRegistry, *, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        try:
            self._server = await asyncio.start_server(
                self._handle, self._host, self._requested_port, limit=MAX_HEAD
            )
        except OSError as error:
            raise PortInUse(
                f"metrics.port: cannot listen on {self._host}:{self._requested_port} "
                f"({error.strerror or error}); choose another with --metrics-port, 0 disables"
            ) from error
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("metrics on http://%s:%d/metrics", self._host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            status, content_type, body, head_only = self._respond(head)
            writer.write(
                (
                    f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                ).encode("latin-1")
            )
            if not head_only:
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sends no complete request gets no answer
        except ConnectionError:
            pass
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _respond(self, head: bytes) -> tuple[str, str, bytes, bool]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            return "400 Bad Request", "text/plain", b"bad request\n", False
        method, target, _version = parts
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"use GET\n", False
        path = target.split("?", 1)[0]
        if path not in ("/metrics", "/metrics/"):
            return "404 Not Found", "text/plain", b"metrics are at /metrics\n", method == "HEAD"
        accept = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        encoder, content_type = exposition.choose_encoder(accept)
        return "200 OK", content_type, encoder(self._registry), method == "HEAD"
