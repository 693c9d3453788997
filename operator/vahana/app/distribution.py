"""Serves the worker zipapp over HTTP, so remote pools download it as WORKER_BINARY_URL.

The file is served at `/worker/vahana-worker-<sha256>.pyz`: the name carries the checksum the
pools' scripts verify before running the download, and a changed worker gets a new URL (no
stale cache anywhere). Any other path is a 404. The zipapp is a prebuilt file
(`pools.worker_pyz`) or built on first use from the worker's sources with
`worker/build_pyz.py` into the state directory.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

PATH_PREFIX = "/worker/vahana-worker-"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_worker_pyz(output: Path) -> Path:
    """Builds the zipapp with the worker sources' build script (shiv); RuntimeError on failure."""
    spec = importlib.util.find_spec("vahana_worker")
    script = Path(spec.origin).parent.parent / "build_pyz.py" if spec and spec.origin else None
    if script is None or not script.is_file():
        raise RuntimeError(
            "cannot build the worker zipapp: worker/build_pyz.py not found next to vahana_worker "
            "— build it (`python worker/build_pyz.py`) and set pools.worker_pyz"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(script), "-o", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the worker zipapp failed: {done.stderr.strip()[-500:]}")
    return output


class WorkerDistribution:
    """One file over HTTP from a thread of its own; `url` is known once started."""

    def __init__(self, pyz: Path, *, host: str, port: int = 0) -> None:
        self.sha256 = sha256_of(pyz)
        self.path = f"{PATH_PREFIX}{self.sha256}.pyz"
        self._pyz = pyz
        self._host = host
        self._server = http.server.ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, public_host: str) -> str:
        """The download URL as seen from a worker that reaches this host as `public_host`."""
        host = f"[{public_host}]" if ":" in public_host else public_host
        return f"http://{host}:{self.port}{self.path}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-distribution", daemon=True
        )
        self._thread.start()
        log.info("serving worker zipapp port=%d path=%s", self.port, self.path)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        served_path, pyz = self.path, self._pyz

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != served_path:
                    self.send_error(404, "no such file")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(pyz.stat().st_size))
                self.end_headers()
                with open(pyz, "rb") as file:
                    shutil.copyfileobj(file, self.wfile)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("distribution %s", format % args)

        return Handler
