"""The HTML report as a privacy officer sees it: opened from a file in headless Chromium,
clicked, filtered, printed. A screenshot and a PDF are kept in tests/output/report-html/."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_plans import HELD_SUBJECT, Plans, build_plans

from sweeper.report_html import ReportOptions, write_html


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Plans]]:
    plans = build_plans(tmp_path_factory.mktemp("plans"))
    path = plans.settings.reports_path / f"plan-{plans.latest}.html"
    with path.open("w", encoding="utf-8") as out:
        write_html(plans.store, plans.latest, out, ReportOptions(items_per_location=50))
    yield path, plans
    plans.store.close()


@pytest.fixture
def opened(browser: Any, report: tuple[Path, Plans]) -> Any:
    """The report, freshly loaded; the logs of earlier pages are read and dropped first."""
    browser.get_log("browser")
    browser.get_log("performance")
    browser.get(report[0].as_uri())
    return browser


def number(text: str) -> int:
    """A number as the English page writes it (1,500); an empty cell is -1."""
    return int(text.replace(",", "")) if text else -1


def visible_column(driver: Any, table_id: str, index: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.getElementById(arguments[0]).tBodies[0].rows)"
        ".filter(r => !r.hidden).map(r => r.cells[arguments[1]].textContent.trim());",
        table_id,
        index,
    )


def test_opens_without_console_errors_or_network_requests(opened: Any, report: Any) -> None:
    """Loading the page logs no console error and requests nothing but the file itself."""
    from selenium.webdriver.common.by import By

    assert opened.find_element(By.ID, "summary").is_displayed()
    errors = [e for e in opened.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    requests = [
        m["params"]["request"]["url"]
        for m in (json.loads(e["message"])["message"] for e in opened.get_log("performance"))
        if m["method"] == "Network.requestWillBeSent"
    ]
    assert requests == [report[0].as_uri()]
    assert opened.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_summary_numbers_equal_the_plans(opened: Any, report: Any) -> None:
    """The numbers the page shows at the top are the plan's totals."""
    from selenium.webdriver.common.by import By

    totals = report[1].store.plan(report[1].latest)["summary"]["totals"]
    shown = {
        card.get_attribute("data-total"): number(card.find_element(By.CSS_SELECTOR, ".num").text)
        for card in opened.find_elements(By.CSS_SELECTOR, "[data-total]")
    }
    assert shown["overdue"] == totals["due"] + totals["legacy_due"]
    assert shown["held"] == totals["held"]
    assert shown["refused"] == totals["locked"] + totals["protected"]
    assert (shown["no_clock"], shown["not_due"], shown["waiting_event"]) == (
        totals["no_clock"],
        totals["not_due"],
        totals["waiting_event"],
    )


def test_clicking_a_header_sorts_and_clicking_again_reverses(opened: Any) -> None:
    """A click on 'days over' sorts the items by it, a second click reverses the order."""
    from selenium.webdriver.common.by import By

    header = opened.find_element(By.CSS_SELECTOR, "#items-0 thead th:nth-child(6)")
    header.click()
    days = [number(d) for d in visible_column(opened, "items-0", 5)]
    assert days == sorted(days) and len(set(days)) > 3
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert [number(d) for d in visible_column(opened, "items-0", 5)] == sorted(days, reverse=True)


def test_typing_filters_rows_and_the_status_filter_narrows(opened: Any) -> None:
    """Typing a subject leaves its row only; choosing 'held' leaves the held items only."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    box = opened.find_element(By.CSS_SELECTOR, '[data-filter="items-0"]')
    box.send_keys(HELD_SUBJECT)
    assert visible_column(opened, "items-0", 1) == [HELD_SUBJECT]
    box.clear()
    box.send_keys(" ")  # an input event after clear(): every row again
    assert len(visible_column(opened, "items-0", 1)) > 5
    Select(opened.find_element(By.CSS_SELECTOR, '[data-status-filter="items-0"]')).select_by_value(
        "held"
    )
    statuses = opened.execute_script(
        "return Array.from(document.querySelectorAll('#items-0 tbody tr'))"
        ".filter(r => !r.hidden).map(r => r.dataset.status);"
    )
    assert statuses == ["held"]
    counter = opened.find_element(By.CSS_SELECTOR, '[data-shown-for="items-0"]').text
    assert counter.startswith("1 / ")


def test_print_hides_the_controls_and_shows_every_row(opened: Any, output_dir: Path) -> None:
    """In print media the filters are hidden and filtered-out rows print; a PDF is kept."""
    from selenium.webdriver.common.by import By

    box = opened.find_element(By.CSS_SELECTOR, '[data-filter="items-0"]')
    box.send_keys("no such text")
    assert visible_column(opened, "items-0", 0) == []
    opened.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert not box.is_displayed()
        rows = opened.find_elements(By.CSS_SELECTOR, "#items-0 tbody tr")
        assert rows and all(r.is_displayed() for r in rows)
        pdf = opened.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})
        (output_dir / "report.pdf").write_bytes(base64.b64decode(pdf["data"]))
    finally:
        opened.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


def test_screenshot_of_the_page_is_kept(opened: Any, output_dir: Path) -> None:
    """A full-page screenshot is saved as a CI artefact, and it is a real PNG."""
    height = opened.execute_script("return document.documentElement.scrollHeight")
    opened.set_window_size(1366, min(int(height), 8000))
    path = output_dir / "report.png"
    assert opened.save_screenshot(str(path))
    print(f"screenshot: {path}")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    opened.set_window_size(1366, 900)
