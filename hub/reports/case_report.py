"""The automatic case report: one case, audit-ready, as a typed object built from the store.

What an auditor asks of a case chain (§ 67d, § 80 SGB X): which links the chain had and how each
went (status, period, outcome, destination, what was reported), every transmission concerning the
case (who sent what to whom, when, for which purpose, on which legal basis), the decisions taken,
the deadlines met and missed, and the tasks. The report is built from the same reads as the chain
view (hub.chain.view) -- one truth for the console, the API and the report -- plus the message
store's deliveries and the audit log's `transmitted` entries, which recorded the purpose and the
legal basis at the time of each transmission.

Who may read it: the steering agency that owns the case, and operators; a provider is answered
"not found" like any case it does not own. Building it is a content read: `build` writes the audit
entry itself, so no caller can forget it.

What it never holds: the benefit consequence of a decision (Leistungsminderung, §§ 31 ff. SGB II)
has no field anywhere in the hub; the case manager's free-text remark on a task, which could name
it, stays out of the report too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.chain.view import chain_view, find_case, read_purpose
from hub.findings import Refusal
from hub.runtime import Hub
from hub.store.db import aware, utcnow
from hub.store.history import audit
from hub.store.tables import audit_log, deliveries, messages

#: the answers the hub sends back to a sender: the quittung is left out of the transmissions (it
#: carries nothing about the case); a rueckweisung stays in
_RECEIPT = "administration.quittung.0020"
#: the decision of a task a message closed (hub.chain.engine): "message:<type>"
_CLOSED_BY_MESSAGE = "message:"

#: the record's kinds (contracts/chain/lifecycle.yaml `record`, and the chain's own) in German
RECORD_LABELS = {
    "referral": "Kontaktanfrage", "answer": "Rückmeldung", "assignment": "Zuweisung", "start": "Eintritt",
    "attendance": "Anwesenheit", "cooperation": "Mitwirkungsrückmeldung", "decision": "Entscheidung", "change": "Änderung",
    "exit": "Austritt", "assessment": "Beurteilung", "task": "Aufgabe eröffnet", "task_joined": "Aufgabe ergänzt",
    "task_done": "Aufgabe erledigt", "breach": "Frist versäumt", "notice": "Hinweis", "case_status": "Status des Falls", "invoice": "Abrechnung",
}
DEADLINE_LABELS = {
    "start": "Eintrittsmeldung", "attendance": "Anwesenheitsmeldung", "assessment": "Beurteilung",
    "cooperation_decision": "Entscheidung nach Mitwirkungsrückmeldung", "answer": "Rückmeldung auf die Kontaktanfrage",
}
STATE_LABELS = {
    "met": "eingehalten", "met late": "verspätet eingehalten", "missed": "versäumt", "missed, came late": "versäumt, verspätet nachgereicht",
    "open": "offen", "cancelled": "entfallen",
}
CASE_STATUS_LABELS = {"open": "offen", "integrated": "integriert", "closed": "geschlossen"}
TASK_STATUS_LABELS = {"open": "offen", "done": "erledigt", "cancelled": "entfallen"}
DELIVERY_STATUS_LABELS = {"pending": "bereitgestellt", "acknowledged": "quittiert", "dead": "nicht zustellbar"}


@dataclass(frozen=True)
class Entry:
    """One entry of a link's record: a report received, a status change, a task opened or done."""

    at: dt.datetime
    kind: str
    label: str
    status_from: str | None
    status_to: str | None
    message_type: str | None
    details: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Deadline:
    kind: str
    label: str
    partner: str
    month: str | None
    due_on: dt.date
    state: str  # met | met late | missed | missed, came late | open | cancelled
    state_label: str
    met_on: dt.date | None
    overdue: bool

    @property
    def missed(self) -> bool:
        return self.state.startswith("missed")


