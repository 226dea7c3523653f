"""Who gets into the console and what each role may open: argon2 passwords, lockout, idle timeout,
cookie flags, CSRF, roles, an agency's own cases only, audited content, and bad input as a page.

In-process (the app over TestClient): the browser tests (tests/browser) show the same as a person sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.console import accounts
from hub.runtime import Hub
from hub.store import db
from hub.store.tables import audit_log, console_sessions, console_users
from tests.conftest import JOBCENTER, MUNICIPAL, PROVIDER, agency_sample, hub_for, send, wait_until

PASSWORD = "ein-langes-passwort-42"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its cheapest parameters: the hub's own cost a second of CPU per hash on a busy
    machine, and these tests hash dozens. What is tested is the same: argon2id, salted, verified."""
    from argon2 import PasswordHasher, profiles

    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    monkeypatch.setattr(accounts, "_hasher", cheap)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cheap.hash("not a password of anyone"))


@pytest.fixture
def console(hub: Hub) -> Iterator[Hub]:
    with db.write(hub.engine) as conn:
        for login, role, agency in (("otto", "operator", None), ("anna", "case_manager", JOBCENTER), ("bert", "case_manager", MUNICIPAL),
                                    ("paula", "auditor", None), ("adam", "admin", None)):
            accounts.add(conn, login, role, PASSWORD, agency=agency)
    yield hub


def browser(hub: Hub, https: bool = False) -> TestClient:
    return TestClient(create_app(hub, role="none"), base_url="https://testserver" if https else "http://testserver", follow_redirects=False)


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "every form carries a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, login: str, password: str = PASSWORD, next_path: str = "/ops") -> TestClient:
    page = client.get("/ops/login")
    client.post("/ops/login", data={"csrf_token": form_token(page.text), "login": login, "password": password, "next": next_path})
    return client


def signed_in(hub: Hub, login: str) -> TestClient:
    client = sign_in(browser(hub), login)
    assert "hub_console" in client.cookies, f"{login} could not sign in"
    return client


def audit_actions(hub: Hub, actor: str) -> list[str]:
    with db.read(hub.engine) as conn:
        return list(conn.execute(sa.select(audit_log.c.action).where(audit_log.c.actor == actor).order_by(audit_log.c.id)).scalars())


def test_a_password_is_kept_only_as_an_argon2_hash(console: Hub) -> None:
    with db.read(console.engine) as conn:
        stored = conn.execute(sa.select(console_users.c.password_hash).where(console_users.c.login == "anna")).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_the_session_cookie_is_httponly_samesite_and_secure_over_tls(console: Hub) -> None:
    client = browser(console, https=True)
    page = client.get("/ops/login")
    answer = client.post("/ops/login", data={"csrf_token": form_token(page.text), "login": "anna", "password": PASSWORD})
    assert answer.status_code == 303 and answer.headers["location"] == "/ops/cases", "a case manager starts at the cases"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("hub_console="))
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/ops"):
        assert flag.lower() in cookie.lower(), f"the session cookie lacks {flag}: {cookie}"
    with db.read(console.engine) as conn:
        kept = conn.execute(sa.select(console_sessions.c.token_hash)).scalars().all()
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token not in kept and len(kept) == 1, "the database keeps the token's hash, not the token"


def test_five_wrong_passwords_lock_the_account_and_the_answer_never_tells(console: Hub) -> None:
    for _ in range(5):
        assert "hub_console" not in sign_in(browser(console), "anna", "falsch-falsch-falsch").cookies
    locked, unknown = browser(console), browser(console)
    locked_answer = locked.post("/ops/login", data={"csrf_token": form_token(locked.get("/ops/login").text), "login": "anna", "password": PASSWORD})
    unknown_answer = unknown.post("/ops/login", data={"csrf_token": form_token(unknown.get("/ops/login").text), "login": "nobody", "password": "y"})
    assert "hub_console" not in locked.cookies, "the right password does not open a locked account"
    assert locked_answer.status_code == unknown_answer.status_code == 401
    assert _error_text(locked_answer.text) == _error_text(unknown_answer.text) != "", "a locked account and an unknown login get the same answer"
    assert audit_actions(console, "console:anna").count("console-sign-in-refused") == 6, "every refused sign-in is an audit entry"
    with db.write(console.engine) as conn:
        accounts.set_password(conn, "anna", "ein-neues-langes-passwort")
    assert "hub_console" in sign_in(browser(console), "anna", "ein-neues-langes-passwort").cookies, "a new password lifts the lock"


def _error_text(html: str) -> str:
    found = re.search(r'role="alert"[^>]*>([^<]+)<', html)
    return found.group(1) if found else ""


