"""Stage: a person's master data merged field by field, so that no partner's change undoes another's;
and the operator's decision of a data conflict, forwarded to the partners that hold another value.

The stage runs after routing, for the message types of `master_data` in contracts/dedup/policy.yaml
(person.stammdaten), once the person is resolved. It judges what the sender states against the
field-level versions (`hub.dedup.master_data`), then replaces the message's body by the merged
record: the hub's current value of every field, the sender's accepted changes included and a field in
conflict at its earlier value. So a recipient gets the other side's change without losing its own,
and a concurrent change waits for an operator instead of overwriting anything. Every other message
passes untouched (one dictionary lookup), and so does a test message (`test="true"`): it is never
acted upon, so it must not change the versions production messages are judged against.
"""

from __future__ import annotations

import hashlib
import json
import types
import uuid
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy.engine import Connection

from hub.canonical import Message
from hub.dedup import master_data
from hub.ids import new_id
from hub.partners import Partner
from hub.pipeline.context import Context, Recipient
from hub.pipeline.deliver import deliver, push_deliveries
from hub.routing.rules import Route
from hub.runtime import Hub
from hub.schemas.translator import put_path
from hub.store import writes
from hub.store.db import utcnow
from hub.store.history import audit, record

#: the hub as the author of the messages that forward an operator's decision
HUB = Partner(id="hub", name="CaseChain Hub", role="hub", format="", version="")


def _spec(hub: Hub, message_type: str) -> dict[str, Any] | None:
    return (hub.dedup_policy.get("master_data") or {}).get(message_type)


def merge_master_data(hub: Hub, conn: Connection, ctx: Context) -> None:
    """Judge the sender's master data field by field and forward the merged record."""
    spec = _spec(hub, ctx.row.message_type) if ctx.person_id is not None else None
    if spec is None or ctx.message.header.test:
        return  # a test message is never acted upon: it passes as sent and changes no version
    roots, base_field = spec["fields"], spec.get("base")
    body = ctx.message.body_dict()
    book = master_data.ledger(conn, ctx.person_id)
    replay = master_data.applied(conn, ctx.row.id)  # judged before: a replay judges and notes nothing twice
    if not replay:
        stated = master_data.leaves(body, roots)
        holding = master_data.holding(conn, ctx.person_id, ctx.sender.id, ctx.row.message_type)
        judged = book.judge(conn, ctx.sender.id, ctx.row.id, stated, body.get(base_field) if base_field else None, holding, ctx.row.message_type)
        master_data.exchanged(conn, ctx.person_id, ctx.sender.id, ctx.row.id, "received", judged.holding)
        record(
            conn, ctx.row.id, "master-data", "merged", revision=book.revision, changed=judged.changed,
            **({"held": judged.held, "review": judged.conflicts} if judged.held else {}),
        )
    merged = _record(hub, book, body, base_field, [r.partner for r in ctx.recipients], ctx.row.message_type)
    ctx.message = Message.build(ctx.message.header, merged)
    subject = hub.person_index.subject(ctx.row.message_type, merged, ctx.sender.role) if hub.person_index else None
    if subject is not None:
        ctx.person_data = subject[1]
    if not replay:
        delivered = master_data.leaves(merged, roots)
        for recipient in ctx.recipients:
            master_data.exchanged(conn, ctx.person_id, recipient.partner.id, ctx.row.id, "delivered", delivered)


def _record(hub: Hub, book: master_data.Ledger, body: dict[str, Any], base_field: str | None, recipients: list[Partner], message_type: str) -> dict[str, Any]:
    """`body` with every versioned field at the hub's value (every field a sender stated has one), and
    the current revision where one of the recipients' contract versions can carry it (else a 1.0
    recipient's history would note its drop)."""
    for name, value in book.values().items():
        put_path(body, name, value)
    if base_field:
        body.pop(base_field, None)
        if any(_carries(hub, p, message_type, base_field) for p in recipients):
            body[base_field] = book.revision
    return body


def _carried(hub: Hub) -> dict[tuple[str, str, str, str], bool]:
    return {}


def _carries(hub: Hub, partner: Partner, message_type: str, name: str) -> bool:
    """Whether the contract version `partner` receives `message_type` in has the body field `name`."""
    version = partner.version_for(message_type, hub.registry.versions(message_type, partner.format))
    cache, key = hub.part(_carried), (partner.format, message_type, version, name)
    found = cache.get(key)
    if found is None:
        contract = hub.registry.get(message_type, version, partner.format)
        found = cache[key] = name in hub.adapter(partner.format).paths(contract)
    return found