@dataclass(frozen=True)
class Task:
    id: str
    kind: str
    title: str
    status: str
    status_label: str
    due_on: dt.date
    rule: str
    rule_version: str
    decision: str | None
    completed_at: dt.datetime | None
    completed_by: str | None
    proposed_measure: str | None

    @property
    def decision_label(self) -> str:
        """The decision, or the message that closed the task (a late report that arrived)."""
        if self.decision and self.decision.startswith(_CLOSED_BY_MESSAGE):
            return "erledigt durch " + self.decision.removeprefix(_CLOSED_BY_MESSAGE)
        return self.decision or "–"


@dataclass(frozen=True)
class Decision:
    """A decision about the participation: a task completed, or the agency's own teilnahme.aenderung."""

    at: dt.datetime
    link: int | None
    what: str
    decision: str
    by: str | None
    message_id: str | None


@dataclass(frozen=True)
class LinkSection:
    number: int
    id: str
    partner: str
    partner_name: str
    measure_number: str
    status: str
    status_label: str
    branch: str | None
    period_start: dt.date | None
    period_end: dt.date | None
    weekly_hours: float | None
    start_date: dt.date | None
    end_date: dt.date | None
    outcome: str | None
    outcome_reason: str | None
    destination: str | None
    test: bool
    record: tuple[Entry, ...]
    deadlines: tuple[Deadline, ...]
    tasks: tuple[Task, ...]


@dataclass(frozen=True)
class Transmission:
    """One delivery of a message concerning the case: from whom to whom, what, when, why, on which basis."""

    at: dt.datetime
    message_id: str
    delivery_id: str
    sender: str
    recipient: str
    message_type: str
    purpose: str
    legal_basis: str
    status: str
    status_label: str
    acknowledged_at: dt.datetime | None


@dataclass(frozen=True)
class CaseReport:
    reference: str  # the reader's own reference for the case (an operator's: the hub's case id)
    case_id: str
    owner: str
    owner_name: str
    status: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    generated_at: dt.datetime
    generated_by: str
    rules_version: str
    links: tuple[LinkSection, ...]
    transmissions: tuple[Transmission, ...]
    decisions: tuple[Decision, ...]
    case_record: tuple[Entry, ...]
    next_steps: tuple[str, ...]
    #: the tasks of the case without a link (a closed chain's, a case status's)
    case_tasks: tuple[Task, ...] = field(default=())

    @property
    def status_label(self) -> str:
        return CASE_STATUS_LABELS.get(self.status, self.status)

    @property
    def deadlines(self) -> tuple[Deadline, ...]:
        return tuple(d for link in self.links for d in link.deadlines)

    @property
    def missed(self) -> tuple[Deadline, ...]:
        return tuple(d for d in self.deadlines if d.missed)

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(t for link in self.links for t in link.tasks) + self.case_tasks


def build(conn: Connection, hub: Hub, reference: str, *, viewer: str, operator: bool, today: dt.date, actor: str | None = None) -> CaseReport:
    """The report of the case `reference` for `viewer` (the owner by its own reference; an operator,
    `operator` True, by the hub's case id), audited as a content read in `conn`'s transaction.
    `actor` is the person who asked, for the audit entry and the report's "Erstellt für" (the
    console's login of a case manager, whose agency is `viewer`); default `viewer`.

    Raises Refusal not-found for a case the viewer does not own -- also a provider's own case: the
    report is the steering agency's, a provider has its own link in the chain view."""
    case = find_case(conn, viewer, operator, reference)
    if not operator and case.owner != viewer:
        raise Refusal("not-found", f"No case {reference} is known to you")
    view = chain_view(conn, hub.chain.steering, case, viewer, whole=True, reference=reference, today=today)
    partners = hub.partners
    sections = tuple(_link(link, partners) for link in view["links"])
    task_rows = [t for link in view["links"] for t in link.get("tasks", [])]
    all_tasks = {t["id"]: t for t in task_rows}
    linked = set(all_tasks)
    report = CaseReport(
        reference=reference, case_id=case.id, owner=case.owner, owner_name=_name(partners, case.owner), status=view["status"],
        opened_at=_time(view["opened_at"]), closed_at=_time(view.get("closed_at")), generated_at=utcnow(), generated_by=actor or viewer,
        rules_version=view["rules_version"], links=sections,
        transmissions=tuple(_transmissions(conn, hub, view, list(all_tasks))),
        decisions=tuple(_decisions(view, task_rows)),
        case_record=tuple(_entry(e) for e in view["case_record"]),
        next_steps=tuple(s["proposal"] or s["proposed_measure"] for s in view["next_step"]),
        case_tasks=tuple(_task(t) for t in view["open_tasks"] if t["id"] not in linked),
    )
    purpose, basis = read_purpose(operator)
    audit(conn, actor or viewer, "case-report-read", partner=None if operator else viewer, purpose=purpose, legal_basis=basis,
          case=case.id, links=len(sections), transmissions=len(report.transmissions))
    return report