def test_a_session_unused_for_the_idle_timeout_ends(hub_env: dict[str, str]) -> None:
    hub = hub_for(hub_env, console_idle_minutes=0.01)
    with db.write(hub.engine) as conn:
        accounts.add(conn, "anna", "case_manager", PASSWORD, agency=JOBCENTER)
    client = signed_in(hub, "anna")
    assert client.get("/ops/cases").status_code == 200
    wait_until(lambda: client.get("/ops/cases").status_code == 303, 10, "the idle session to end")
    assert client.get("/ops/cases").headers["location"].startswith("/ops/login?next=%2Fops%2Fcases"), "and the sign-in brings the visitor back"
    hub.close()


def test_a_disabled_account_loses_its_sessions_at_once(console: Hub) -> None:
    client = signed_in(console, "anna")
    with db.write(console.engine) as conn:
        accounts.disable(conn, "anna")
    assert client.get("/ops/cases").status_code == 303, "a disabled account's session ends"
    assert "hub_console" not in sign_in(browser(console), "anna").cookies


def test_the_sign_in_form_needs_its_own_token_and_never_sends_the_visitor_elsewhere(console: Hub) -> None:
    client = browser(console)
    client.get("/ops/login")
    forged = client.post("/ops/login", data={"csrf_token": "forged", "login": "anna", "password": PASSWORD})
    assert forged.status_code == 403 and "hub_console" not in client.cookies, "a sign-in posted from elsewhere is refused"
    client = sign_in(browser(console), "anna", next_path="https://evil.example/")
    assert "hub_console" in client.cookies
    page = client.get("/ops/login")
    answer = client.post("/ops/login", data={"csrf_token": form_token(page.text), "login": "anna", "password": PASSWORD, "next": "//evil.example"})
    assert answer.headers["location"] == "/ops/cases", "only the console's own paths are followed after sign-in"


@pytest.mark.parametrize(("login", "allowed", "refused"), [
    ("otto", ["/ops/dead", "/ops/reviews", "/ops/cases", "/ops/controlling"], ["/ops/audit", "/ops/users", "/ops/tasks"]),
    ("anna", ["/ops/cases", "/ops/tasks", "/ops/controlling", "/ops/deadlines"], ["/ops/dead", "/ops/reviews", "/ops/audit", "/ops/users"]),
    ("paula", ["/ops/audit", "/ops/audit/verify"], ["/ops/cases", "/ops/dead", "/ops/users", "/ops/reviews", "/ops/controlling"]),
    ("adam", ["/ops/users"], ["/ops/cases", "/ops/audit", "/ops/dead", "/ops/reviews"]),
])
def test_each_role_opens_its_own_pages_and_no_others(console: Hub, login: str, allowed: list[str], refused: list[str]) -> None:
    client = signed_in(console, login)
    for path in allowed:
        assert client.get(path).status_code == 200, f"{login} must open {path}"
    for path in refused:
        answer = client.get(path)
        assert answer.status_code == 403 and "text/html" in answer.headers["content-type"], f"{login} must not open {path} ({answer.status_code})"


