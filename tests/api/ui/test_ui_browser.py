"""The dashboard in a real browser: headless Chromium against a real `jobstore serve`.

Debian's chromium (/usr/bin/chromium) driven by Playwright's Python package; nothing is
downloaded. Without chromium the test skips, except under CI, where it fails. Screenshots go
to test-artifacts/screenshots/ at the top of the repository (kept after the run).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from jobstore.cli.node import node_for_tests
from jobstore.core.schedules import NewSchedule
from jobstore.domain.models import Encoding, Payload
from jobstore.store import Database
from tests.support.e2e import REPO_ROOT, Server, job_row, wait_for

pytestmark = pytest.mark.slow
T = TypeVar("T")

CHROMIUM = Path(os.environ.get("JOBSTORE_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
IN_CI = bool(os.environ.get("CI"))
# This machine may be offline: keep Chromium from calling home (updates, sync, field trials).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
]
SLEEP_SECONDS = 8.0  # long enough to watch and cancel, short enough if cancel were broken


def _missing(why: str) -> None:
    if IN_CI:
        pytest.fail(f"{why}; CI must run the browser test")
    pytest.skip(why)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    node = Server(database_url, tmp_path, node_id="browser-node", log_level="warning")
    try:
        yield node.start()
    finally:
        node.cleanup()


def _shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _outside_the_loop(function: Callable[..., T], *args: Any) -> T:
    """Run `function` in a thread: helpers that call asyncio.run() cannot run beside
    Playwright's sync API, which keeps an event loop going in this thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result(timeout=30)


def _progress(page: Any) -> int:
    return int(page.locator("#live .job-head progress").get_attribute("value"))


def watched_page(browser: Any, *, height: int) -> tuple[Any, Any, list[str]]:
    """A new browser context and page, and the list its console errors and warnings (CSP
    violations land there too) and page errors are written to."""
    context = browser.new_context(viewport={"width": 1280, "height": height})
    page = context.new_page()
    problems: list[str] = []

    def console(message: Any) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.set_default_timeout(15_000)
    return context, page, problems


def test_watch_and_cancel_a_job(server: Server, browser: Any, dialect: str) -> None:
    # `server` comes first: its database fixtures call asyncio.run(), which cannot run once
    # Playwright's sync API has an event loop going.
    context, page, problems = watched_page(browser, height=860)

    # Two finished jobs for company, then the list. A marker on `window` survives only if
    # nothing reloads the page.
    done = server.create_job("/echo", {"hello": "browser"}, tag=f"greeting-{dialect}")
    failed = server.create_job("/fail", {"message": "a failure, for the screenshot"})
    server.wait_job(done)
    server.wait_job(failed)
    page.goto(f"{server.url}/ui")
    assert page.locator("tbody tr[data-job-id]").count() == 2
    assert page.title() == "Jobs · jobstore"
    page.wait_for_selector('#live-status[data-state="ok"]')
    page.evaluate("window.stillThePage = true")

    job_id = server.create_job("/sleep", {"seconds": SLEEP_SECONDS}, tag=f"browser-{dialect}")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    row.wait_for()  # appears by the live refresh, not by a reload
    page.wait_for_selector(f'tr[data-job-id="{job_id}"][data-status="running"]')
    assert page.evaluate("window.stillThePage") is True
    assert row.locator(".tag").inner_text() == f"browser-{dialect}"
    assert int(page.locator('.counts [data-state="running"]').get_attribute("data-count")) >= 1
    _shot(page, f"list-{dialect}.png")

    # The job page: its progress bar moves while we watch.
    row.locator("td.num a").click()
    page.wait_for_url(re.compile(rf"/ui/jobs/{job_id}$"))
    assert page.locator("h1").inner_text().startswith(f"Job {job_id}")
    page.wait_for_selector('#live .job-head [data-status="running"]')
    first = _progress(page)
    page.wait_for_function(
        "v => Number(document.querySelector('#live .job-head progress').value) > v", arg=first
    )
    second = _progress(page)
    assert first < second < 100, (first, second)
    assert "seconds" in page.locator("section pre.payload").first.inner_text()
    _shot(page, f"job-running-{dialect}.png")

    # Cancel: a confirm dialog, a same-origin form POST, then the page follows the job.
    page.once("dialog", lambda dialog: dialog.accept())
    started = time.monotonic()
    page.get_by_role("button", name="Cancel job").click()
    page.wait_for_url(re.compile(rf"/ui/jobs/{job_id}\?cancel=cancel_requested$"))
    page.wait_for_selector('#live .job-head [data-status="cancelled"]')
    page.wait_for_selector('#live .job-head[data-active="false"]')
    took = time.monotonic() - started
    assert page.get_by_role("button", name="Cancel job").count() == 0
    final_progress = _progress(page)
    assert final_progress < 100
    _shot(page, f"job-cancelled-{dialect}.png")

    # The API and the database agree with what the page shows.
    wait_for(
        "the job to read CANCELLED",
        lambda: server.get_job(job_id)["job_status"] == "CANCELLED",
        logs=server.logs,
    )
    assert _outside_the_loop(job_row, server.database_url, job_id)["status"] == "cancelled"
    assert took < SLEEP_SECONDS, f"cancel took {took:.1f}s: the job ran to its end?"

    # Back on the list: the row reads cancelled, and the count links filter.
    page.goto(f"{server.url}/ui")
    page.wait_for_selector(f'tr[data-job-id="{job_id}"][data-status="cancelled"]')
    page.locator('.counts [data-state="cancelled"]').click()
    page.wait_for_url(re.compile(r"/ui\?status=cancelled$"))
    assert page.locator("tbody tr[data-job-id]").count() == 1

    # Retry: the cancelled job runs again, as attempt 2, which the live table shows.
    page.goto(f"{server.url}/ui/jobs/{job_id}")
    assert page.locator('#live tr[data-attempt="1"]').get_attribute("data-outcome") == "cancelled"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Retry job").click()
    page.wait_for_url(re.compile(rf"/ui/jobs/{job_id}\?retry=retried$"))
    page.wait_for_selector('#live tr[data-attempt="2"][data-outcome="running"]')
    assert page.get_by_role("button", name="Retry job").count() == 0
    _shot(page, f"job-retried-{dialect}.png")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel job").click()  # no need to wait for it to end
    page.wait_for_selector('#live tr[data-attempt="2"][data-outcome="cancelled"]')

    context.close()
    assert not problems, problems


