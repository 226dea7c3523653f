"""`hub demo`: one case chain through the real code paths, narrated.

It starts the hub (API and workers) on a free local port against the configured database and broker,
issues tokens for the demo partners, and plays the chain over HTTP exactly as partners would:
master data to the municipal office, an assignment to a provider, the provider's attendance and
cooperation feedback back to the Jobcenter, each delivery picked up and acknowledged.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import typer
import uvicorn

from hub.store import db
from hub.api.app import create_app
from hub.canonical import Message
from hub.endpoints.file_drop import FileDrop, atomic_write
from hub.partners import issue_token
from hub.runtime import Hub
from hub.samples import Client, samples

JOBCENTER, MUNICIPAL, PROVIDER, OPERATOR = "jobcenter-musterstadt", "kreis-musterland", "traeger-bildungswerk", "betrieb"
FILE_PARTNER = "sozialamt-altstadt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, hub: Hub) -> None:
        self.port = _free_port()
        config = uvicorn.Config(create_app(hub), host="127.0.0.1", port=self.port, log_level="error", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 15
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("the demo hub did not start within 15 s")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _encode(hub: Hub, fmt: str, data: dict[str, Any]) -> bytes:
    return hub.adapter(fmt).encode(Message.build(data["header"], data["body"]))


def _wait_inbox(client: httpx.Client, token: str, message_type: str, timeout: float = 15.0, count: int = 1) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        items = client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).json()["deliveries"]
        matching = [item for item in items if item["message_type"] == message_type]
        if len(matching) >= count:
            return matching[0]
        time.sleep(0.1)
    raise RuntimeError(f"no {message_type} arrived within {timeout:.0f} s")


def _wait_file(directory: Path, pattern: str, timeout: float = 15.0) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime)
        if found:
            return found[-1]
        time.sleep(0.1)
    raise RuntimeError(f"no file {pattern} appeared in {directory} within {timeout:.0f} s")


def _csv_batch(hub: Hub, inbox: Path) -> Path:
    """What the municipal batch system drops: two records, ISO-8859-15, written atomically."""
    adapter = hub.adapter("municipal-csv")
    records = []
    for _ in range(2):
        data = samples("agency-xml", fresh=True, client=Client.fresh())["person.stammdaten.0100"]
        data["header"].update(author={"id": FILE_PARTNER}, reader={"id": JOBCENTER})
        records.append(adapter.encode(Message.build(data["header"], data["body"]), "1.0"))
    path = inbox / f"stammdaten_{int(time.time())}.csv"
    atomic_write(path, adapter.join(records))
    return path


def _drain(client: httpx.Client, token: str) -> list[str]:
    """Acknowledge everything waiting (quittungen); returns the types acknowledged."""
    items = client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).json()["deliveries"]
    for item in items:
        client.post(f"/v1/inbox/{item['id']}/ack", headers={"Authorization": f"Bearer {token}"})
    return [i["message_type"] for i in items]


def run_demo(hub: Hub) -> None:
    say = typer.echo
    with db.write(hub.engine) as conn:
        tokens = {p: issue_token(conn, p) for p in (JOBCENTER, MUNICIPAL, PROVIDER, OPERATOR)}
    say("CaseChain Hub demo: one case chain, Jobcenter -> municipal office and provider -> Jobcenter\n")
    for pid in (JOBCENTER, MUNICIPAL, FILE_PARTNER, PROVIDER):
        p = hub.partners[pid]
        versions = ", ".join(f"{t} {v}" for t, v in p.versions.items())
        say(f"  partner {p.id:24} {p.role:10} speaks {p.format} {p.version}{' (' + versions + ')' if versions else ''}, delivery {p.delivery}")
    say("")
    with _Server(hub) as url, httpx.Client(base_url=url, timeout=30) as client:

        def post(sender: str, fmt: str, data: dict[str, Any]) -> str:
            media = "application/xml" if fmt == "agency-xml" else "application/json"
            r = client.post("/v1/messages", content=_encode(hub, fmt, data), headers={"Authorization": f"Bearer {tokens[sender]}", "Content-Type": media})
            if r.status_code not in (200, 202):
                raise RuntimeError(f"{sender} could not submit {data['header']['message_type']}: {r.json().get('detail')}")
            return r.json()["id"]

        def pick(recipient: str, message_type: str) -> dict[str, Any]:
            item = _wait_inbox(client, tokens[recipient], message_type)
            client.post(f"/v1/inbox/{item['id']}/ack", headers={"Authorization": f"Bearer {tokens[recipient]}"})
            return item

        # a new client every run: the demo can run again on a used database (a second run with the
        # same client would send the same reports again, which the hub answers as duplicates)
        newcomer = Client.fresh()
        agency = samples("agency-xml", fresh=True, client=newcomer)
        step = 1
        mid = post(JOBCENTER, "agency-xml", agency["person.stammdaten.0100"])
        item = pick(MUNICIPAL, "person.stammdaten.0100")
        say(f"{step}. {JOBCENTER} --person.stammdaten.0100 1.0 (agency XML)--> hub --(agency XML {item['version']}, restructured, purpose kommunale_leistung)--> {MUNICIPAL}   [{mid}]")
        step += 1

        drop = FileDrop(hub)
        to_file = samples("agency-xml", fresh=True, client=newcomer)["person.stammdaten.0100"]
        to_file["header"]["reader"] = {"id": FILE_PARTNER}
        mid = post(JOBCENTER, "agency-xml", to_file)
        written = _wait_file(drop.outbox(hub.partners[FILE_PARTNER]), "person.stammdaten.0100_*.csv")
        say(f"{step}. {JOBCENTER} --person.stammdaten.0100 (agency XML)--> hub --(ISO-8859-15 CSV batch file {written.name})--> {FILE_PARTNER}   [{mid}]")
        step += 1

        batch = _csv_batch(hub, drop.inbox(hub.partners[FILE_PARTNER]))
        _wait_inbox(client, tokens[JOBCENTER], "person.stammdaten.0100", count=2, timeout=30)
        for delivery in client.get("/v1/inbox", headers={"Authorization": f"Bearer {tokens[JOBCENTER]}"}).json()["deliveries"]:
            if delivery["message_type"] == "person.stammdaten.0100":
                client.post(f"/v1/inbox/{delivery['id']}/ack", headers={"Authorization": f"Bearer {tokens[JOBCENTER]}"})
        say(f"{step}. {FILE_PARTNER} --batch file {batch.name} with 2 records (CSV)--> hub --(2 x agency XML)--> {JOBCENTER}")
        step += 1

        mid = post(JOBCENTER, "agency-xml", agency["zuweisung.anmeldung.1020"])  # a new case
        item = pick(PROVIDER, "zuweisung.anmeldung.1020")
        case_id = item["body"]["body"]["caseId"]
        leaked = [k for k in ("customerNumber", "bgNumber") if k in json.dumps(item["body"])]
        say(f"{step}. {JOBCENTER} --zuweisung.anmeldung.1020 (agency XML, Kundennummer)--> hub --(provider JSON, pseudonymous case id {case_id})--> {PROVIDER}   [{mid}]")
        say(f"   the provider sees {len(item['body']['body'])} fields; agency ids in its copy: {leaked or 'none'}")
        step += 1

        provider = samples("provider-json", fresh=True, case_id=case_id, client=newcomer)
        for message_type in ("teilnahme.anwesenheit.2030", "teilnahme.mitwirkung.2040"):
            mid = post(PROVIDER, "provider-json", provider[message_type])
            item = pick(JOBCENTER, message_type)
            kundennummer = newcomer.customer_number in item["body"]
            say(f"{step}. {PROVIDER} --{message_type} (provider JSON, case id {case_id})--> hub --(agency XML, Kundennummer {'restored' if kundennummer else 'MISSING'})--> {JOBCENTER}   [{mid}]")
            step += 1

        status = client.get(f"/v1/messages/{mid}", headers={"Authorization": f"Bearer {tokens[PROVIDER]}"}).json()
        say(f"\nhistory of the last message ({status['status']}):")
        for event in status["history"]:
            say(f"  {event['stage']:>10}.{event['event']:<13} {event['detail']['text']}")
        receipts = sum(len(_drain(client, tokens[p])) for p in (JOBCENTER, PROVIDER, MUNICIPAL))
        say(f"\n{receipts} quittungen went back to the HTTP senders; the file partner's arrive as files in {drop.outbox(hub.partners[FILE_PARTNER])}.")
        say(f"The client's case: Kundennummer {newcomer.customer_number} at {JOBCENTER}, case id {case_id} at {PROVIDER}; "
            f"`hub cases list --partner {PROVIDER}` shows it again, newest first.")
        say("Tokens for trying it yourself: `hub partners token PARTNER`; interface documentation at /docs/interfaces/.")
