"""Stage: per recipient, keep only what its purpose allows, translate the ids, encode, check, store.

Each recipient sees the case under its own reference (a provider its pseudonym, an agency its
Kundennummer) and the person under its own id or a pseudonym the hub issues to it -- never the
sender's. The encoded bytes are checked against the recipient's contract before they are stored.
"""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy.engine import Connection

from hub.canonical import Message, Party
from hub.chain import membership
from hub.findings import Finding, Refusal
from hub.metrics import DELIVERIES
from hub.partners import Partner
from hub.pipeline.case_refs import ref_nodes
from hub.pipeline.context import Context
from hub.runtime import Hub
from hub.store import writes
from hub.store.history import audit, record
from hub.transport.base import PARTNER


def deliver(hub: Hub, conn: Connection, ctx: Context) -> None:
    """One delivery per recipient, with an audit entry naming purpose, legal basis and fields."""
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
        audit(
            conn,
            "hub",
            "transmitted",
            message_id=ctx.row.id,
            delivery_id=delivery_id,
            partner=partner.id,
            purpose=rule.purpose,
            legal_basis=hub.purposes.legal_basis(rule.purpose),
            fields=sorted(body),
        )


def push_deliveries(hub: Hub, conn: Connection, written: list[tuple[str, str]], message_id: str) -> None:
    """An outbox row per delivery for a partner that consumes its own AMQP queue, in the transaction
    that wrote the deliveries: the relay publishes it there (hub.transport.relay)."""
    if not hub.transport.pushes_to_partners:
        return
    partners = hub.partners
    for delivery_id, recipient in written:
        partner = partners.get(recipient)
        if partner is not None and partner.delivery == "amqp":
            # a replayed message may queue a push twice: the relay publishes pending deliveries only
            hub.transport.publish(conn, PARTNER, {"delivery_id": delivery_id, "message_id": message_id})


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
    delivery_id = writes.queue_delivery(conn, message_id, partner.id, message_type, version, partner.format, media_type, purpose, data)
    ctx.written.append((delivery_id, partner.id))
    record(conn, message_id, "delivery", "queued", recipient=partner.id, delivery_id=delivery_id, message_type=message_type)
    DELIVERIES.labels(partner.id, message_type).inc()
    return delivery_id


def _translate_ids(hub: Hub, conn: Connection, ctx: Context, partner: Partner, body: dict[str, Any]) -> dict[str, Any]:
    """Each recipient sees the case under its own reference; agency ids only where its purpose allows."""
    for path in (hub.dedup_policy.get("case_refs") or {}).get(ctx.row.message_type, ()):
        _translate_case_refs(hub, conn, ctx, partner, body, path)
    body.pop("case_id", None)
    if ctx.case is not None:
        if partner.role == "provider":
            body.pop("customer_number", None)
            body.pop("bg_number", None)
            body["case_id"] = membership.local_ref(conn, ctx.case.id, partner.id)
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


def _translate_case_refs(hub: Hub, conn: Connection, ctx: Context, partner: Partner, body: dict[str, Any], path: str) -> None:
    """The case references inside a body (dedup/policy.yaml case_refs, e.g. an invoice's `lines.case_id`),
    rewritten from the sender's reference to the recipient's own; refused, naming every line, where a
    reference is not a case of the sender or the recipient is not a member of that case."""
    *parents, field_name = path.split(".")
    findings = []
    for at, label, node in ref_nodes(body, parents):
        ref = node.pop(field_name, None) or node.get("customer_number")
        case = membership.case_for_ref(conn, ctx.sender.id, ref) if ref else None
        own = membership.local_ref(conn, case.id, partner.id) if case else None
        if own is None:
            problem = "is not a case of the sender" if case is None else f"is not a case of the recipient {partner.id}"
            # `at` spells the lines as JSON does: only for a format whose findings carry JSON pointers
            pointer = f"{at}/{to_camel(field_name)}" if hub.adapter(ctx.row.format).pointer(field_name) else None
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
