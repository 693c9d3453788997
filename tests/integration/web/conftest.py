"""A real browser (Debian's Chromium driven by Playwright) against a real `vahana server`.

Screenshots go to `test-output/dashboard/` at the repository's root (git-ignored), named by
test, so that a reviewer can look at each page as the tests left it.
"""

from __future__ import annotations

import importlib.util
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.integration import harness
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "test-output" / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MISSING_BROWSER = (
    "no headless browser: apt-get install chromium chromium-driver, and the playwright "
    "package (requirements-dev.txt) — the dashboard's browser tests need both"
)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: while Playwright's sync driver is open, its event loop is the
    # thread's running loop, and every later `asyncio.run()` in the session would be refused.
    available = Path(CHROMIUM).exists() and importlib.util.find_spec("playwright") is not None
    require(available, MISSING_BROWSER)
    from playwright.sync_api import sync_playwright

    # Playwright gives each launch a fresh profile (user data dir) of its own.
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        launched.close()


class Page:
    """A browser tab on the dashboard, with the dialogs and script errors it met."""

    def __init__(self, browser: Any, base_url: str, **context: Any) -> None:
        context.setdefault("viewport", {"width": 1280, "height": 800})
        self.context = browser.new_context(**context)
        self.tab = self.context.new_page()
        self.base_url = base_url
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.tab.on("dialog", self._dialog)
        self.tab.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, route: str = "/") -> None:
        """Goes to `#<route>` and waits until the page has rendered its first data."""
        if self.tab.url.startswith(self.base_url):  # the page before must not count as ready
            self.tab.evaluate("() => { delete document.getElementById('view').dataset.ready; }")
        self.tab.goto(f"{self.base_url}#{route}")
        self.ready()

    def ready(self, timeout: float = 10.0) -> None:
        self.tab.wait_for_selector("#view[data-ready]", timeout=timeout * 1000)

    def text(self, selector: str) -> str:
        return str(self.tab.locator(selector).first.inner_text())

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.tab.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


Launch = Callable[..., "Dashboard"]


class Dashboard:
    """`vahana server` with its dashboard on a free port, and a gRPC client to it."""

    def __init__(self, state_dir: Path, *flags: str, token: str = "") -> None:
        self.ui_port = harness.free_port()
        self.process = harness.SchedulerProcess(
            state_dir=state_dir, extra=("--ui", f"--ui-port={self.ui_port}", *flags)
        ).start()
        self.url = f"http://127.0.0.1:{self.ui_port}/"
        wait_until(self._answers, timeout=20, message=f"dashboard at {self.url}")
        self.client = harness.Client(self.process.address, token=token)

    def _answers(self) -> bool:
        with urllib.request.urlopen(self.url + "api/config", timeout=1) as response:
            return bool(response.status == 200)

    def stop(self) -> None:
        self.client.close()
        self.process.stop()


@pytest.fixture
def launch(state_dir: Path) -> Iterator[Launch]:
    started: list[Dashboard] = []

    def start(*flags: str, token: str = "") -> Dashboard:
        started.append(Dashboard(state_dir, *flags, token=token))
        return started[-1]

    yield start
    for dashboard in started:
        dashboard.stop()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Page]]:
    pages: list[Page] = []

    def make(base_url: str, **context: Any) -> Page:
        pages.append(Page(browser, base_url, **context))
        return pages[-1]

    yield make
    for page in pages:
        assert not page.errors, f"script errors on the page: {page.errors}"
        page.close()