def _create_schedule(database_url: str, name: str) -> None:
    """A yearly schedule in the server's database, through the core (no API creates one yet)."""

    async def create() -> None:
        db = Database(database_url, pool_size=1)
        try:
            node = node_for_tests(db, node_id="browser-setup")
            payload = Payload(Encoding.JSON, text='{"from": "a schedule"}')
            await node.schedules.create(
                NewSchedule(name=name, endpoint="/echo", payload=payload, cron="0 0 1 1 *")
            )
        finally:
            await db.dispose()

    asyncio.run(create())


def test_schedules_page(server: Server, browser: Any, dialect: str) -> None:
    name = f"yearly-{dialect}"
    _outside_the_loop(_create_schedule, server.database_url, name)
    context, page, problems = watched_page(browser, height=700)

    page.goto(f"{server.url}/ui")
    page.get_by_role("link", name="Schedules").click()
    page.wait_for_url(re.compile(r"/ui/schedules$"))
    assert page.title() == "Schedules · jobstore"
    row = page.locator(f'tr[data-schedule="{name}"]')
    assert row.get_attribute("data-enabled") == "true"
    assert "none yet" in row.locator(".last-job").inner_text()
    page.wait_for_selector('#live-status[data-state="ok"]')

    # Fire now: a confirm dialog, a same-origin POST, then the row follows the job to done.
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Fire now").click()
    page.wait_for_url(re.compile(rf"/ui/schedules\?done=fire&name={name}&job=\d+$"))
    job_id = int(page.url.rsplit("=", 1)[1])
    page.wait_for_selector(f'tr[data-schedule="{name}"] .last-job [data-status="done"]')
    _shot(page, f"schedules-{dialect}.png")

    # The job links back to its schedule.
    row.get_by_role("link", name=f"job {job_id}").click()
    page.wait_for_url(re.compile(rf"/ui/jobs/{job_id}$"))
    page.locator(".from-schedule").get_by_role("link", name=name).click()
    page.wait_for_url(re.compile(rf"/ui/schedules#schedule-{name}$"))

    # Pause, then resume.
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Pause").click()
    page.wait_for_selector(f'tr[data-schedule="{name}"][data-enabled="false"]')
    row.get_by_role("button", name="Resume").click()
    page.wait_for_selector(f'tr[data-schedule="{name}"][data-enabled="true"]')

    context.close()
    assert not problems, problems


def test_limits_page(server: Server, browser: Any, dialect: str) -> None:
    key = f"browser {dialect}/1"  # a space and a slash: the links must encode them
    context, page, problems = watched_page(browser, height=700)

    page.goto(f"{server.url}/ui")
    page.get_by_role("link", name="Limits").click()
    page.wait_for_url(re.compile(r"/ui/limits$"))
    assert page.title() == "Limits · jobstore"
    assert "No concurrency keys" in page.locator("#live").inner_text()

    # Set a named limit of 1 through the form.
    page.get_by_role("textbox", name="Key").fill(key)
    page.get_by_label("Max running").fill("1")
    page.get_by_role("button", name="Set limit").click()
    page.wait_for_url(re.compile(r"/ui/limits\?done=set&key=.+&n=1$"))
    assert page.locator(".notice").inner_text() == f"Set the limit of key {key} to 1."
    row = page.locator(f'tr[data-key="{key}"]')
    assert row.get_attribute("data-source") == "named"
    assert row.locator(".running").inner_text() == "0 / 1"
    page.wait_for_selector('#live-status[data-state="ok"]')

    # Two jobs of the key: one runs, one waits; the live table shows it at its limit.
    options = {"concurrency_key": key}
    jobs = [server.create_job("/sleep", {"seconds": 5}, options=options) for _ in range(2)]
    page.wait_for_selector(f'tr[data-key="{key}"][data-at-limit="true"]')
    assert row.locator(".running").inner_text() == "1 / 1"
    assert row.locator(".queued").inner_text() == "1"
    assert row.locator(".badge-at-limit").inner_text() == "at limit"
    _shot(page, f"limits-{dialect}.png")

    # The job page links to its key's row.
    page.goto(f"{server.url}/ui/jobs/{jobs[0]}")
    page.locator("tr.concurrency-key").get_by_role("link", name=key).click()
    page.wait_for_url(re.compile(r"/ui/limits#key-browser%20\w+/1$"))
    target = "document.getElementById(decodeURIComponent(location.hash.slice(1))).dataset.key"
    assert page.evaluate(target) == key

    # Remove the limit: the key is unlimited (its jobs still there), so the second starts.
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove").click()
    page.wait_for_url(re.compile(r"/ui/limits\?done=delete&key=.+$"))
    page.wait_for_selector(f'tr[data-key="{key}"][data-source="none"]')
    assert row.locator(".running").inner_text().endswith("/ \u2013")
    for job_id in jobs:
        assert server.wait_job(job_id)["job_status"] == "DONE"

    context.close()
    assert not problems, problems