def test_a_case_manager_sees_only_the_own_agencys_cases(console: Hub) -> None:
    send(console, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020", customer_number="555D000111"))
    from tests.conftest import drain

    drain(console)
    anna, bert = signed_in(console, "anna"), signed_in(console, "bert")
    assert anna.get("/ops/cases/555D000111").status_code == 200, "the Jobcenter's case manager opens the case by its Kundennummer"
    assert "555D000111" in anna.get("/ops/cases").text
    refused = bert.get("/ops/cases/555D000111")
    assert refused.status_code == 404, "another agency's case is not found, not forbidden"
    assert "555D000111" not in bert.get("/ops/cases").text, "nor is it listed"
    assert "chain-read" in audit_actions(console, "console:anna"), "reading the chain is an audit entry"


def test_message_content_opens_only_with_a_reason_and_is_an_audit_entry(console: Hub) -> None:
    message_id = send(console, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020", customer_number="555D000112"))
    otto = signed_in(console, "otto")
    assert otto.get(f"/ops/messages/{message_id}/content").status_code == 400, "no reason, no content"
    shown = otto.get(f"/ops/messages/{message_id}/content", params={"reason": "fault-analysis"})
    assert shown.status_code == 200 and "555D000112" in shown.text
    with db.read(console.engine) as conn:
        entry = conn.execute(sa.select(audit_log).where(audit_log.c.action == "message-content-read")).one()
    assert entry.actor == "console:otto" and entry.message_id == message_id and entry.detail["reason"] == "fault-analysis" and entry.legal_basis
    anna = signed_in(console, "anna")
    assert anna.get(f"/ops/messages/{message_id}/content", params={"reason": "fault-analysis"}).status_code == 403, "a case manager reads chains, not raw messages"


def test_bad_input_gets_a_page_that_says_what_and_changes_nothing(console: Hub) -> None:
    otto, adam = signed_in(console, "otto"), signed_in(console, "adam")
    for path, status in (("/ops/messages/NOSUCHMESSAGE", 404), ("/ops/tasks?due_before=gestern", 403), ("/ops/nothing-here", 404),
                         ("/ops/persons/NOSUCHPERSON", 404)):
        answer = otto.get(path)
        assert answer.status_code == status and "<h1>" in answer.text and "Traceback" not in answer.text, f"{path}: {answer.status_code}"
    anna = signed_in(console, "anna")
    answer = anna.get("/ops/tasks", params={"due_before": "gestern"})
    assert answer.status_code == 400 and "due_before" in answer.text, "a malformed filter is named"
    page = adam.get("/ops/users")
    short = adam.post("/ops/users", data={"csrf_token": form_token(page.text), "login": "neu", "role": "operator", "password": "kurz"})
    assert short.status_code == 422 and "12" in short.text, "a too short password is refused with the rule"
    replayed = otto.post("/ops/messages/NOSUCHMESSAGE/replay", data={"csrf_token": form_token(otto.get("/ops/dead").text)})
    assert replayed.status_code == 404
    with db.read(console.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(console_users)).scalar_one() == 5, "no account was added"
    assert PROVIDER  # the provider has no console account: partners use tokens, people use the console


def _dead(hub: Hub, customer: str) -> str:
    """A delivery the relay gave up (as hub/transport/relay.py leaves it)."""
    from hub.store.tables import dead_letters, deliveries
    from hub.transport.base import PARTNER
    from tests.conftest import drain

    message_id = send(hub, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020", customer_number=customer))
    drain(hub)
    with db.write(hub.engine) as conn:
        delivery = conn.execute(sa.select(deliveries.c.id).where(deliveries.c.message_id == message_id, deliveries.c.recipient == PROVIDER)).scalar_one()
        conn.execute(deliveries.update().where(deliveries.c.id == delivery).values(status="dead"))
        conn.execute(dead_letters.insert().values(queue=PARTNER, payload={"delivery_id": delivery, "message_id": message_id}, attempts=10,
                                                  reason="refused", message_id=message_id, at=db.utcnow()))
    return message_id


def test_replaying_all_matching_dead_letters_shows_the_count_first_and_never_replays_twice(console: Hub) -> None:
    for customer in ("555D000201", "555D000202", "555D000203"):
        _dead(console, customer)
    otto = signed_in(console, "otto")
    token = form_token(otto.get("/ops/dead").text)
    asked = otto.post("/ops/dead/replay", data={"csrf_token": token, "reason": "refused"})
    assert asked.status_code == 200 and 'name="confirmed" value="3"' in asked.text, "the count is shown for confirmation first"
    with db.read(console.engine) as conn:
        from hub.store.tables import dead_letters

        assert conn.execute(sa.select(sa.func.count()).select_from(dead_letters).where(dead_letters.c.replayed_at.is_(None))).scalar_one() == 3, \
            "nothing is replayed before the confirmation"
    done = otto.post("/ops/dead/replay", data={"csrf_token": token, "reason": "refused", "confirmed": "3"})
    assert done.status_code == 303 and "n=3" in done.headers["location"], done.headers.get("location")
    again = otto.post("/ops/dead/replay", data={"csrf_token": token, "reason": "refused", "confirmed": "0"})
    assert again.status_code == 409, "what was replayed is left out: nothing is left to replay"
    assert "replayed-matching" in audit_actions(console, "console:otto")


def test_the_message_search_refuses_a_huge_page_and_a_malformed_filter_naming_the_field(console: Hub) -> None:
    message_id = send(console, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020", customer_number="555D000301"))
    otto = signed_in(console, "otto")
    found = otto.get("/ops/messages", params={"id": message_id})
    assert found.status_code == 200 and message_id in found.text
    for params, field in (({"partner": JOBCENTER, "limit": "100000"}, "limit"), ({"status": "verloren"}, "status"), ({"received_from": "gestern"}, "received_from")):
        answer = otto.get("/ops/messages", params=params)
        assert answer.status_code == 400 and field in answer.text, f"{params}: {answer.status_code}"
    by_case = otto.get("/ops/messages", params={"case_ref": "555D000301"})
    assert message_id in by_case.text, "a case reference finds the case's messages"
