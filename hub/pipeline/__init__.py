"""The pipeline: decode -> case chain -> route -> per recipient minimise, translate ids, encode.

Each stage is a small function `stage(hub, conn, ctx)` with one job, composed in `STAGES` (in the
manner of structlog's processors); a stage refuses a message by raising `Refusal`, which turns into a
rueckweisung to the sender. Everything a message causes (deliveries, quittung, status, history, audit)
is written in the transaction of the queue item that carried it, so a crash at any point either
leaves no trace or leaves all of it: the item is then simply delivered again (idempotent receiver).

This is the hot path: statements are built once at import (parameters per call), and the append-only
rows go through the transaction's unit of work (hub.unit_of_work), so a consumer that processes a
batch of items writes each table once per batch.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from fnmatch import fnmatchcase
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy.engine import Connection

from hub import errors
from hub.chain import membership as chain
from hub.pipeline import receipt
from hub.store import unit_of_work
from hub.canonical import Message, Party
from hub.store.db import aware, utcnow
from hub.findings import Finding, Refusal
from hub.store.history import audit, record
from hub.ids import new_id
from hub.metrics import DELIVERIES, PIPELINE_SECONDS
from hub.partners import Partner
from hub.routing.rules import Route
from hub.runtime import Hub
from hub.store.tables import deliveries, messages, report_fingerprints
from hub.transport import Item

log = structlog.get_logger("hub.pipeline")


@dataclass
class Recipient:
    partner: Partner
    route: Route


@dataclass
class Context:
    row: Any
    sender: Partner
    message: Message | None = None
    routes: list[Route] = field(default_factory=list)
    case: chain.Case | None = None
    person_id: str | None = None
    #: the person's data as the sender gave it (for the recipient's pseudonym record)
    person_data: dict[str, Any] | None = None
    recipients: list[Recipient] = field(default_factory=list)
    #: deliveries this message already has, (recipient, message type) -> id: only after a replay
    existing: dict[tuple[str, str], str] = field(default_factory=dict)
    #: the deliveries written or found for this message, (id, recipient)
    written: list[tuple[str, str]] = field(default_factory=list)


Stage = Callable[[Hub, Connection, Context], None]


# -- stages -----------------------------------------------------------------------------------------
def decode(hub: Hub, conn: Connection, ctx: Context) -> None:
    """Sender's bytes -> canonical message, with the sender's adapter."""
    unit = unit_of_work.current(conn)
    try:
        read_ahead = unit.memo.pop(("decoded", ctx.row.id), None) if unit is not None else None
        ctx.message = read_ahead or hub.adapter(ctx.row.format).decode(ctx.row.raw)
    except ValidationError as exc:  # Refusals (e.g. a 31 February) pass through as they are
        raise Refusal(
            "schema-invalid",
            "The message could not be read into the canonical model",
            [Finding(e["msg"], pointer="/body/" + "/".join(map(str, e["loc"]))) for e in exc.errors()],
        ) from None
    ctx.routes = hub.routes.matching(ctx.row.message_type, ctx.sender.role)
    record(conn, ctx.row.id, "pipeline", "decoded", routes=[r.name for r in ctx.routes])


def resolve_identities(hub: Hub, conn: Connection, ctx: Context) -> None:
    """Match the person a message carries to the master person index (id cross-reference)."""
    index = hub.person_index
    subject = index.subject(ctx.row.message_type, ctx.message.body_dict(), ctx.sender.role) if index else None
    if subject is None:
        return
    local_id, data = subject
    resolution = index.resolve(conn, ctx.sender.id, local_id, data, ctx.row.id)
    ctx.person_id, ctx.person_data = resolution.person_id, data
    record(
        conn, ctx.row.id, "identity", "resolved", person=resolution.person_id, decision=resolution.decision,
        **({"weight": resolution.weight} if resolution.weight is not None else {}),
        **({"review": resolution.review_id} if resolution.review_id else {}),
    )


class Duplicate(Exception):
    """The report was received before under another message id (or from another system)."""

    def __init__(self, first: str) -> None:
        super().__init__(first)
        self.first = first


def detect_duplicate_report(hub: Hub, conn: Connection, ctx: Context) -> None:
    """The same report content for the same case, again: answered, never delivered twice."""
    patterns = hub.dedup_policy.get("duplicate_reports") or ()
    if not any(fnmatchcase(ctx.row.message_type, p) for p in patterns):
        return
    refs = (hub.dedup_policy.get("case_refs") or {}).get(ctx.row.message_type, ())
    digest = _report_digest(
        ctx.row.message_type, ctx.sender, ctx.case.id if ctx.case else None, ctx.message,
        lambda ref: (case.id if (case := chain.case_for_ref(conn, ctx.sender.id, ref)) else None), refs,
    )
    unit = unit_of_work.current(conn)
    first = unit.memo.get(("fingerprint", digest)) if unit is not None else None  # earlier in this batch
    if first is None:
        stored = ("fingerprint-stored", digest)  # read ahead for the batch (prefetch)
        if unit is not None and stored in unit.memo:
            first = unit.memo[stored]
        else:
            first = conn.execute(_SELECT_FINGERPRINT, {"fingerprint": digest}).scalar()
    if first is not None and first != ctx.row.id:
        raise Duplicate(first)
    if first is None:
        unit_of_work.execute(conn, _INSERT_FINGERPRINT, {"fingerprint": digest, "message_id": ctx.row.id, "at": utcnow()})
        if unit is not None:
            unit.memo[("fingerprint", digest)] = ctx.row.id


_CASE_ID_FIELDS = ("case_id", "customer_number", "bg_number")


def _report_digest(
    message_type: str, sender: Partner, case_id: str | None, message: Message,
    case_of: Callable[[str], str | None] | None = None, case_refs: Sequence[str] = (),
) -> str:
    """What makes two reports the same report: sender, test or not, case and content -- not the ids
    that name the case, nor the order of lines that name cases.

    Reports count per sender (partner): the same report again -- under another message id, through
    another channel, from a second installation under the same partner -- is a duplicate, but two
    partners' reports are never compared. Else a provider could learn from its own message's status
    `duplicate` what another provider had reported about a shared client, and a Jobcenter's answer
    with the same content as a provider's proposal would never reach the provider. A test message
    (header `test`) never makes its production twin a duplicate. Cases named inside the body
    (`case_refs`, e.g. an invoice's lines) count by the hub's case, which `case_of` finds for the
    sender's reference."""
    body = {k: v for k, v in message.body_dict().items() if k not in _CASE_ID_FIELDS}
    for path in case_refs:
        _canonical_case_refs(body, path, case_of or (lambda ref: None))
    key = {"type": message_type, "from": sender.id, "test": bool(message.header.test), "case": case_id, "body": body}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _canonical_case_refs(body: dict[str, Any], path: str, case_of: Callable[[str], str | None]) -> None:
    """In place: the sender's case references at `path` (dotted, through lists) replaced by the hub's
    case (or the reference itself where no case is found), agency ids beside them dropped, and every
    list on the way sorted, so that neither a system's own references nor the line order count."""
    *parents, field_name = path.split(".")
    for _, _, node in _ref_nodes(body, parents):
        ref = node.pop(field_name, None) or node.get("customer_number")
        for name in _CASE_ID_FIELDS:
            node.pop(name, None)
        if ref:
            node["case"] = case_of(str(ref)) or f"ref:{ref}"
    _sort_lists(body, parents)


def _ref_nodes(body: dict[str, Any], parents: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(JSON pointer, label for a finding, object) of every object at `parents` below the body, through lists."""
    nodes: list[tuple[str, str, dict[str, Any]]] = [("/body", "body", body)]
    for key in parents:
        found = []
        for at, _, node in nodes:
            value = node.get(key)
            if isinstance(value, list):
                found += [(f"{at}/{to_camel(key)}/{i}", f"{key} {i + 1}", v) for i, v in enumerate(value) if isinstance(v, dict)]
            elif isinstance(value, dict):
                found.append((f"{at}/{to_camel(key)}", key, value))
        nodes = found
    return nodes


def _sort_lists(node: Any, parents: list[str]) -> None:
    """Every list on the way along `parents` in one canonical order, innermost first."""
    if not parents or not isinstance(node, dict):
        return
    value = node.get(parents[0])
    if isinstance(value, list):
        for item in value:
            _sort_lists(item, parents[1:])
        value.sort(key=lambda item: json.dumps(item, sort_keys=True, default=str))
    else:
        _sort_lists(value, parents[1:])


def _case_ref(message: Message) -> str | None:
    """The sender's own reference for the case a message concerns."""
    return getattr(message.body, "case_id", None) or getattr(message.body, "customer_number", None)


def case_chain(hub: Hub, conn: Connection, ctx: Context) -> None:
    """Find (or, for an assignment, open) the case this message concerns; check the sender belongs to it."""
    body = ctx.message.body
    if any(r.requires_case_membership for r in ctx.routes):
        ref = _case_ref(ctx.message)
        unit = unit_of_work.current(conn)
        read_ahead = unit.memo.get(("case", ctx.sender.id, ref)) if unit is not None and unit.reads_current() else None
        ctx.case = read_ahead or (chain.case_for_ref(conn, ctx.sender.id, ref) if ref else None)
        if ctx.case is None:
            pointer = "/body/caseId" if ctx.row.format == "provider-json" else None
            raise Refusal(
                "business-rule",
                "The message concerns a case that is not assigned to the sender",
                [Finding(f"unknown case reference {ref!r}", pointer=pointer)],
            )
    elif any(r.opens_case for r in ctx.routes):
        customer = getattr(body, "customer_number", None)
        if customer:
            ctx.case = chain.open_case(conn, ctx.sender.id, customer, getattr(body, "bg_number", None), ctx.person_id)
    if ctx.case is not None and ctx.sender.role == "provider":
        _check_runs_measure(conn, ctx)
    if ctx.case is not None:
        record(conn, ctx.row.id, "chain", "case", case=ctx.case.id)


def _check_runs_measure(conn: Connection, ctx: Context) -> None:
    """A provider reports on the measures it runs for the case, not on another provider's: a member
    of the case could otherwise send starts, absences or exits for a measure it has nothing to do with."""
    measure = getattr(ctx.message.body, "measure_number", None)
    if not measure:
        return
    unit = unit_of_work.current(conn)
    key = ("runs", ctx.case.id, ctx.sender.id, measure)
    runs = unit.memo.get(key) if unit is not None and unit.reads_current() else None
    if runs is None:
        runs = ctx.sender.id in chain.running(conn, ctx.case.id, measure)
    if not runs:
        pointer = "/body/measureNumber" if ctx.row.format == "provider-json" else None
        raise Refusal(
            "business-rule",
            "The message concerns a measure the sender does not run for this case",
            [Finding(f"measure {measure!r} is not run by {ctx.sender.id} for this case", pointer=pointer)],
        )


def route(hub: Hub, conn: Connection, ctx: Context) -> None:
    """Recipient list: rules x case membership x the recipient's registered purposes."""
    seen: set[str] = set()
    for rule in ctx.routes:
        for partner_id in _targets(hub, conn, ctx, rule):
            partner = hub.partners.get(partner_id)
            if partner is None or partner_id in seen:
                continue
            if rule.purpose not in partner.purposes or ctx.row.message_type not in partner.receives:
                record(conn, ctx.row.id, "routing", "withheld", recipient=partner_id, route=rule.name, purpose=rule.purpose)
                continue
            if rule.opens_case and ctx.case is not None:
                chain.join(conn, ctx.case, partner_id, partner.role)
                measure = getattr(ctx.message.body, "measure_number", None)
                if measure:
                    chain.add_measure(conn, ctx.case, partner_id, measure)
            seen.add(partner_id)
            ctx.recipients.append(Recipient(partner, rule))
    if not ctx.recipients:
        raise Refusal(
            "business-rule",
            "No recipient may receive this message",
            [Finding("the message names no reader that is registered for it, and no case to route by")],
        )
    record(conn, ctx.row.id, "routing", "routed", recipients=[r.partner.id for r in ctx.recipients])


def _targets(hub: Hub, conn: Connection, ctx: Context, rule: Route) -> list[str]:
    if rule.to == "reader":
        reader = ctx.message.header.reader
        partner = hub.partners.get(reader.id) if reader else None
        if partner is None or (rule.reader_role and partner.role != rule.reader_role):
            return []
        return [partner.id]
    if ctx.case is None:
        return []
    if rule.to == "case_owner":
        return [ctx.case.owner]
    members = [p for p in chain.members(conn, ctx.case.id, rule.member_role) if p != ctx.sender.id]
    if rule.same_measure:
        # a provider learns about the measure it runs, not about another provider's measure
        runs = set(chain.running(conn, ctx.case.id, getattr(ctx.message.body, "measure_number", None) or ""))
        members = [p for p in members if p in runs]
    return members


def deliver(hub: Hub, conn: Connection, ctx: Context) -> None:
    """Per recipient: keep only what its purpose allows, translate case ids, encode, store."""
    for recipient in ctx.recipients:
        partner, rule = recipient.partner, recipient.route
        body = hub.purposes.minimise(rule.purpose, ctx.row.message_type, ctx.message.body_dict())
        if body is None:
            record(conn, ctx.row.id, "routing", "withheld", recipient=partner.id, reason="purpose allows no field")
            continue
        body = _translate_ids(hub, conn, ctx, partner, body)
        header = ctx.message.header.model_copy(update={"reader": Party(id=partner.id, name=partner.name)})
        outgoing = Message.build(header.model_dump(mode="json"), body)
        delivery_id = write_delivery(hub, conn, ctx, partner, outgoing, rule.purpose)
        purpose = hub.purposes.purposes[rule.purpose]
        audit(
            conn,
            "hub",
            "transmitted",
            message_id=ctx.row.id,
            delivery_id=delivery_id,
            partner=partner.id,
            purpose=rule.purpose,
            legal_basis=purpose.legal_basis,
            fields=sorted(body),
        )


def _translate_ids(hub: Hub, conn: Connection, ctx: Context, partner: Partner, body: dict[str, Any]) -> dict[str, Any]:
    """Each recipient sees the case under its own reference; agency ids only where its purpose allows."""
    for path in (hub.dedup_policy.get("case_refs") or {}).get(ctx.row.message_type, ()):
        _translate_case_refs(conn, ctx, partner, body, path)
    body.pop("case_id", None)
    if ctx.case is not None:
        if partner.role == "provider":
            body.pop("customer_number", None)
            body.pop("bg_number", None)
            body["case_id"] = chain.local_ref(conn, ctx.case.id, partner.id)
        elif "customer_number" in type(ctx.message.body).model_fields:
            body["customer_number"] = ctx.case.customer_number
            if ctx.case.bg_number:
                body["bg_number"] = ctx.case.bg_number
    if ctx.person_id is not None and partner.role != "provider":
        _translate_person_id(hub, conn, ctx, partner, body)
    return body


def _translate_person_id(hub: Hub, conn: Connection, ctx: Context, partner: Partner, body: dict[str, Any]) -> None:
    """The person the message carries, under the recipient's own id for it (the id cross-reference),
    or a pseudonym the hub issues to the recipient -- never under the sender's id."""
    spec = hub.person_index.subjects.get(ctx.row.message_type) if hub.person_index else None
    field_name = spec["local_id"] if spec else None
    if field_name and field_name in body:
        body[field_name] = hub.person_index.local_id_for(conn, ctx.person_id, partner.id, ctx.person_data or {})


def _translate_case_refs(conn: Connection, ctx: Context, partner: Partner, body: dict[str, Any], path: str) -> None:
    """The case references inside a body (dedup/policy.yaml case_refs, e.g. an invoice's `lines.case_id`),
    rewritten from the sender's reference to the recipient's own; refused, naming every line, where a
    reference is not a case of the sender or the recipient is not a member of that case."""
    *parents, field_name = path.split(".")
    findings = []
    for at, label, node in _ref_nodes(body, parents):
        ref = node.pop(field_name, None) or node.get("customer_number")
        case = chain.case_for_ref(conn, ctx.sender.id, ref) if ref else None
        own = chain.local_ref(conn, case.id, partner.id) if case else None
        if own is None:
            problem = "is not a case of the sender" if case is None else f"is not a case of the recipient {partner.id}"
            pointer = f"{at}/{to_camel(field_name)}" if ctx.row.format == "provider-json" else None
            findings.append(Finding(f"{label}: case reference {ref!r} {problem}", pointer=pointer))
            continue
        node.pop("customer_number", None)
        node.pop("bg_number", None)
        if partner.role == "provider":
            node[field_name] = own
        else:
            node["customer_number"] = case.customer_number
    if findings:
        raise Refusal("business-rule", "The message names cases that are not the sender's or not the recipient's", findings)


STAGES: list[Stage] = [decode, resolve_identities, case_chain, detect_duplicate_report, route, deliver]


# -- writing ------------------------------------------------------------------------------------------
_SELECT_MESSAGE = sa.select(messages).where(messages.c.id == sa.bindparam("id")).with_for_update()
_SELECT_DELIVERIES = sa.select(deliveries.c.id, deliveries.c.recipient, deliveries.c.message_type).where(
    deliveries.c.message_id == sa.bindparam("message_id")
)
_INSERT_DELIVERY = deliveries.insert()
_SET_STATUS = (
    messages.update()
    .where(messages.c.id == sa.bindparam("b_id"))
    .values(status=sa.bindparam("b_status"), updated_at=sa.bindparam("b_at"))
)
_SELECT_FINGERPRINT = sa.select(report_fingerprints.c.message_id).where(report_fingerprints.c.fingerprint == sa.bindparam("fingerprint"))
_INSERT_FINGERPRINT = report_fingerprints.insert()
_SELECT_FINGERPRINTS = sa.select(report_fingerprints.c.fingerprint, report_fingerprints.c.message_id).where(
    report_fingerprints.c.fingerprint.in_(sa.bindparam("digests", expanding=True))
)


def write_delivery(hub: Hub, conn: Connection, ctx: Context, partner: Partner, outgoing: Message, purpose: str) -> str:
    """Encode for the recipient in its format and version, check against its contract, store the delivery."""
    adapter = hub.adapter(partner.format)
    message_type = outgoing.header.message_type
    version = partner.version_for(message_type, hub.registry.versions(message_type, partner.format))
    data, dropped = adapter.encode_checked(outgoing, version, partner.id)
    if dropped or version != outgoing.header.version:
        record(conn, ctx.row.id, "translation", "translated", recipient=partner.id, to_version=version, dropped=dropped)
    return store_delivery(conn, ctx, partner, message_type, version, adapter.media_type, data, purpose)


def store_delivery(
    conn: Connection, ctx: Context, partner: Partner, message_type: str, version: str, media_type: str, data: bytes, purpose: str
) -> str:
    """Queue encoded, checked bytes for the recipient (once: a replay finds the delivery it wrote before)."""
    message_id = ctx.row.id
    existing = ctx.existing.get((partner.id, message_type))
    if existing is not None:  # a replay: the recipient has this already
        record(conn, message_id, "delivery", "exists", recipient=partner.id, delivery_id=existing)
        ctx.written.append((existing, partner.id))
        return existing
    delivery_id = new_id()
    unit_of_work.execute(
        conn,
        _INSERT_DELIVERY,
        {
            "id": delivery_id,
            "message_id": message_id,
            "recipient": partner.id,
            "message_type": message_type,
            "version": version,
            "format": partner.format,
            "content_type": media_type,
            "purpose": purpose,
            "status": "pending",
            "body": data,
            "created_at": utcnow(),
            "acked_at": None,
        },
    )
    ctx.written.append((delivery_id, partner.id))
    record(conn, message_id, "delivery", "queued", recipient=partner.id, delivery_id=delivery_id, message_type=message_type)
    DELIVERIES.labels(partner.id, message_type).inc()
    return delivery_id


def _quittung(hub: Hub, conn: Connection, ctx: Context) -> None:
    """The quittung to the sender, from its template (hub.receipt: the same bytes as the full path)."""
    row, sender = ctx.row, ctx.sender
    message_type = receipt.MESSAGE_TYPE
    version = sender.version_for(message_type, hub.registry.versions(message_type, sender.format))
    values = {
        "message_uuid": uuid.uuid4(), "created_at": utcnow(), "reference_uuid": uuid.UUID(row.message_uuid),
        "received_at": aware(row.created_at), "hub_id": row.id,
    }
    data = hub.part(receipt.Receipts).encode(sender, version, values, test=bool(row.test))
    store_delivery(conn, ctx, sender, message_type, version, hub.adapter(sender.format).media_type, data, "administration")


def _answer(hub: Hub, conn: Connection, ctx: Context, message_type: str, body: dict[str, Any]) -> None:
    """An answer from the hub to the sender (a rueckweisung; the quittung takes `_quittung`'s template),
    in the sender's format and version."""
    sender = ctx.sender
    version = sender.version_for(message_type, hub.registry.versions(message_type, sender.format))
    header = receipt.answer_header(sender, message_type, version, uuid.uuid4(), utcnow(), ctx.row.message_uuid, bool(ctx.row.test))
    write_delivery(hub, conn, ctx, sender, Message.build(header, body), "administration")


def reject(hub: Hub, conn: Connection, ctx: Context, refusal: Refusal, *, answer: bool = True) -> None:
    findings = [{"message": f.message[:4000], "location": f.location[:255] or None} for f in refusal.findings]
    findings = [{k: v for k, v in f.items() if v} for f in findings]
    record(conn, ctx.row.id, "pipeline", "rejected", reason=refusal.kind, detail=refusal.detail, findings=findings)
    if answer and ctx.sender.format in hub.registry.formats:
        _answer(hub, conn, ctx, "administration.rueckweisung.0010", {"reason": refusal.kind, "detail": refusal.detail, "findings": findings})
    set_status(conn, ctx.row.id, "rejected")


def set_status(conn: Connection, message_id: str, status: str) -> None:
    unit_of_work.execute(conn, _SET_STATUS, {"b_id": message_id, "b_status": status, "b_at": utcnow()})


# -- the queue handler ------------------------------------------------------------------------------
_SELECT_MESSAGES = sa.select(messages).where(messages.c.id.in_(sa.bindparam("ids", expanding=True))).with_for_update()


def prefetch(hub: Hub, conn: Connection, items: list[Item]) -> None:
    """Read (and lock) the message rows of a whole batch in one statement; `handle` takes them from
    the unit of work instead of one round trip each."""
    unit = unit_of_work.current(conn)
    ids = [item.payload.get("message_id") for item in items if item.payload.get("message_id")]
    if unit is None or not ids:
        return
    rows = conn.execute(_SELECT_MESSAGES, {"ids": ids}).all()
    for row in rows:
        unit.memo[("row", row.id)] = row
    _read_ahead(hub, conn, unit, rows)


def _read_ahead(hub: Hub, conn: Connection, unit: unit_of_work.UnitOfWork, rows: list[Any]) -> None:
    """Decode the batch's messages and read the cases they name and their report fingerprints in one
    statement each, instead of two round trips per message (on PostgreSQL the worker's main wait).

    Only what cannot change within the batch is taken from here: a case found by reference (until an
    item writes at once, `UnitOfWork.reads_current`; a reference not found is asked again), whether a
    fingerprint was stored before the batch (the batch's own are in the memo). A message that does not
    decode is left to the decode stage, which refuses it with its findings."""
    decoded: list[tuple[Any, Partner, Message, list[Route]]] = []
    for row in rows:
        sender = hub.partners.get(row.sender)
        if row.status != "received" or sender is None:
            continue
        try:
            message = hub.adapter(row.format).decode(row.raw)
        except Exception:  # noqa: BLE001 - the decode stage says what is wrong
            continue
        unit.memo[("decoded", row.id)] = message
        decoded.append((row, sender, message, hub.routes.matching(row.message_type, sender.role)))
    refs = {(sender.id, ref) for _, sender, message, routes in decoded if any(r.requires_case_membership for r in routes) and (ref := _case_ref(message))}
    found = chain.cases_for_refs(conn, sorted(refs))
    for (partner_id, ref), case in found.items():
        unit.memo[("case", partner_id, ref)] = case
    reported = [  # (case, provider, measure) the batch's provider reports name: does the provider run it?
        (case.id, sender.id, measure)
        for _, sender, message, _ in decoded
        if sender.role == "provider" and (measure := getattr(message.body, "measure_number", None))
        and (case := found.get((sender.id, _case_ref(message) or ""))) is not None
    ]
    runs = chain.measures_of(conn, sorted({case_id for case_id, _, _ in reported}))
    for case_id, sender_id, measure in reported:
        unit.memo[("runs", case_id, sender_id, measure)] = (case_id, sender_id, measure) in runs
    patterns = hub.dedup_policy.get("duplicate_reports") or ()
    in_body = hub.dedup_policy.get("case_refs") or {}
    digests = []
    for row, sender, message, routes in decoded:
        if any(r.opens_case for r in routes) or not any(fnmatchcase(row.message_type, p) for p in patterns):
            continue  # no report, or its case is only known once the case chain stage opened it
        if row.message_type in in_body:
            continue  # the cases its lines name are looked up by the stage
        if any(r.requires_case_membership for r in routes):
            case = found.get((sender.id, _case_ref(message) or ""))
            if case is None:
                continue  # refused by the case chain stage before its fingerprint matters
            digests.append(_report_digest(row.message_type, sender, case.id, message))
        else:
            digests.append(_report_digest(row.message_type, sender, None, message))
    if digests:
        stored = dict(conn.execute(_SELECT_FINGERPRINTS, {"digests": digests}).all())
        for digest in digests:
            unit.memo[("fingerprint-stored", digest)] = stored.get(digest)


def handle(hub: Hub, conn: Connection, item: Item) -> list[tuple[str, str]]:
    """Process one message from the pipeline queue; return its deliveries as (id, recipient).

    Idempotent: a redelivered item, or a second item for the same message, is a no-op. The message
    row is locked (FOR UPDATE on PostgreSQL; SQLite has one writer anyway), so two workers holding
    items for the same message take turns and the second finds it processed.
    """
    started = time.perf_counter()
    message_id = item.payload["message_id"]
    unit = unit_of_work.current(conn)
    row = unit.memo.pop(("row", message_id), None) if unit is not None else None
    if row is None:
        row = conn.execute(_SELECT_MESSAGE, {"id": message_id}).first()
    if row is None or row.status != "received" or (unit is not None and ("pipeline", message_id) in unit.memo):
        log.info("pipeline.skip", message_id=message_id, reason="already processed" if row else "unknown message")
        return []
    if unit is not None:  # its status change waits in the unit of work: remember it is done
        unit.memo[("pipeline", message_id)] = True
    with structlog.contextvars.bound_contextvars(message_id=message_id, correlation_id=row.correlation_id):
        sender = hub.partners.get(row.sender)
        if sender is None:
            gone = Partner(id=row.sender, name=row.sender, role="unknown", format="", version="")
            reject(hub, conn, Context(row=row, sender=gone), Refusal("forbidden", f"Sender {row.sender} is no longer registered"), answer=False)
            return []
        ctx = Context(row=row, sender=sender)
        if item.payload.get("replay") or row.updated_at != row.created_at:
            # processed before (a replay): deliveries written then are not written twice
            ctx.existing = {(r.recipient, r.message_type): r.id for r in conn.execute(_SELECT_DELIVERIES, {"message_id": message_id})}
        if hub.settings.fault_pipeline_delay:
            time.sleep(hub.settings.fault_pipeline_delay)  # widen the crash window (tests only)
        try:
            with unit_of_work.savepoint(conn):  # a refusal or duplicate undoes whatever the stages wrote so far
                for stage in STAGES:
                    stage(hub, conn, ctx)
        except Refusal as refusal:
            ctx.written.clear()  # the stages' deliveries were rolled back with them
            reject(hub, conn, ctx, refusal)
            return ctx.written
        except Duplicate as duplicate:
            ctx.written.clear()
            record(conn, row.id, "dedup", "duplicate", of=duplicate.first, reason="same report content received before")
            _quittung(hub, conn, ctx)
            set_status(conn, row.id, "duplicate")
            return ctx.written
        except Exception as exc:  # noqa: BLE001 - permanent failures are answered, passing ones retried
            if errors.passing(exc):
                raise
            # the same message would fail the same way on every attempt: answer the sender now
            # instead of burying the message after five tries with nothing said
            ctx.written.clear()
            cause = errors.describe(exc)
            log.error("pipeline.cannot_pass_on", error=cause, exc_info=exc)
            reject(hub, conn, ctx, Refusal(
                "business-rule", "The hub cannot pass this message on",
                [Finding(f"processing failed: {cause}")],
            ))
            return ctx.written
        _quittung(hub, conn, ctx)
        set_status(conn, row.id, "routed")
    PIPELINE_SECONDS.observe(time.perf_counter() - started)
    return ctx.written


def dead(hub: Hub, conn: Connection, item: Item, reason: str) -> None:
    """A message whose processing failed on every attempt: park it for an operator."""
    message_id = item.payload.get("message_id")
    if message_id:
        record(conn, message_id, "pipeline", "dead", reason=reason)
        set_status(conn, message_id, "dead")
