"""`hub demo`: one case chain through the real code paths, narrated.

It starts the hub (API and workers) on a free local port against the configured database and broker,
issues tokens for the demo partners, and plays the chain over HTTP exactly as partners would:
master data to the municipal office, an assignment to a provider, the provider's acceptance, start,
attendance and cooperation feedback back to the Jobcenter, the case manager's decision through the
task API, a drop-out, a deadline the provider missed, and at the end the chain as the Jobcenter
sees it. Each delivery is picked up and acknowledged. The messages are real (not test messages):
the chain they build is the client's.
"""

from __future__ import annotations

import datetime as dt
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
from hub.chain.calendar import today
from hub.chain.view import timeline
from hub.config import Settings
from hub.endpoints.file_drop import FileDrop, atomic_write
from hub.partners import issue_token
from hub.runtime import Hub
from hub.samples import Client, samples
from hub.scheduler import DeadlineScheduler

JOBCENTER, MUNICIPAL, PROVIDER, OPERATOR = "jobcenter-musterstadt", "kreis-musterland", "traeger-bildungswerk", "betrieb"
OTHER_PROVIDER = "traeger-lernwerkstatt"
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


#: the demo's console accounts: an operator and a case manager of the demo Jobcenter
DEMO_ACCOUNTS = (("demo-betrieb", "operator", None), ("demo-fallmanagement", "case_manager", JOBCENTER))


def _console_accounts(hub: Hub) -> str:
    """Demo accounts for the console, each with a new random password (printed once, as the tokens
    are): a demo on a used database gets new passwords, never a known default one."""
    from hub.console import accounts
    from hub.ids import new_token

    said = []
    with db.write(hub.engine) as conn:
        known = {u["login"] for u in accounts.listing(conn)}
        for login, role, agency in DEMO_ACCOUNTS:
            password = new_token()[-16:]
            if login in known:
                accounts.set_password(conn, login, password)
            else:
                accounts.add(conn, login, role, password, agency=agency)
            said.append(f"{login} / {password} ({role})")
    return "; ".join(said)


def _partner_line(hub: Hub, pid: str) -> str:
    p = hub.partners[pid]
    versions = ", ".join(f"{t} {v}" for t, v in p.versions.items())
    return f"partner {p.id:24} {p.role:10} speaks {p.format} {p.version}{' (' + versions + ')' if versions else ''}, delivery {p.delivery}"


def _dates(day: dt.date) -> dict[str, str]:
    """The story's dates, relative to today: a participation that began two months ago."""
    first = day.replace(day=1)
    start = (first - dt.timedelta(days=1)).replace(day=1)
    start = (start - dt.timedelta(days=1)).replace(day=1)
    last_month = (first - dt.timedelta(days=1)).replace(day=1)
    return {
        "start": start.isoformat(), "end": (start + dt.timedelta(days=180)).isoformat(), "month": last_month.strftime("%Y-%m"),
        "present": (last_month + dt.timedelta(days=1)).isoformat(), "absent": (last_month + dt.timedelta(days=2)).isoformat(),
        "decide_by": (day + dt.timedelta(days=14)).isoformat(), "exit": (day - dt.timedelta(days=1)).isoformat(),
    }