def _name(partners: dict[str, Any], partner_id: str) -> str:
    partner = partners.get(partner_id)
    return partner.name if partner is not None else partner_id


def _time(value: str | None) -> dt.datetime | None:
    return aware(dt.datetime.fromisoformat(value)) if value else None


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _link(link: dict[str, Any], partners: dict[str, Any]) -> LinkSection:
    return LinkSection(
        number=link["link"], id=link["id"], partner=link["partner"], partner_name=_name(partners, link["partner"]),
        measure_number=link["measure_number"], status=link["status"], status_label=link["status_label"], branch=link.get("branch"),
        period_start=_date(link.get("period_start")), period_end=_date(link.get("period_end")), weekly_hours=link.get("weekly_hours"),
        start_date=_date(link.get("start_date")), end_date=_date(link.get("end_date")), outcome=link.get("outcome"),
        outcome_reason=link.get("outcome_reason"), destination=link.get("destination"), test=link["test"],
        record=tuple(_entry(e) for e in link["record"]), deadlines=tuple(_deadline(d) for d in link["deadlines"]),
        tasks=tuple(_task(t) for t in link.get("tasks", [])),
    )


def _entry(e: dict[str, Any]) -> Entry:
    return Entry(at=_time(e["at"]), kind=e["kind"], label=RECORD_LABELS.get(e["kind"], e["kind"]), status_from=e.get("from"),
                 status_to=e.get("to"), message_type=e.get("message_type"), details=_details(e.get("detail") or {}))


#: record details the report leaves out: the remark stays inside the agency, the rest are the hub's
#: internal ids (the task and the deadline are listed in their own tables)
_NOT_SHOWN = {"remark", "by", "task", "deadline"}


