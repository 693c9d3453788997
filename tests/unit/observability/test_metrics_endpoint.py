"""The /metrics endpoint answers Prometheus and curl on the event loop; other paths get 404."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter
from vahana.observability import endpoint


async def _get(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


def test_metrics_are_served_in_the_text_format_and_in_openmetrics() -> None:
    registry = CollectorRegistry()
    Counter("vahana_things", "Things.", registry=registry).inc(3)

    async def scenario() -> tuple[bytes, bytes, bytes, bytes]:
        served = endpoint.MetricsEndpoint(registry, host="127.0.0.1", port=0)
        port = await served.start()
        try:
            text = await _get(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            open_metrics = await _get(
                port,
                b"GET /metrics HTTP/1.1\r\n"
                b"Accept: application/openmetrics-text;version=1.0.0\r\n\r\n",
            )
            missing = await _get(port, b"GET / HTTP/1.1\r\n\r\n")
            posted = await _get(port, b"POST /metrics HTTP/1.1\r\n\r\n")
        finally:
            await served.stop()
        return text, open_metrics, missing, posted

    text, open_metrics, missing, posted = asyncio.run(scenario())
    assert text.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/plain; version=0.0.4" in text
    assert b"\nvahana_things_total 3.0\n" in text
    assert b"application/openmetrics-text" in open_metrics.split(b"\r\n\r\n")[0]
    assert open_metrics.rstrip().endswith(b"# EOF")
    assert missing.startswith(b"HTTP/1.1 404")
    assert posted.startswith(b"HTTP/1.1 405")


def test_a_port_in_use_is_refused_with_the_setting_named() -> None:
    async def scenario() -> str:
        first = endpoint.MetricsEndpoint(CollectorRegistry(), host="127.0.0.1", port=0)
        port = await first.start()
        second = endpoint.MetricsEndpoint(CollectorRegistry(), host="127.0.0.1", port=port)
        try:
            await second.start()
        except OSError as error:
            return str(error)
        finally:
            await first.stop()
        return ""

    assert "metrics.port" in asyncio.run(scenario())
