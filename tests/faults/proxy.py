"""A TCP proxy for fault tests: forwards to a target and can cut every open connection.

It runs its own event loop in a thread. `cut()` closes both sides of every connection it
carries (clients see the link drop, as on a network failure); new connections are accepted
again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading


class FaultProxy:
    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )
        self.port = 0
        self.cuts = 0

    def start(self) -> FaultProxy:
        self._thread.start()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        future = asyncio.run_coroutine_threadsafe(self._listen(sock), self._loop)
        future.result(timeout=10)
        return self

    async def _listen(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._serve, sock=sock)

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.close()
            return
        pair = {client_writer, upstream_writer}
        self._writers |= pair
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer),
                self._pipe(upstream_reader, client_writer),
            )
        finally:
            self._writers -= pair
            for writer in pair:
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    def cut(self) -> int:
        """Drops every open connection at once; returns how many there were."""
        self.cuts += 1
        return asyncio.run_coroutine_threadsafe(self._abort_all(), self._loop).result(timeout=10)

    async def _abort_all(self) -> int:
        writers = list(self._writers)
        for writer in writers:
            transport = writer.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()  # RST, not a polite FIN: like a dead link
        return len(writers) // 2

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        asyncio.run_coroutine_threadsafe(self._abort_all(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