def _details(detail: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The kept fields as (name, text): lists of absences and assessment items summarised, never the
    free-text remark of a task (it stays inside the agency's own system)."""
    out = []
    for key, value in detail.items():
        if key in _NOT_SHOWN or value in (None, "", []):
            continue
        if isinstance(value, list):
            parts = [", ".join(f"{v}" for v in item.values()) if isinstance(item, dict) else str(item) for item in value]
            out.append((key, "; ".join(parts)))
        elif isinstance(value, dict):
            out.append((key, ", ".join(f"{k} {v}" for k, v in value.items())))
        else:
            out.append((key, str(value)))
    return tuple(out)


def _deadline(d: dict[str, Any]) -> Deadline:
    state = d["state"] if d["status"] != "cancelled" else "cancelled"
    return Deadline(kind=d["kind"], label=DEADLINE_LABELS.get(d["kind"], d["kind"]), partner=d["partner"], month=d.get("month"),
                    due_on=dt.date.fromisoformat(d["due_on"]), state=state, state_label=STATE_LABELS.get(state, state),
                    met_on=_date(d.get("met_on")), overdue=bool(d.get("overdue")))


def _task(t: dict[str, Any]) -> Task:
    return Task(id=t["id"], kind=t["kind"], title=t["title"], status=t["status"], status_label=TASK_STATUS_LABELS.get(t["status"], t["status"]),
                due_on=dt.date.fromisoformat(t["due_on"]), rule=t["rule"], rule_version=t["rule_version"], decision=t.get("decision"),
                completed_at=_time(t.get("completed_at")), completed_by=t.get("completed_by"), proposed_measure=t.get("proposed_measure"))


def _decisions(view: dict[str, Any], task_rows: list[dict[str, Any]]) -> list[Decision]:
    """Every task a person completed with a decision, and each `decision` entry of a link's record
    that no such task made (the agency's own system sent its teilnahme.aenderung.2020). A task that
    a message closed (the late report arrived) is no decision: it stays among the tasks."""
    link_of = {link["id"]: link["link"] for link in view["links"]}
    found = [
        Decision(at=_time(t["completed_at"]), link=link_of.get(t["link_id"]), what=t["title"], decision=t["decision"], by=t["completed_by"],
                 message_id=t["decision_message_id"])
        for t in task_rows if t.get("decision") and t.get("completed_at") and not t["decision"].startswith(_CLOSED_BY_MESSAGE)
    ]
    by_task = {d.message_id for d in found if d.message_id}
    for link in view["links"]:
        for e in link["record"]:
            if e["kind"] == "decision" and e.get("message_id") not in by_task:
                detail = e.get("detail") or {}
                found.append(Decision(at=_time(e["at"]), link=link["link"], what=RECORD_LABELS["decision"], decision=str(detail.get("change_kind", "")),
                                      by=None, message_id=e.get("message_id")))
    return sorted(found, key=lambda d: d.at)


def _transmissions(conn: Connection, hub: Hub, view: dict[str, Any], task_ids: list[str]) -> list[Transmission]:
    """The deliveries of every message the case's record names and of its tasks (steuerung.aufgabe:
    a task's delivery carries the task's id as its message id), each with the purpose and legal
    basis its audit entry recorded when it was transmitted (a task's entry names the delivery only:
    the purpose profile's basis, as deliver_tasks wrote it)."""
    ids = {e["message_id"] for link in view["links"] for e in link["record"] if e.get("message_id")}
    ids |= {e["message_id"] for e in view["case_record"] if e.get("message_id")}
    ids |= set(task_ids)
    if not ids:
        return []
    wanted = sorted(ids)
    senders = dict(conn.execute(sa.select(messages.c.id, messages.c.sender).where(messages.c.id.in_(wanted))).all())
    rows = conn.execute(
        sa.select(deliveries.c.id, deliveries.c.message_id, deliveries.c.recipient, deliveries.c.message_type, deliveries.c.purpose,
                  deliveries.c.status, deliveries.c.created_at, deliveries.c.acked_at)
        .where(deliveries.c.message_id.in_(wanted), deliveries.c.message_type != _RECEIPT)
        .order_by(deliveries.c.created_at, deliveries.c.id)
    ).all()
    basis = {
        r.delivery_id: r.legal_basis
        for r in conn.execute(sa.select(audit_log.c.delivery_id, audit_log.c.legal_basis).where(
            audit_log.c.message_id.in_(wanted), audit_log.c.action == "transmitted", audit_log.c.delivery_id.is_not(None)))
    }
    return [
        Transmission(
            at=aware(d.created_at), message_id=d.message_id, delivery_id=d.id, sender=senders.get(d.message_id, "hub"), recipient=d.recipient,
            message_type=d.message_type, purpose=d.purpose, legal_basis=basis.get(d.id) or hub.purposes.legal_basis(d.purpose),
            status=d.status, status_label=DELIVERY_STATUS_LABELS.get(d.status, d.status),
            acknowledged_at=aware(d.acked_at) if d.acked_at else None,
        )
        for d in rows
    ]
