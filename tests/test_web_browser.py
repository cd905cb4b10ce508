"""The web view in a real browser (Debian's headless Chromium, driven by Selenium through
chromium-driver; nothing is downloaded): log in, open a workflow, see a run appear without
reloading, pause one producer with a note and see who paused it on the workflow page, pause the
workflow with a note, find the pause in the history under the web user's name, and
keep screenshots of the workflow and history pages.

The screenshots go to DRUMLINE_TEST_ARTIFACTS (default: the test's tmp dir):
web-workflow-page.png (the README shows one) and web-producer-page.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine

from models.vocabulary import WorkflowStatus
from models.workflow_store import WorkflowStore
from tests.e2e import deploy
from tests.processes import running_beat, running_worker
from tests.web import PASSWORD, USER, running_web

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 30
NOTE = "disk full on the reporting host <b>not bold</b>"
PRODUCER_NOTE = "export target <i>read-only</i> until Monday"

pytestmark = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1500,1100",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("DRUMLINE_TEST_ARTIFACTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def task_links(driver: webdriver.Chrome) -> set[str]:
    return {a.get_attribute("href") or "" for a in driver.find_elements(By.CSS_SELECTOR, "#runs a")}


def producer_row(driver: webdriver.Chrome, producer: str) -> str:
    """The text of `producer`'s row of the producers table, read in one script (htmx may swap
    the table between two reads of its elements)."""
    text: str = driver.execute_script(
        "const row = [...document.querySelectorAll('#producers tbody tr')]"
        ".find(r => r.cells[0].innerText === arguments[0]);"
        "return row ? row.innerText : '';",
        producer,
    )
    return text


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_an_operator_watches_a_run_arrive_and_pauses_with_a_note(
    env: dict[str, str],
    engine: Engine,
    tmp_path: Path,
    browser: webdriver.Chrome,
    artifacts: Path,
) -> None:
    with (
        running_worker(env, tmp_path),
        running_beat(env, tmp_path),
        running_web(env, tmp_path) as web,
    ):
        deploy(
            env,
            {
                "name": "reports",
                "description": "Nightly and rolling reports <em>for the ops team</em>",
                "producers": {
                    "rolling-summary": {"run": "demo.counter", "interval": "2s"},
                    "flaky-export": {
                        "run": "demo.flaky",
                        "interval": "3s",
                        "params": {"fail_rate": 0.5},
                    },
                    "broken-feed": {
                        "run": "demo.fail",
                        "interval": "4s",
                        "params": {"message": "upstream answered 503"},
                    },
                    "nightly": {
                        "run": "demo.noop",
                        "cron": "0 2 * * *",
                        "timezone": "Europe/Berlin",
                    },
                    "on-demand": {"run": "demo.counter"},
                },
            },
        )
        wait = WebDriverWait(browser, WAIT_S)
        # Log in: the browser's basic-auth login, credentials given once for the site.
        browser.get(web.url.replace("://", f"://{USER}:{PASSWORD}@") + "/")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Workflows"
        browser.find_element(By.LINK_TEXT, "reports").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "reports")
        assert "<em>" in browser.find_element(By.CLASS_NAME, "description").text  # escaped
        browser.execute_script("window.drumlineMarker = 'same page'")
        seen = task_links(browser)

        # A run appears through htmx's polling: same document (the marker), new task link.
        wait.until(lambda d: task_links(d) - seen)
        assert browser.execute_script("return window.drumlineMarker") == "same page"
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#producers .status-failed"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs tr.run")) >= 8)
        browser.save_screenshot(str(artifacts / "web-workflow-page.png"))

        browser.find_element(By.LINK_TEXT, "flaky-export").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg.chart circle"))
        browser.save_screenshot(str(artifacts / "web-producer-page.png"))

        # Pause that one producer with a note, behind its confirmation.
        browser.find_element(By.ID, "pause-producer").click()
        wait.until(lambda d: d.find_elements(By.ID, "note")).pop().send_keys(PRODUCER_NOTE)
        browser.find_element(By.ID, "confirm").click()
        assert wait.until(lambda d: d.find_elements(By.ID, "outcome")).pop().text == "done"
        assert browser.find_element(By.ID, "note-shown").text == PRODUCER_NOTE
        browser.find_element(By.ID, "back").click()
        paused_by = f"paused by web:{USER}"
        wait.until(lambda d: paused_by in producer_row(d, "flaky-export"))
        row = producer_row(browser, "flaky-export")
        assert PRODUCER_NOTE in row, row
        assert "paused" not in producer_row(browser, "rolling-summary")
        record = WorkflowStore(engine).get("reports")
        assert record is not None and record.status == WorkflowStatus.ACTIVE

        # Pause with a note, behind a confirmation.
        wait.until(lambda d: d.find_elements(By.ID, "pause")).pop().click()
        wait.until(lambda d: d.find_elements(By.ID, "note")).pop().send_keys(NOTE)
        browser.find_element(By.ID, "confirm").click()
        outcome = wait.until(lambda d: d.find_elements(By.ID, "outcome")).pop()
        assert outcome.text == "done"
        assert "now paused" in browser.find_element(By.ID, "summary").text
        assert browser.find_element(By.ID, "note-shown").text == NOTE
        record = WorkflowStore(engine).get("reports")
        assert record is not None and record.status == WorkflowStatus.PAUSED
        browser.find_element(By.ID, "back").click()
        status = wait.until(lambda d: d.find_elements(By.ID, "workflow-status")).pop()
        assert status.text == "paused"
        assert browser.find_elements(By.ID, "resume")

        # The history: the pause is v2, by the web user, with the note.
        browser.find_element(By.ID, "history-link").click()
        paused = wait.until(lambda d: d.find_elements(By.ID, "v2")).pop()
        assert f"web:{USER}" in paused.text and NOTE in paused.text, paused.text
        assert "active" in paused.text and "paused" in paused.text
        browser.save_screenshot(str(artifacts / "web-history-page.png"))

        console = [entry["message"] for entry in browser.get_log("browser")]
        assert not [line for line in console if "Content Security Policy" in line], console