# -- the operator's decision ------------------------------------------------------------------------------
def resolve_conflict(hub: Hub, conn: Connection, conflict_id: str, pick: str, actor: str) -> dict[str, Any]:
    """Apply the operator's pick (a or b) of a data conflict and forward the merged record, as a message
    of the hub, to every partner of the person that holds another value of the field (the side that
    lost). Refused, with nothing changed, for an unknown conflict, one resolved already, or a pick
    that is neither a nor b."""
    message_id = new_id()
    book, conflict, value = master_data.decide(conn, conflict_id, pick, actor, message_id)
    message_type = conflict.detail.get("message_type")
    spec = _spec(hub, message_type) if message_type else None
    if spec is None:
        raise RuntimeError(f"data conflict {conflict_id} names no master data message type ({message_type!r})")
    routed = [(partner, rule) for partner in _holding_another(hub, conn, book.person_id, message_type, conflict.field, value)
              if (rule := _route_to(hub, message_type, partner)) is not None]
    body = _record(hub, book, {}, spec.get("base"), [p for p, _ in routed], message_type)
    row = _hub_message(conn, message_id, message_type, _current(hub, message_type), conflict_id, body)
    record(conn, message_id, "master-data", "resolved", review=conflict_id, field=conflict.field, chosen=pick, by=actor, recipients=[p.id for p, _ in routed])
    header = {
        "message_uuid": row["message_uuid"], "message_type": message_type, "created_at": row["created_at"].isoformat(),
        "author": {"id": HUB.id, "name": HUB.name}, "version": row["version"],
    }
    written: list[tuple[str, str]] = []
    for partner, rule in routed:
        # the person under the recipient's own id: it exchanged the person's master data, so it has one
        own = {**body, _local_field(hub, message_type): hub.person_index.local_id_for(conn, book.person_id, partner.id, {})}
        outgoing = Message.build({**header, "purpose": rule.purpose, "legal_basis": hub.purposes.purposes[rule.purpose].legal_basis}, own)
        ctx = Context(row=types.SimpleNamespace(**row), sender=HUB, message=outgoing, recipients=[Recipient(partner, rule)], person_id=book.person_id)
        subject = hub.person_index.subject(message_type, outgoing.body_dict(), partner.role)
        ctx.person_data = subject[1] if subject else None
        deliver(hub, conn, ctx)
        written += ctx.written
        master_data.exchanged(conn, book.person_id, partner.id, message_id, "delivered", master_data.leaves(body, spec["fields"]))
    push_deliveries(hub, conn, written, message_id)
    forwarded = [p.id for p, _ in routed]
    audit(conn, actor, "conflict-resolved", message_id=message_id, conflict=conflict_id, person=book.person_id, field=conflict.field, chosen=pick, forwarded_to=forwarded)
    return {
        **master_data.conflict_view(conflict), "status": "resolved", "chosen": pick, "value": value, "decided_by": actor,
        "message_id": message_id, "revision": book.revision, "forwarded_to": forwarded,
    }


def _local_field(hub: Hub, message_type: str) -> str:
    """The body field that names the person under the recipient's own id (the subject's local id)."""
    return hub.person_index.subjects[message_type]["local_id"]


def _holding_another(hub: Hub, conn: Connection, person_id: str, message_type: str, name: str, value: Any) -> list[Partner]:
    """The partners that exchanged the person's master data and hold another value of the field."""
    return [
        partner for partner_id in master_data.partners_of(conn, person_id)
        if (partner := hub.partners.get(partner_id)) is not None
        and master_data.holding(conn, person_id, partner_id, message_type).get(name, _NONE) != value
    ]


def _hub_message(conn: Connection, message_id: str, message_type: str, version: str, conflict_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The message row of the hub's own message that forwards a decision: its history and deliveries
    hang off it like any message's (`hub messages show ID`). No raw bytes: no partner sent it."""
    now = utcnow()
    row = {
        "id": message_id, "sender": HUB.id, "message_uuid": str(uuid.uuid4()), "message_type": message_type, "version": version,
        "format": "canonical", "status": "routed", "correlation_id": conflict_id, "reference_uuid": None, "test": False,
        "content_hash": hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest(), "raw": None, "created_at": now, "updated_at": now,
    }
    writes.store_message(conn, row)
    return row


_NONE: Any = object()


def _current(hub: Hub, message_type: str) -> str:
    """The type's current contract version (the header of the hub's own message names it)."""
    versions = hub.registry.types[message_type].versions
    return next((v for v, meta in versions.items() if meta.get("status") == "current"), list(versions)[-1])


def _route_to(hub: Hub, message_type: str, partner: Partner) -> Route | None:
    """The route by which `partner` receives master data of this type (its purpose), if it may."""
    if message_type not in partner.receives:
        return None
    return next(
        (r for r in hub.routes.routes if fnmatchcase(message_type, r.message_type) and r.to == "reader"
         and r.reader_role in (None, partner.role) and r.purpose in partner.purposes),
        None,
    )
