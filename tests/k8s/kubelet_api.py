"""The kubelet's HTTPS API, the part the API server calls: `GET /containerLogs/…`.

`kubectl logs POD` reads the Pod's `log` subresource; the API server finds the Pod's Node and
calls its kubelet at the Node's address (`status.addresses`, InternalIP here) and port
(`status.daemonEndpoints.kubeletEndpoint.Port`):
`GET https://<address>:<port>/containerLogs/{namespace}/{pod}/{container}?tailLines=…`, and
streams the answer back. The API server checks the kubelet's serving certificate only when
given `--kubelet-certificate-authority` (the test control plane is not), so a self-signed
certificate made with openssl serves. Like a kubelet's read-only port, this server asks for no
credentials; it listens on the node's address only.

Query parameters as the kubelet reads them: `tailLines`, `timestamps`, `follow`, `previous`
(the container's run before the current one), `limitBytes`, `sinceSeconds`, `sinceTime`.
The logs are `podman logs` of the container (stdout and stderr in the order written); a
container that never ran is answered 400 with the kubelet's message, an unknown one 404.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class LogsUnavailable(Exception):
    """The container has no logs to give; `status` and message as the kubelet answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


FindContainer = Callable[[str, str, str, bool], str]
"""(namespace, pod, container, previous) → the podman container holding those logs, or raises
LogsUnavailable."""


def podman_logs_args(name: str, query: dict[str, str]) -> tuple[list[str], int | None]:
    """`podman logs …` for the kubelet's query parameters, and the byte limit (limitBytes)."""
    args = ["podman", "logs"]
    if query.get("tailLines"):
        args += ["--tail", str(int(query["tailLines"]))]
    if query.get("timestamps") == "true":
        args.append("--timestamps")
    if query.get("follow") == "true":
        args.append("--follow")
    if query.get("sinceSeconds"):
        args += ["--since", f"{int(query['sinceSeconds'])}s"]
    elif query.get("sinceTime"):
        args += ["--since", query["sinceTime"]]
    limit = int(query["limitBytes"]) if query.get("limitBytes") else None
    return [*args, name], limit


class KubeletApi:
    """An HTTPS server on `address`:<free port> answering /containerLogs; start(), stop()."""

    def __init__(self, find: FindContainer, address: str) -> None:
        self.find = find
        self.address = address
        self._dir = Path(tempfile.mkdtemp(prefix="vh-kubelet-api-"))
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._streams: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self) -> KubeletApi:
        cert, key = self._dir / "kubelet.crt", self._dir / "kubelet.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=kubelet",
             "-addext", f"subjectAltName=IP:{self.address}",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        api = self

        class Handler(_Handler):
            owner = api

        server = http.server.ThreadingHTTPServer((self.address, 0), Handler)
        server.daemon_threads = True
        # The handshake happens on the request's thread (Handler.setup), not on the accept loop.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="kubelet-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            streams = list(self._streams)
        for process in streams:  # `follow` streams end with the server
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if self._thread is not None:
            self._thread.join(10)
        shutil.rmtree(self._dir, ignore_errors=True)

    def stream_logs(self, name: str, query: dict[str, str], write: Callable[[bytes], Any]) -> None:
        """Copies `podman logs` of container `name` to `write` until it ends (or the reader
        goes away, or `limitBytes` is reached)."""
        args, limit = podman_logs_args(name, query)
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with self._lock:
            self._streams.add(process)
        try:
            assert process.stdout is not None
            while limit is None or limit > 0:
                chunk = process.stdout.read1(CHUNK if limit is None else min(CHUNK, limit))
                if not chunk:
                    break
                write(chunk)
                if limit is not None:
                    limit -= len(chunk)
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
            with self._lock:
                self._streams.discard(process)


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: KubeletApi
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: fit for follow

    def setup(self) -> None:
        self.request.settimeout(30)
        try:
            self.request.do_handshake()
        finally:
            self.request.settimeout(None)
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        parts = [unquote(part) for part in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._answer(404, f"{url.path}: not found")
            return
        _, namespace, pod, container = parts
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            name = self.owner.find(namespace, pod, container, query.get("previous") == "true")
        except LogsUnavailable as error:
            self._answer(error.status, str(error))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.owner.stream_logs(name, query, self._write)

    def _write(self, chunk: bytes) -> None:
        self.wfile.write(chunk)
        self.wfile.flush()

    def _answer(self, status: int, message: str) -> None:
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("kubelet api: " + format, *args)
