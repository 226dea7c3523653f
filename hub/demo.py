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
from typing import Any, Callable

import httpx
import typer
import uvicorn

from hub.store import db
from hub.api.app import create_app
from hub.canonical import Message
from hub.config import Settings
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
        # log_config=None: uvicorn logs through the root logger, i.e. into the demo's log file, not between the story's lines
        config = uvicorn.Config(create_app(hub), host="127.0.0.1", port=self.port, log_level="error", access_log=False, log_config=None)
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


def log_file(settings: Settings) -> Path:
    """Where `hub demo` writes the hub's log lines (beside the drop directory, var/demo.log by default),
    so the story on stdout is not interleaved with them; `--verbose` shows them on stderr instead."""
    return Path(settings.drop_dir).resolve().parent / "demo.log"


class Story:
    """What `hub demo` prints: a short header, numbered steps with indented details, a closing summary.

    Plain text, no colours: it reads the same on a terminal and in a pipe (tests/test_demo_story.py
    holds every stdout line to this shape).
    """

    def __init__(self, say: Callable[[str], None] = typer.echo) -> None:
        self.say = say
        self.steps = 0

    def header(self, title: str, *lines: str) -> None:
        self.say(title)
        for line in lines:
            self.say(f"  {line}")
        self.say("")

    def step(self, text: str, *details: str) -> None:
        self.steps += 1
        self.say(f"{self.steps}. {text}")
        for line in details:
            self.say(f"   {line}")

    def summary(self, *lines: str) -> None:
        self.say("")
        self.say("Summary:")
        for line in lines:
            self.say(f"  {line}")


def _partner_line(hub: Hub, pid: str) -> str:
    p = hub.partners[pid]
    versions = ", ".join(f"{t} {v}" for t, v in p.versions.items())
    return f"partner {p.id:24} {p.role:10} speaks {p.format} {p.version}{' (' + versions + ')' if versions else ''}, delivery {p.delivery}"


