"""A message's history as its sender and the operators read it: every entry says in words what
happened, the sender sees to whom its message was delivered, and the operator's CLI says plainly when
there is no such message."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.store import db, message_store
from hub.runtime import Hub
from hub.transport.embedded import EmbeddedTransport
from tests.conftest import JOBCENTER, PROVIDER, ROOT, agency_sample, drain, encode, new_uuid, provider_sample, send
from tests.test_dead_letter_reasons import accept_one, fail_until_dead
from tests.test_duplicate_reports import assign


def api(hub: Hub, token: str) -> TestClient:
    return TestClient(create_app(hub, role="api"), headers={"Authorization": f"Bearer {token}"})


def view_as(hub: Hub, token: str, message_id: str) -> dict:
    answer = api(hub, token).get(f"/v1/messages/{message_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def cli(hub: Hub, *args: str) -> subprocess.CompletedProcess:
    env = {"HUB_DATABASE_URL": str(hub.engine.url), "HUB_CONTRACTS_DIR": str(hub.settings.contracts_dir), "HUB_LOG_LEVEL": "warning", "PATH": ""}
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


# -- the sender sees to whom its message went -------------------------------------------------------
def test_the_sender_sees_the_recipient_of_its_messages_deliveries_by_partner_id(hub: Hub, tokens: dict[str, str]) -> None:
    """The Jobcenter's assignment went to the provider it named: its history said "partner"."""
    data = agency_sample("zuweisung.anmeldung.1020")
    data["header"]["reader"] = {"id": PROVIDER}
    message_id = send(hub, JOBCENTER, "agency-xml", data)
    view = view_as(hub, tokens[JOBCENTER], message_id)
    recipients = {d["recipient"] for d in view["deliveries"]}
    assert recipients == {PROVIDER, JOBCENTER}, f"the deliveries must name the provider and the sender's own quittung: {view['deliveries']}"
    queued = {e["detail"]["recipient"] for e in view["history"] if e["event"] == "queued"}
    assert queued == {PROVIDER, JOBCENTER}, f"the history must name the recipients too: {view['history']}"
    routed = [e["detail"]["recipients"] for e in view["history"] if e["event"] == "routed"]
    assert routed == [[PROVIDER]], routed
    assert "partner" not in str(view), "no recipient of the sender's own message may be hidden as 'partner'"


def test_a_partner_considered_but_given_nothing_stays_hidden_from_the_sender(hub: Hub, tokens: dict[str, str]) -> None:
    """Only recipients of the message's deliveries are named: a routing decision about another partner
    (withheld: its purpose or contract does not allow it) is for operators only."""
    message_id = send(hub, JOBCENTER, "agency-xml", agency_sample("zuweisung.anmeldung.1020"))
    with db.read(hub.engine) as conn:
        operator = message_store.message_view(conn, message_id, None)
    delivered = {d["recipient"] for d in operator["deliveries"]}
    named = {v for e in view_as(hub, tokens[JOBCENTER], message_id)["history"] for k, v in e["detail"].items() if k == "recipient"}
    assert named <= delivered | {"partner"}, f"the sender learns of partners its message did not reach: {named - delivered}"


# -- every history entry says what happened --------------------------------------------------------
def life_of_messages(hub: Hub, tokens: dict[str, str]) -> list[str]:
    """Messages that went through every stage a message can: received, routed, delivered and
    acknowledged, sent again, rejected, a duplicate report, dead and replayed."""
    case_id = assign(hub, "123D456789")  # the provider's delivery, then its ack
    provider = api(hub, tokens[PROVIDER])
    inbox = provider.get("/v1/inbox").json()["deliveries"]
    for delivery in inbox:
        assert provider.post(f"/v1/inbox/{delivery['id']}/ack").status_code == 200
    (assigned,) = {d["message_id"] for d in inbox if d["message_type"] == "zuweisung.anmeldung.1020"}
    report = provider_sample("teilnahme.anwesenheit.2030", case_id)
    first = send(hub, PROVIDER, "provider-json", report)
    again = copy.deepcopy(report)
    again["header"]["message_uuid"] = new_uuid()
    duplicate = send(hub, PROVIDER, "provider-json", again)
    from hub.endpoints import ingress

    ingress.accept(hub, hub.partners[PROVIDER], encode(hub, "provider-json", report), "application/json")  # a resend
    nobody = agency_sample("zuweisung.anmeldung.1020")
    nobody["header"]["reader"] = None  # an assignment for nobody: the pipeline rejects it
    rejected = send(hub, JOBCENTER, "agency-xml", nobody)
    transport = EmbeddedTransport(hub.engine, visibility_timeout=30, max_attempts=1, poll_interval=0.01)
    dead = accept_one(hub)
    fail_until_dead(hub, transport, LookupError("no route"))
    with db.write(hub.engine) as conn:
        message_store.replay(conn, dead, "cli", hub.transport)
    drain(hub)
    return [assigned, first, duplicate, rejected, dead]