def run_demo(hub: Hub, log_path: Path | None = None) -> None:
    """Play the chain over HTTP and tell it step by step; `log_path` is named at the end (None: on stderr)."""
    story = Story()
    with db.write(hub.engine) as conn:
        tokens = {p: issue_token(conn, p) for p in (JOBCENTER, MUNICIPAL, PROVIDER, OTHER_PROVIDER, OPERATOR)}
    story.header(
        "CaseChain Hub demo: one case chain, Jobcenter -> municipal office and provider -> Jobcenter, over the hub's HTTP API",
        *(_partner_line(hub, pid) for pid in (JOBCENTER, MUNICIPAL, FILE_PARTNER, PROVIDER)),
    )
    with _Server(hub) as url, httpx.Client(base_url=url, timeout=30) as client:

        def auth(partner: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[partner]}"}

        def post(sender: str, fmt: str, data: dict[str, Any]) -> str:
            data["header"]["test"] = False  # the demo's chain is real: test messages never move a real chain
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

        dates = _dates(today())
        assignment = agency["zuweisung.anmeldung.1020"]  # a new case
        assignment["body"].update(period_start=dates["start"], period_end=dates["end"])
        mid = post(JOBCENTER, "agency-xml", assignment)
        item = pick(PROVIDER, "zuweisung.anmeldung.1020")
        case_id = item["body"]["body"]["caseId"]
        leaked = [k for k in ("customerNumber", "bgNumber") if k in json.dumps(item["body"])]
        story.step(
            f"The Jobcenter {JOBCENTER} assigns client {kdnr} to measure {assignment['body']['measure_number']} "
            f"from {dates['start']} (zuweisung.anmeldung.1020, agency XML) at the provider {PROVIDER}: the first link of the chain.",
            f"route: {JOBCENTER} --zuweisung.anmeldung.1020 (agency XML, Kundennummer)--> hub --(provider JSON, pseudonymous case id {case_id})--> {PROVIDER}",
            f"message {mid}; status read back from the hub: {status(JOBCENTER, mid)['status']}",
        )
        story.step(
            f"The hub routed it to {PROVIDER} as provider JSON under the pseudonym {case_id}: the provider never learns the Kundennummer.",
            f"the provider sees {len(item['body']['body'])} fields; agency ids in its copy: {leaked or 'none'}",
        )

        provider = samples("provider-json", fresh=True, case_id=case_id, client=newcomer)
        provider["zuweisung.rueckmeldung.1030"]["body"]["earliest_start"] = dates["start"]
        provider["teilnahme.eintritt.2010"]["body"]["start_date"] = dates["start"]
        for message_type in ("zuweisung.rueckmeldung.1030", "teilnahme.eintritt.2010"):
            mid = post(PROVIDER, "provider-json", provider[message_type])
            pick(JOBCENTER, message_type)
        story.step(
            f"The provider accepts (zuweisung.rueckmeldung.1030) and reports the start on {dates['start']} (teilnahme.eintritt.2010): "
            "the link moves from assigned to accepted to started.",
        )

        attendance = provider["teilnahme.anwesenheit.2030"]
        attendance["body"].update(month=dates["month"], days=[{"date": dates["present"], "code": "anwesend_vor_ort"}],
                                  absences=[{"date": dates["absent"], "reason": "unentschuldigt"}], week_absences=None)
        feedback = provider["teilnahme.mitwirkung.2040"]
        feedback["body"].update(event_date=dates["absent"], decision_requested_by=dates["decide_by"], contact_attempts=[dates["absent"]])
        for message_type, what in (("teilnahme.anwesenheit.2030", f"attendance of {dates['month']} with an unexcused absence"),
                                   ("teilnahme.mitwirkung.2040", "cooperation feedback on that absence")):
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
        (task,) = client.get("/v1/tasks", params={"kind": "cooperation_decision", "case": kdnr}, headers=auth(JOBCENTER)).json()["tasks"]
        pushed = pick(JOBCENTER, "steuerung.aufgabe.5010")
        story.step(
            f"The steering rules open a task for the case manager: {task['title']}, due {task['due_on']} "
            f"(the provider's decisionRequestedBy); decisions: {', '.join(task['decisions'])}.",
            f"GET /v1/tasks lists it (task {task['id']}, rule {task['rule']}, rules version {task['rule_version']}); "
            f"the Jobcenter's system also received it as steuerung.aufgabe.5010 (delivery {pushed['id']})",
        )
        r = client.post(f"/v1/tasks/{task['id']}/complete", json={"decision": "continue", "remark": "Gespräch geführt; Leistungsminderung geprüft"},
                        headers=auth(JOBCENTER))
        if r.status_code != 200:
            raise RuntimeError(f"the decision was not taken: {r.json().get('detail')}")
        decision = pick(PROVIDER, "teilnahme.aenderung.2020")
        story.step(
            "The case manager decides through the task API: the participation continues. The provider receives the decision as "
            f"teilnahme.aenderung.2020 ({decision['body']['body']['changeKind']}); the benefit consequence and the remark stay in the agency.",
            f"POST /v1/tasks/{task['id']}/complete -> the Jobcenter's message {r.json()['decision_message_id']} -> {PROVIDER}",
        )

        exit_ = provider["teilnahme.austritt.2050"]
        exit_["body"].update(exit_date=dates["exit"], exit_kind="abbruch", dropout_reason="durch_teilnehmer", destination="arbeitsuchend", remark=None)
        mid = post(PROVIDER, "provider-json", exit_)
        pick(JOBCENTER, "teilnahme.austritt.2050")
        DeadlineScheduler(hub).sweep()  # as every worker does periodically (HUB_DEADLINE_INTERVAL)
        chain = client.get(f"/v1/cases/{kdnr}/chain", headers=auth(JOBCENTER)).json()
        story.step(
            f"The client drops out on {dates['exit']} (teilnahme.austritt.2050); the link ends, and the rules propose the next link: "
            + "; ".join(s["proposal"] or s["proposed_measure"] for s in chain["next_step"]) + ".",
            *(f"SLA breach: {b['partner']} missed the {b['kind']}{' of ' + b['month'] if b.get('month') else ''} due {b['due_on']}"
              for b in chain["breaches"]),
        )

        story.step(
            f"The chain as the Jobcenter sees it (GET /v1/cases/{kdnr}/chain; `hub cases show {chain['case_id']}` prints the same):",
            *(line for line in timeline(chain).splitlines() if line.strip()),
        )
        other = client.get(f"/v1/cases/{case_id}/chain", headers=auth(OTHER_PROVIDER))
        own = client.get(f"/v1/cases/{case_id}/chain", headers=auth(PROVIDER)).json()
        story.step(
            f"A second provider, {OTHER_PROVIDER}, asking for this case gets {other.status_code}; {PROVIDER} sees its own link only "
            f"({len(own['links'])} link, no tasks, no proposals).",
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
    console = _console_accounts(hub)
    story.summary(
        f"{story.steps} steps: one client's case chain across {JOBCENTER}, {MUNICIPAL}, {FILE_PARTNER} and {PROVIDER}.",
        f"The client's case: Kundennummer {kdnr} at {JOBCENTER}, case id {case_id} at {PROVIDER}; "
        f"`hub cases list --partner {PROVIDER}` shows it again, newest first.",
        "Tokens for trying it yourself: `hub partners token PARTNER`; interface documentation at /docs/interfaces/.",
        f"The console at /ops (after `hub serve`): {console}.",
        f"The hub's log lines of this run: {log_path}" if log_path else "The hub's log lines of this run went to stderr (--verbose).",
    )
