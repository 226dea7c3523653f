"""The console as a person uses it: a running `hub serve` with a played case chain, and a real
headless Chromium (Debian's chromium and chromium-driver) driven by Selenium.

One site per module (the demo's case chain, a review, a dead delivery, one account per role), because
a browser and a played chain take seconds; each test signs in afresh. Without Chromium the tests are
skipped -- unless HUB_REQUIRE_SERVICES=1 (CI), where they fail saying what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.console import accounts
from hub.store import db
from hub.store.tables import case_members, chain_tasks, dead_letters, deliveries
from hub.transport.base import PARTNER
from tests.conftest import JOBCENTER, MUNICIPAL, PROVIDER, ROOT, LiveHub, agency_sample, drain, embedded_env, hub_for, issue_tokens, send
from tests.integration.services import require

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
PASSWORD = "ein-langes-passwort-42"
#: one account per role; "bert" is a case manager of another steering agency
USERS = {
    "otto": ("operator", None),
    "anna": ("case_manager", JOBCENTER),
    "bert": ("case_manager", MUNICIPAL),
    "paula": ("auditor", None),
    "adam": ("admin", None),
}


@dataclass
class Site:
    live: LiveHub
    dead_message: str
    dead_delivery: str
    case_ref: str

    @property
    def url(self) -> str:
        return self.live.url


def _dead_delivery(hub) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """An assignment whose push to the provider the relay gave up: what an operator replays."""
    message_id = send(hub, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020", customer_number="555D000111"))
    with db.write(hub.engine) as conn:
        delivery_id = conn.execute(sa.select(deliveries.c.id).where(deliveries.c.message_id == message_id, deliveries.c.recipient == PROVIDER)).scalar_one()
        conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(status="dead"))
        conn.execute(dead_letters.insert().values(queue=PARTNER, payload={"delivery_id": delivery_id, "message_id": message_id}, attempts=10,
                                                  reason="refused by the partner's endpoint", message_id=message_id, at=db.utcnow()))
    return message_id, delivery_id


def _review(hub) -> None:  # type: ignore[no-untyped-def]
    """Two records of the Jobcenter and the municipal office that may be one person: a human decides."""
    from tests.test_identity import master_data

    send(hub, JOBCENTER, "agency-xml", master_data(JOBCENTER, MUNICIPAL, "123D456789", given_name="Jürgen", family_name="Müller", birth_date="1978-03-09"))
    moved = master_data(MUNICIPAL, JOBCENTER, "999X000001", given_name="Jürgen", family_name="Möller", birth_date="1988-03-19")
    moved["body"]["person"]["address"] = {"street": "Am Markt", "house_number": "1", "postcode": "04109", "city": "Leipzig"}
    moved["body"]["person"].pop("birth_name")
    send(hub, MUNICIPAL, "agency-xml", moved)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("console")
    env = {**embedded_env(tmp), "HUB_DROP_DIR": str(tmp / "drop")}
    played = subprocess.run([sys.executable, "-m", "hub.cli", "demo"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=180)
    assert played.returncode == 0, f"the demo's case chain could not be played:\n{played.stdout[-2000:]}{played.stderr[-2000:]}"
    hub = hub_for(env)
    _review(hub)
    dead_message, dead_delivery = _dead_delivery(hub)
    drain(hub)
    with db.write(hub.engine) as conn:
        for login, (role, agency) in USERS.items():
            accounts.add(conn, login, role, PASSWORD, display_name=login.capitalize(), agency=agency)
        # the demo's client, as the Jobcenter knows the case (a new Kundennummer each run)
        case_ref = conn.execute(sa.select(case_members.c.local_ref).where(
            case_members.c.partner_id == JOBCENTER, case_members.c.case_id.in_(sa.select(chain_tasks.c.case_id)))).scalar_one()
    tokens = issue_tokens(hub)
    live = LiveHub(env, hub, tokens)
    live.start()
    yield Site(live, dead_message, dead_delivery, case_ref)
    live.stop()
    hub.close()
    db.dispose_all()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[object]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    require("Chromium", not missing, f"apt-get install chromium chromium-driver ({', '.join(missing)} missing)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1100", "--lang=de-DE",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "de-DE,de", "download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
