"""The task list over 100,000 queued tasks: filtered and paged on the server.

How fast each of these views answers is a figure of the benchmark (`dashboard_pages`), not a
condition here."""

from __future__ import annotations

import pytest

from tests.integration import harness
from tests.integration.web.conftest import Launch, Page

pytestmark = pytest.mark.integration

TASKS = 100_000
BATCH = 2_000
POOLS = ("alpha", "beta", "")


def rendered(page: Page, action, expect_page: int) -> None:
    """Does `action()` (a click, a navigation) and waits for the list's new page on screen."""
    # The page before may satisfy the condition below: only a render after the action counts.
    page.tab.evaluate("() => { delete document.getElementById('view').dataset.ready; }")
    action()
    page.tab.wait_for_function(
        "() => { const r = document.querySelector('.pager .range');"
        " return document.querySelector('#view[data-ready]') && r"
        f" && r.dataset.page === '{expect_page}'"
        " && document.querySelectorAll('tr[data-task]').length > 0; }",
        timeout=10_000,
    )


def test_the_task_list_filters_and_pages_over_100000_queued_tasks(
    launch: Launch, open_page
) -> None:
    dashboard = launch()  # no worker: every task stays queued
    for start in range(0, TASKS, BATCH):
        batch = []
        for i in range(start, start + BATCH):
            submission = harness.submission("true", name=f"sample-{i}", priority=i % 5)
            submission.pool = POOLS[i % 3]
            batch.append(submission)
        dashboard.client.tasks.SubmitTasks(
            harness.tasks_pb.SubmitTasksRequest(tasks=batch), timeout=60
        )
    page = open_page(dashboard.url)
    page.open("/")  # the app loads once (the browser's first visit), then each page of the list

    rendered(page, lambda: page.open("/tasks"), 0)
    assert page.text(".pager .range") == "1–50 of 100,000"
    assert page.tab.locator("tr[data-task]").count() == 50
    assert page.text("tr[data-task] td[data-col=name]") == "sample-99999"  # newest first

    rendered(page, lambda: page.tab.click("a[rel=next]"), 1)
    assert page.text(".pager .range") == "51–100 of 100,000"
    assert page.text("tr[data-task] td[data-col=name]") == "sample-99949"

    rendered(page, lambda: page.tab.click("text=last »"), 1999)
    assert page.text(".pager .range") == "99,951–100,000 of 100,000"
    assert page.tab.locator("tr[data-task] td[data-col=name]").last.inner_text() == "sample-0"

    rendered(page, lambda: page.open("/tasks?phase=PENDING&pool=alpha"), 0)
    assert page.text(".pager .range") == "1–50 of 33,334"
    pools = page.tab.locator("tr[data-task] td[data-col=pool]").all_inner_texts()
    assert set(pools) == {"alpha"}

    rendered(page, lambda: page.open("/tasks?pool=(none)&page=3"), 3)
    assert page.text(".pager .range") == "151–200 of 33,333"

    page.open("/tasks")  # the search keeps the other filters: start from none

    def search() -> None:
        page.tab.fill("input[name=q]", "sample-9999")
        page.tab.press("input[name=q]", "Enter")

    rendered(page, search, 0)
    names = page.tab.locator("tr[data-task] td[data-col=name]").all_inner_texts()
    assert sorted(names) == sorted(["sample-9999", *[f"sample-9999{d}" for d in range(10)]])

    page.open("/tasks?phase=COMPLETED")  # none finished: an empty page
    assert page.text(".results") == "No task matches."

    page.open("/")
    assert page.text("[data-phase=PENDING] .value") == "100,000"
    queue = page.tab.locator("section:has(h2:text('Queue by pool')) tbody tr")
    assert queue.count() == 15  # 3 pools × 5 priorities
    page.shot("overview-100000-queued")
    page.open("/tasks?phase=PENDING")
    page.shot("tasks")
