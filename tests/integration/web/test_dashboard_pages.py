"""The dashboard in a real browser, against `vahana server` with real local workers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2

from tests.integration import harness
from tests.integration.web.conftest import Launch, Page
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

COMPLETED = "[data-phase=COMPLETED] .value"
THROUGHPUT = "[data-chart^=Throughput]"


def number(text: str) -> int:
    return int(text.replace(",", "").strip())


def watch_changes(page: Page) -> None:
    """Records in the page every value the completed counter and the throughput chart show."""
    page.tab.evaluate(
        """() => {
          window.seenCounts = []; window.seenSums = [];
          const note = () => {
            const count = document.querySelector('[data-phase=COMPLETED] .value');
            const chart = document.querySelector('[data-chart^=Throughput]');
            if (count) window.seenCounts.push(count.textContent);
            if (chart && chart.dataset.sum) window.seenSums.push(Number(chart.dataset.sum));
          };
          new MutationObserver(note).observe(document.getElementById('view'),
            {subtree: true, childList: true, characterData: true, attributes: true});
        }"""
    )


def test_the_overview_counts_and_charts_follow_500_tasks_as_they_run(
    launch: Launch, open_page
) -> None:
    dashboard = launch("--workers=2", "--tasks-per-worker=2")
    wait_until(lambda: len(dashboard.client.list_workers()) == 2, timeout=20, message="workers")
    page = open_page(dashboard.url)
    page.open("/")
    assert number(page.text(COMPLETED)) == 0
    chart = page.tab.locator(THROUGHPUT)
    chart_before = chart.screenshot()
    watch_changes(page)

    # A little work each, so that the run spans several of the page's updates (1 s apart).
    dashboard.client.submit(
        *[harness.submission("sleep 0.02", name=f"step-{i}") for i in range(500)]
    )
    page.tab.wait_for_function(
        "() => document.querySelector('[data-phase=COMPLETED] .value').textContent === '500'",
        timeout=120_000,
    )
    counts = page.tab.evaluate("window.seenCounts")
    distinct = sorted({number(c) for c in counts})
    assert len(distinct) >= 3 and distinct[-1] == 500, f"the counter went {distinct}"
    page.tab.wait_for_function(
        "() => Math.round("
        "Number(document.querySelector('[data-chart^=Throughput]').dataset.sum) * 5) === 500",
        timeout=10_000,
    )  # 500 tasks in 5 s buckets, as rates per second
    sums = page.tab.evaluate("window.seenSums")
    assert len(set(sums)) >= 2, f"the throughput chart did not move: {sums}"
    assert chart.screenshot() != chart_before
    assert page.tab.locator("[data-chart^='Dispatch latency']").get_attribute("data-sum") != "0"
    assert number(page.text("[data-phase=TOTAL] .value")) == 500
    assert page.dialogs == []
    page.shot("overview")
    phone = open_page(dashboard.url, viewport={"width": 390, "height": 844}, color_scheme="dark")
    phone.open("/")
    scroll_width = phone.tab.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 390, f"the overview is {scroll_width} px wide on a phone"
    phone.shot("overview-phone-dark")


def test_a_task_page_shows_its_attempts_and_output(
    launch: Launch, open_page, state_dir: Path
) -> None:
    dashboard = launch("--workers=1")
    marker = state_dir / "first-attempt-done"
    command = (
        f"echo attempt output; if [ -e {marker} ]; then echo second try worked; "
        f"else touch {marker}; echo first try fails >&2; exit 3; fi"
    )
    retry = tasks_pb.RetryPolicy(max_task_retries=2)
    retry.backoff.FromNanoseconds(0)
    submission = harness.submission(command, name="flaky")
    submission.retry.CopyFrom(retry)
    (task_id,) = dashboard.client.submit(submission)
    page = open_page(dashboard.url)
    page.open(f"/task/{task_id}")
    page.tab.wait_for_function(
        "() => document.querySelectorAll('section table tbody tr').length === 2"
        " && document.querySelector('.task-head .badge').textContent === 'completed'",
        timeout=60_000,
    )  # the page follows the task live: no reload
    rows = page.tab.locator("section table tbody tr")
    first, second = rows.nth(0), rows.nth(1)
    assert first.locator("td").nth(4).inner_text() == "3"  # exit code of the first attempt
    assert "exited with code 3" in first.locator("td").nth(8).inner_text()
    assert second.locator("td").nth(4).inner_text() == "0"
    assert second.locator("td").nth(1).inner_text().startswith("local-")  # its worker
    output = page.text("[data-testid=output]")
    assert "second try worked" in output and "attempt output" in output
    assert "flaky" in page.text(".task-head h1")
    page.shot("task")


def test_a_task_page_links_its_whole_output_beyond_the_tail(launch: Launch, open_page) -> None:
    dashboard = launch("--workers=1")
    # 20,000 numbered lines (~190 KB) over half a second: streamed to the scheduler as they come.
    command = "for i in $(seq 1 20000); do echo line-$i; done; sleep 0.5; echo done"
    (task_id,) = dashboard.client.submit(harness.submission(command, name="chatty"))
    wait_until(
        lambda: dashboard.client.status(task_id) == worker_pb2.COMPLETED,
        timeout=30,
        message="chatty completed",
    )
    page = open_page(dashboard.url)
    page.open(f"/task/{task_id}")
    link = page.tab.locator("[data-testid=whole-output]")
    assert link.inner_text().startswith("Whole output (")
    href = link.get_attribute("href")
    with urllib.request.urlopen(dashboard.url.rstrip("/") + href, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        whole = response.read().decode()
    expected = "".join(f"line-{i}\n" for i in range(1, 20001)) + "done\n"
    assert whole == expected


def test_workers_and_pools_pages_list_what_the_cli_lists(
    launch: Launch, open_page, state_dir: Path
) -> None:
    pool_file = state_dir / "pool.yaml"
    pool_file.write_text(
        "apiVersion: vahana.dev/v1alpha1\nkind: WorkerPool\nmetadata: {name: batch}\n"
        "spec: {type: local, minWorkers: 1, maxWorkers: 3, tasksPerWorker: 2}\n"
    )
    dashboard = launch("--workers=2", f"--pool-file={pool_file}")
    wait_until(lambda: len(dashboard.client.list_workers()) == 3, timeout=30, message="workers")
    listed = subprocess.run(
        [sys.executable, "-m", "vahana.cli.main", "get", "workers", "-o", "json"]
        + ["--server", dashboard.process.address],
        capture_output=True,
        text=True,
        check=True,
    )
    cli = {(w["worker_id"], w.get("pool", ""), w["status"]) for w in json.loads(listed.stdout)}
    page = open_page(dashboard.url)
    page.open("/workers")
    rows = page.tab.locator("tr[data-worker]")
    shown = {
        (
            rows.nth(i).locator("td").nth(0).inner_text(),
            rows.nth(i).locator("td").nth(1).inner_text(),
            rows.nth(i).locator("td").nth(2).inner_text().upper(),
        )
        for i in range(rows.count())
    }
    assert shown == cli
    page.shot("workers")

    page.open("/pools")
    page.tab.wait_for_function(
        "() => document.querySelector('tr[data-pool=\"default/batch\"] td:nth-child(5)')"
        ".textContent === '1'",
        timeout=20_000,
    )  # ready, once the pool's first round has run
    cells = page.tab.locator('tr[data-pool="default/batch"] td')
    assert [cells.nth(i).inner_text() for i in range(4)] == ["default/batch", "local", "1", "3"]
    assert page.tab.locator('tr[data-pool="local"] td').nth(8).inner_text() == "2"
    page.shot("pools")


def test_a_script_in_a_task_name_or_its_output_is_shown_as_text(launch: Launch, open_page) -> None:
    dashboard = launch("--workers=1")
    name = "<script>alert(1)</script>"
    command = "echo '<script>alert(2)</script>'; echo '<img src=x onerror=alert(3)>'"
    (task_id,) = dashboard.client.submit(harness.submission(command, name=name))
    wait_until(
        lambda: dashboard.client.status(task_id) == harness.worker_pb2.COMPLETED,
        timeout=30,
        message="the task completed",
    )
    # Without the Content-Security-Policy: the escaping alone must keep the markup inert.
    page = open_page(dashboard.url, bypass_csp=True)
    page.open("/tasks")
    assert page.text(f"tr[data-task='{task_id}'] td[data-col=name]") == name
    page.open(f"/task/{task_id}")
    assert page.text(".task-head .name") == name
    assert "<img src=x onerror=alert(3)>" in page.text("[data-testid=output]")
    assert page.tab.locator("#view img, #view script").count() == 0
    page.open("/tasks?q=" + urllib.request.quote("<script>"))
    assert page.text("td[data-col=name]") == name
    assert page.dialogs == [], f"a dialog opened: {page.dialogs}"
    page.shot("task-with-markup-in-its-name")


def test_cancel_needs_the_client_token(launch: Launch, open_page, state_dir: Path) -> None:
    secret = "s3cret-token"
    token_file = state_dir / "client-token"
    token_file.write_text(secret + "\n")
    dashboard = launch("--workers=1", f"--client-token-file={token_file}", token=secret)
    (task_id,) = dashboard.client.submit(harness.submission("sleep 60", name="long"))
    wait_until(
        lambda: dashboard.client.status(task_id) == harness.worker_pb2.RUNNING,
        timeout=30,
        message="the task running",
    )
    cancel_url = f"{dashboard.url}api/tasks/{task_id}/cancel"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(cancel_url, method="POST"), timeout=5)
    assert refused.value.code == 401

    page = open_page(dashboard.url)
    page.open(f"/task/{task_id}")
    assert page.tab.locator("[data-action=cancel]").count() == 0  # not unlocked yet
    page.tab.fill("#token", "wrong")
    page.tab.click("#unlock button")
    page.tab.wait_for_selector("#token.wrong")
    page.tab.fill("#token", secret)
    page.tab.click("#unlock button")
    page.tab.wait_for_selector("[data-action=cancel]")
    page.tab.click("[data-action=cancel]")
    page.tab.wait_for_function(
        "() => document.querySelector('.task-head .badge').textContent === 'cancelled'",
        timeout=30_000,
    )
    assert dashboard.client.status(task_id) == harness.worker_pb2.CANCELLED


def test_without_a_client_token_the_dashboard_is_read_only(launch: Launch, open_page) -> None:
    dashboard = launch()
    (task_id,) = dashboard.client.submit(harness.submission("true", name="queued"))
    request = urllib.request.Request(
        f"{dashboard.url}api/tasks/{task_id}/cancel",
        method="POST",
        headers={"Authorization": "Bearer anything"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403
    page = open_page(dashboard.url)
    page.open(f"/task/{task_id}")
    assert not page.tab.locator("#unlock").is_visible()
    assert page.tab.locator("[data-action=cancel]").count() == 0
    started = time.monotonic()
    headers = urllib.request.urlopen(dashboard.url, timeout=5).headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert time.monotonic() - started < 5