def test_every_history_entry_carries_a_detail_in_words(hub: Hub, tokens: dict[str, str]) -> None:
    ids = life_of_messages(hub, tokens)
    with db.read(hub.engine) as conn:
        views = [message_store.message_view(conn, i, None) for i in ids]
    entries = [(v["id"], e) for v in views for e in v["history"]]
    kinds = {(e["stage"], e["event"]) for _, e in entries}
    for expected in [("ingress", "received"), ("routing", "routed"), ("delivery", "acknowledged"), ("delivery", "delivered"),
                     ("ingress", "resend"), ("pipeline", "rejected"), ("dedup", "duplicate"), ("pipeline", "dead"), ("operations", "replayed")]:
        assert expected in kinds, f"the scenario did not produce {expected}: {sorted(kinds)}"
    bare = [(i, e["stage"], e["event"]) for i, e in entries if not (e.get("detail") or {}).get("text", "").strip()]
    assert not bare, f"history entries without a detail in words: {bare}"
    delivered = next(e for _, e in entries if e["event"] == "delivered")
    assert "acknowledged" in delivered["detail"]["text"], delivered
    senders = {v["id"]: v["sender"] for v in views}
    for message_id in ids:
        seen = view_as(hub, tokens[senders[message_id]], message_id)["history"]
        bare = [(e["stage"], e["event"]) for e in seen if not (e.get("detail") or {}).get("text", "").strip()]
        assert not bare, f"the sender's history of {message_id} has entries without a detail in words: {bare}"


def test_every_event_the_hub_writes_has_words_of_its_own() -> None:
    """A new event kind without a sentence would fall back to its bare name: every `record(conn, id,
    "stage", "event", ...)` in the code has one."""
    from hub.store.history import SENTENCES

    written = set()
    for path in (ROOT / "hub").rglob("*.py"):
        written |= set(re.findall(r'record\(\s*conn,\s*[\w.\[\]"]+,\s*"(\w+)",\s*"(\w+)"', path.read_text()))
    assert len(written) > 15, f"the scan found too few events to be right: {written}"
    assert not written - set(SENTENCES), f"events without a sentence: {sorted(written - set(SENTENCES))}"


def test_hub_messages_show_prints_each_entry_in_words(hub: Hub) -> None:
    data = agency_sample("zuweisung.anmeldung.1020")
    data["header"]["reader"] = {"id": PROVIDER}
    message_id = send(hub, JOBCENTER, "agency-xml", data)
    out = cli(hub, "messages", "show", message_id)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()[1:]
    assert lines and all(len(line.split(None, 2)) == 3 for line in lines), f"an entry without words: {out.stdout}"
    assert any(f"for {PROVIDER}" in line for line in lines), out.stdout


# -- the operator's CLI: no message is no message ---------------------------------------------------
def test_hub_messages_show_of_an_unknown_id_says_there_is_no_such_message(hub: Hub, tokens: dict[str, str]) -> None:
    out = cli(hub, "messages", "show", "01NOSUCHMESSAGE")
    assert out.stderr.strip() == "error: There is no message with id 01NOSUCHMESSAGE", out.stderr
    assert "visible" not in out.stderr, "the operator's CLI sees every message"
    assert out.returncode == cli(hub, "messages", "replay", "01NOSUCHMESSAGE").returncode == 1, "not found exits like the CLI's other not-found errors"
    partner = api(hub, tokens[PROVIDER]).get("/v1/messages/01NOSUCHMESSAGE")
    assert partner.status_code == 404 and "visible to you" in partner.json()["detail"], "a partner keeps the wording that reveals nothing"
