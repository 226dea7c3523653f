"""The console, driven in a real headless Chromium as operators, case managers, auditors and admins
use it: sign in, find a dead message and replay it until it is delivered, confirm a review, open a
case's chain and complete a task, and what must not work -- another agency's case by URL, a form
without its CSRF token. Every page passes axe-core (no serious or critical violation).

Screenshots of the main pages are written to $HUB_CONSOLE_SCREENSHOTS when set
(`HUB_CONSOLE_SCREENSHOTS=docs/console pytest tests/browser` renews the ones the README shows).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.conftest import AXE, PASSWORD, Site
from tests.conftest import PROVIDER, wait_until

SHOTS = os.environ.get("HUB_CONSOLE_SCREENSHOTS")
#: the pages docs/console.md shows
SHOWN = {"flows", "alerts", "dead-letters", "reviews", "chain", "controlling", "audit-log", "case-report", "message"}


def sign_in(browser: WebDriver, site: Site, login: str, then: str = "/ops") -> None:
    """Sign in through the form, by keyboard: type, Tab, type, Enter."""
    browser.delete_all_cookies()
    browser.get(f"{site.url}/ops/login?next={then}")
    field = WebDriverWait(browser, 10).until(seen.element_to_be_clickable((By.ID, "login")))
    field.send_keys(login, Keys.TAB, PASSWORD, Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda b: "/ops/login" not in b.current_url)


def accessible(browser: WebDriver, name: str) -> None:
    """axe-core finds no serious or critical violation on the current page (BITV 2.0 / WCAG 2.1 AA)."""
    browser.execute_script(AXE.read_text(encoding="utf-8"))
    violations = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))));"
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name} ({browser.current_url}) has accessibility violations: {bad}"
    if SHOTS and name in SHOWN:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(SHOTS) / f"{name}.png"))


def heading(browser: WebDriver) -> str:
    return WebDriverWait(browser, 10).until(seen.presence_of_element_located((By.TAG_NAME, "h1"))).text


def test_an_operator_finds_a_dead_message_replays_it_and_sees_it_delivered(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, "otto")
    assert heading(browser) == "Nachrichtenflüsse", "an operator starts at the flows"
    accessible(browser, "flows")
    browser.find_element(By.LINK_TEXT, "Unzustellbare Nachrichten").click()
    assert heading(browser) == "Unzustellbare Nachrichten"
    accessible(browser, "dead-letters")
    browser.find_element(By.LINK_TEXT, "Warnungen").click()
    alerts = browser.find_element(By.TAG_NAME, "table").text
    assert "dead" in alerts.lower(), f"the dead letter fires an alert: {alerts}"
    accessible(browser, "alerts")
    browser.find_element(By.LINK_TEXT, "Unzustellbare Nachrichten").click()
    row = browser.find_element(By.XPATH, f"//tr[td/a[text()='{site.dead_message}']]")
    assert "refused by the partner's endpoint" in row.text, "the dead letter names why it died"
    row.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(browser, 10).until(seen.presence_of_element_located((By.CSS_SELECTOR, "[role=status]")))
    assert f"/ops/messages/{site.dead_message}" in browser.current_url, "after the replay the operator sees the message"

    # the provider picks the delivery up again and acknowledges it
    provider = httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {site.live.tokens[PROVIDER]}"}, timeout=10)
    waiting = wait_until(lambda: [d for d in provider.get("/v1/inbox").json()["deliveries"] if d["id"] == site.dead_delivery], 15,
                         "the replayed delivery in the provider's inbox")
    assert provider.post(f"/v1/inbox/{waiting[0]['id']}/ack").status_code == 200
    browser.refresh()
    deliveries = browser.find_element(By.XPATH, "//table[caption='Zustellungen']")
    assert "bestätigt" in deliveries.text, f"the replayed delivery shows as acknowledged: {deliveries.text}"
    accessible(browser, "message")


def test_an_operator_confirms_an_identity_review(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, "otto", "/ops/reviews")
    review = WebDriverWait(browser, 10).until(seen.presence_of_element_located((By.CSS_SELECTOR, "section.review")))
    assert "Möller" in review.text and "Müller" in review.text, "both records are shown side by side"
    assert "different" in review.text or "verschieden" in review.text, "the comparison level that decided is shown"
    accessible(browser, "reviews")
    review.find_element(By.XPATH, ".//button[contains(., 'Bestätigen')]").click()
    notice = WebDriverWait(browser, 10).until(seen.presence_of_element_located((By.CSS_SELECTOR, "[role=status]")))
    assert "eine Person" in notice.text
    assert not browser.find_elements(By.CSS_SELECTOR, "section.review"), "the decided review has left the queue"


def test_a_case_manager_opens_the_chain_and_completes_a_task(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, "anna")
    assert heading(browser) == "Fälle"
    accessible(browser, "cases")
    browser.find_element(By.LINK_TEXT, site.case_ref).click()
    assert heading(browser) == f"Fall {site.case_ref}"
    chain = browser.find_element(By.TAG_NAME, "main").text
    assert "Bewerbungscoaching" in chain, "the proposed next step is shown"
    assert "versäumt" in chain, "the missed deadline is shown"
    accessible(browser, "chain")
    form = browser.find_element(By.XPATH, "//div[@class='task'][.//h4[contains(., 'nächstes Glied')]]//form")
    Select(form.find_element(By.TAG_NAME, "select")).select_by_index(1)
    form.find_element(By.TAG_NAME, "textarea").send_keys("Coaching ab Januar")
    form.find_element(By.TAG_NAME, "button").click()
    notice = WebDriverWait(browser, 10).until(seen.presence_of_element_located((By.CSS_SELECTOR, "[role=status]")))
    assert "erledigt" in notice.text, f"the completion is confirmed: {notice.text}"
    assert "entschieden" in browser.find_element(By.TAG_NAME, "main").text, "the task now shows its decision"


def test_a_case_manager_exports_controlling_as_csv_and_reads_the_case_report(browser: WebDriver, site: Site, downloads: Path) -> None:
    sign_in(browser, site, "anna", "/ops/controlling")
    assert heading(browser) == "Controlling"
    figures = browser.find_element(By.XPATH, "//table[starts-with(caption, 'Je Träger und Maßnahme')]").text
    assert "traeger-bildungswerk" in figures, f"the provider's measure is in the agency's controlling: {figures}"
    accessible(browser, "controlling")
    browser.find_element(By.XPATH, "//caption[starts-with(., 'Je Träger und Maßnahme')]/a[text()='CSV']").click()
    exported = wait_until(lambda: [p for p in downloads.glob("controlling-measures*.csv")], 15, "the controlling CSV in the downloads")
    text = exported[0].read_text(encoding="utf-8-sig")
    assert text.startswith("provider;measure_number;") and "traeger-bildungswerk" in text, "a CSV for a German spreadsheet: ; between fields"
    browser.get(f"{site.url}/ops/cases/{site.case_ref}/report")
    report = browser.find_element(By.TAG_NAME, "main").text
    assert "Rechtsgrundlage" in report or "SGB" in report, "the case report names the legal basis of each transmission"
    accessible(browser, "case-report")


def test_a_case_manager_of_another_agency_gets_not_found_for_the_case_by_url(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, "bert")
    browser.get(f"{site.url}/ops/cases/{site.case_ref}")
    assert heading(browser) == "Nicht gefunden", "another agency's case must not even be confirmed to exist"
    status = browser.execute_script("return window.performance.getEntriesByType('navigation')[0].responseStatus")
    assert status == 404, f"the answer is a 404, not {status}"
    assert site.case_ref in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    accessible(browser, "not-found")


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, "adam", "/ops/users")
    accessible(browser, "accounts")
    session = {c["name"]: c["value"] for c in browser.get_cookies()}
    forged = httpx.post(f"{site.url}/ops/users", cookies=session, data={"login": "mallory", "role": "admin", "password": "x" * 20})
    assert forged.status_code == 403, f"a POST without the session's CSRF token must be refused, got {forged.status_code}"
    browser.refresh()
    assert "mallory" not in browser.find_element(By.TAG_NAME, "table").text, "the forged form added no account"


def test_an_auditor_reads_the_audit_log_and_its_verification(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, "paula")
    assert heading(browser) == "Protokoll"
    accessible(browser, "audit-log")
    log = browser.find_element(By.TAG_NAME, "table").text
    assert "console:otto" in log and "message-content-read" not in log, "the operators' console work is in the log"
    browser.find_element(By.PARTIAL_LINK_TEXT, "prüfen").click()
    assert "intakt" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    accessible(browser, "audit-verify")


def test_the_console_works_by_keyboard_alone_from_the_skip_link(browser: WebDriver, site: Site) -> None:
    sign_in(browser, site, "anna")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    active = browser.switch_to.active_element
    assert active.get_attribute("class") == "skip", "the first Tab reaches the skip link"
    active.send_keys(Keys.ENTER)
    assert browser.current_url.endswith("#main"), "the skip link jumps to the content"
    # Tab onward reaches the case links; Enter follows one
    for _ in range(30):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element.text == site.case_ref:
            break
    else:
        pytest.fail("Tab never reached the case link")
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert heading(browser) == f"Fall {site.case_ref}"