def run_demo(hub: Hub, log_path: Path | None = None) -> None:
    """Play the chain over HTTP and tell it step by step; `log_path` is named at the end (None: on stderr)."""
    story = Story()
    with db.write(hub.engine) as conn:
        tokens = {p: issue_token(conn, p) for p in (JOBCENTER, MUNICIPAL, PROVIDER, OPERATOR)}
    story.header(
        "CaseChain Hub demo: one case chain, Jobcenter -> municipal office and provider -> Jobcenter, over the hub's HTTP API",
        *(_partner_line(hub, pid) for pid in (JOBCENTER, MUNICIPAL, FILE_PARTNER, PROVIDER)),
    )
    with _Server(hub) as url, httpx.Client(base_url=url, timeout=30) as client:

        def auth(partner: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[partner]}"}

        def post(sender: str, fmt: str, data: dict[str, Any]) -> str:
            media = hub.adapter(fmt).media_type
            r = client.post("/v1/messages", content=_encode(hub, fmt, data), headers={**auth(sender), "Content-Type": media})
            if r.status_code not in (200, 202):
                raise RuntimeError(f"{sender} could not submit {data['header']['message_type']}: {r.json().get('detail')}")
            return r.json()["id"]

        def pick(recipient: str, message_type: str) -> dict[str, Any]:
            item = _wait_inbox(client, tokens[recipient], message_type)
            client.post(f"/v1/inbox/{item['id']}/ack", headers=auth(recipient))
            return item

        def status(sender: str, mid: str) -> dict[str, Any]:
            """The message as its sender sees it now (GET /v1/messages/{id})."""
            return client.get(f"/v1/messages/{mid}", headers=auth(sender)).json()

        # a new client every run: the demo can run again on a used database (a second run with the
        # same client would send the same reports again, which the hub answers as duplicates)
        newcomer = Client.fresh()
        agency = samples("agency-xml", fresh=True, client=newcomer)
        kdnr = newcomer.customer_number

        master = agency["person.stammdaten.0100"]
        mid = post(JOBCENTER, "agency-xml", master)
        item = pick(MUNICIPAL, "person.stammdaten.0100")
        story.step(
            f"The Jobcenter {JOBCENTER} sends the master data of client {kdnr} (person.stammdaten.0100 {master['header']['version']}, agency XML) "
            f"to the municipal office {MUNICIPAL}, which picks it up from its inbox and acknowledges it.",
            f"route: {JOBCENTER} --person.stammdaten.0100 {master['header']['version']} (agency XML)--> hub "
            f"--(agency XML {item['version']}, restructured, purpose kommunale_leistung)--> {MUNICIPAL}",
            f"message {mid}, delivery {item['id']}; status read back from the hub: {status(JOBCENTER, mid)['status']}",
        )

        drop = FileDrop(hub)
        to_file = samples("agency-xml", fresh=True, client=newcomer)["person.stammdaten.0100"]
        to_file["header"]["reader"] = {"id": FILE_PARTNER}
        mid = post(JOBCENTER, "agency-xml", to_file)
        written = _wait_file(drop.outbox(hub.partners[FILE_PARTNER]), "person.stammdaten.0100_*.csv")
        story.step(
            f"The Jobcenter sends the same master data to {FILE_PARTNER}, a partner that exchanges files: "
            f"the hub writes it into the partner's outbox directory.",
            f"route: {JOBCENTER} --person.stammdaten.0100 (agency XML)--> hub --(ISO-8859-15 CSV batch file {written.name})--> {FILE_PARTNER}",
            f"message {mid}, status read back from the hub: {status(JOBCENTER, mid)['status']}; the file: {written}",
        )

        batch = _csv_batch(hub, drop.inbox(hub.partners[FILE_PARTNER]))
        _wait_inbox(client, tokens[JOBCENTER], "person.stammdaten.0100", count=2, timeout=30)
        picked = [d for d in client.get("/v1/inbox", headers=auth(JOBCENTER)).json()["deliveries"] if d["message_type"] == "person.stammdaten.0100"]
        for delivery in picked:
            client.post(f"/v1/inbox/{delivery['id']}/ack", headers=auth(JOBCENTER))
        story.step(
            f"{FILE_PARTNER} drops a batch file with 2 master data records into its inbox directory; the hub reads it, "
            f"and the Jobcenter picks up {len(picked)} messages and acknowledges them.",
            f"route: {FILE_PARTNER} --batch file {batch.name} with 2 records (CSV)--> hub --(2 x agency XML)--> {JOBCENTER}",
        )

        assignment = agency["zuweisung.anmeldung.1020"]  # a new case
        mid = post(JOBCENTER, "agency-xml", assignment)
        item = pick(PROVIDER, "zuweisung.anmeldung.1020")
        case_id = item["body"]["body"]["caseId"]
        leaked = [k for k in ("customerNumber", "bgNumber") if k in json.dumps(item["body"])]
        story.step(
            f"The Jobcenter {JOBCENTER} assigns client {kdnr} to measure {assignment['body']['measure_number']} "
            f"(zuweisung.anmeldung.1020, agency XML) at the provider {PROVIDER}.",
            f"route: {JOBCENTER} --zuweisung.anmeldung.1020 (agency XML, Kundennummer)--> hub --(provider JSON, pseudonymous case id {case_id})--> {PROVIDER}",
            f"message {mid}; status read back from the hub: {status(JOBCENTER, mid)['status']}",
        )
        story.step(
            f"The hub routed it to {PROVIDER} as provider JSON under the pseudonym {case_id}: the provider never learns the Kundennummer.",
            f"the provider sees {len(item['body']['body'])} fields; agency ids in its copy: {leaked or 'none'}",
        )

        provider = samples("provider-json", fresh=True, case_id=case_id, client=newcomer)
        reports = {"teilnahme.anwesenheit.2030": "attendance", "teilnahme.mitwirkung.2040": "cooperation"}
        for message_type, what in reports.items():
            mid = post(PROVIDER, "provider-json", provider[message_type])
            item = pick(JOBCENTER, message_type)
            restored = kdnr in item["body"]
            story.step(
                f"The provider {PROVIDER} reports the client's {what} ({message_type}, provider JSON) under case id {case_id}; "
                f"the Jobcenter receives it as agency XML {'with its own Kundennummer ' + kdnr if restored else 'WITHOUT its Kundennummer'}.",
                f"route: {PROVIDER} --{message_type} (provider JSON, case id {case_id})--> hub "
                f"--(agency XML, Kundennummer {'restored' if restored else 'MISSING'})--> {JOBCENTER}",
                f"message {mid}, delivery {item['id']}",
            )

        last = status(PROVIDER, mid)
        story.step(
            f"The history of the last message ({last['status']}), as the hub recorded it:",
            *(f"  {event['stage']:>10}.{event['event']:<13} {event['detail']['text']}" for event in last["history"]),
        )
        receipts = sum(len(_drain(client, tokens[p])) for p in (JOBCENTER, PROVIDER, MUNICIPAL))
        file_outbox = drop.outbox(hub.partners[FILE_PARTNER])
        story.step(
            f"{receipts} quittungen (receipts) went back to the HTTP senders, who picked them up and acknowledged them; "
            f"the file partner's arrive as files in {file_outbox}.",
        )
    story.summary(
        f"{story.steps} steps: one client's case chain across {JOBCENTER}, {MUNICIPAL}, {FILE_PARTNER} and {PROVIDER}.",
        f"The client's case: Kundennummer {kdnr} at {JOBCENTER}, case id {case_id} at {PROVIDER}; "
        f"`hub cases list --partner {PROVIDER}` shows it again, newest first.",
        "Tokens for trying it yourself: `hub partners token PARTNER`; interface documentation at /docs/interfaces/.",
        f"The hub's log lines of this run: {log_path}" if log_path else "The hub's log lines of this run went to stderr (--verbose).",
    )
