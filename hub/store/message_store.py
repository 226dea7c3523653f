"""The message store's read side and the pull inbox: what senders, recipients and operators see.

Visibility is the partner's own: a sender sees its messages, a recipient its deliveries, an operator
everything; anything else is answered as "not found", so an error never tells one partner whether
another partner's message exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.store.db import aware, utcnow
from hub.findings import Refusal
from hub.store.history import audit, in_words, record
from hub.store.tables import dead_letters, deliveries, message_events, messages

if TYPE_CHECKING:  # partner profiles sit above the store: the views only read a partner's attributes
    from hub.partners import Partner

CONTENT_TYPES = ("administration.quittung.0020", "administration.rueckweisung.0010")


def message_view(conn: Connection, message_id: str, viewer: Partner | None) -> dict[str, Any]:
    """A message's status, history and deliveries as `viewer` may see them (None: the operator's CLI)."""
    row = conn.execute(sa.select(messages).where(messages.c.id == message_id)).first()
    sees_all = viewer is None or viewer.is_operator
    if row is None and sees_all:
        raise Refusal("not-found", f"There is no message with id {message_id}")
    if row is None or (not sees_all and row.sender != viewer.id):
        # a partner is not told whether another partner's message of that id exists
        raise Refusal("not-found", f"No message {message_id} is visible to you")
    events = conn.execute(
        sa.select(message_events).where(message_events.c.message_id == message_id).order_by(message_events.c.id)
    ).all()
    outgoing = conn.execute(
        sa.select(
            deliveries.c.id, deliveries.c.recipient, deliveries.c.message_type, deliveries.c.status,
            deliveries.c.created_at, deliveries.c.acked_at,
        ).where(deliveries.c.message_id == message_id).order_by(deliveries.c.id)
    ).all()
    # the sender may know where its own message was delivered; a partner that was only considered
    # (withheld) is not named to it
    named = {d.recipient for d in outgoing}
    return {
        "id": row.id,
        "message_uuid": row.message_uuid,
        "message_type": row.message_type,
        "version": row.version,
        "format": row.format,
        "sender": row.sender,
        "status": row.status,
        "correlation_id": row.correlation_id,
        "received_at": aware(row.created_at).isoformat(),
        "updated_at": aware(row.updated_at).isoformat(),
        "history": [
            {"at": aware(e.at).isoformat(), "stage": e.stage, "event": e.event, "detail": {"text": in_words(e.stage, e.event, detail), **detail}}
            for e in events
            if (detail := _detail_for(conn, e, viewer, named)) is not _HIDDEN
        ],
        "deliveries": [
            {
                "id": d.id,
                "recipient": d.recipient,
                "message_type": d.message_type,
                "status": d.status,
                "created_at": aware(d.created_at).isoformat(),
                **({"acknowledged_at": aware(d.acked_at).isoformat()} if d.acked_at else {}),
            }
            for d in outgoing
        ],
    }


_HIDDEN: Any = object()
#: events only operators see: they tell whether the hub (i.e. another partner) already knew the
#: person, under which hub ids, which other partners a case has, and which were considered and withheld
_OPERATOR_ONLY = {("identity", "resolved"), ("chain", "case"), ("routing", "withheld")}
#: detail fields that name another partner, the hub's internal ids, or where a delivery went
_PARTNER_FIELDS = {"recipient", "recipients", "queue", "route", "routes", "person", "review", "weight", "case"}


def _detail_for(conn: Connection, event: Any, viewer: Partner | None, named: set[str]) -> Any:
    """An event's detail (a dict, maybe empty) as `viewer` may see it; _HIDDEN if not at all.

    A sender sees what happened to its message, never what the hub knows from other partners: a
    recipient is named if its message was delivered to it (`named`: the recipients of the message's
    deliveries, which include the sender's own quittung), else it is "partner"; whether a person was
    already in the index stays hidden, and a duplicate's first message is shown only if that was the
    sender's own."""
    detail = dict(event.detail or {})
    if viewer is None or viewer.is_operator:
        return detail
    if (event.stage, event.event) in _OPERATOR_ONLY:
        return _HIDDEN
    shown = {k: v for k, v in detail.items() if k not in _PARTNER_FIELDS}
    if "recipient" in detail:
        shown["recipient"] = detail["recipient"] if detail["recipient"] in named else "partner"
    if "recipients" in detail:
        shown["recipients"] = [r if r in named else "partner" for r in detail["recipients"]]
    if "of" in detail:
        first = conn.execute(sa.select(messages.c.sender).where(messages.c.id == detail["of"])).scalar()
        if first != viewer.id:
            del shown["of"]
    return shown


#: a purpose code -> the legal basis of a transmission for it (hub.routing.purposes.PurposeProfiles.legal_basis)
LegalBasis = Callable[[str], str]


def inbox(
    conn: Connection, partner: Partner, limit: int, legal_basis_of: LegalBasis, encoding_of: Callable[[str], str] = lambda fmt: "utf-8"
) -> list[dict[str, Any]]:
    """The caller's pending deliveries, oldest first. A body is text in its format's encoding
    (`encoding_of`: a municipal CSV record is ISO-8859-15), handed out as JSON text or, for JSON
    deliveries, as the parsed document. Handing them out is a transmission: audited once per
    purpose, with the deliveries' ids and the purpose's legal basis (`legal_basis_of`)."""
    rows = conn.execute(
        sa.select(deliveries)
        .where(deliveries.c.recipient == partner.id, deliveries.c.status == "pending")
        .order_by(deliveries.c.id)
        .limit(limit)
    ).all()
    items = []
    for d in rows:
        body: Any = d.body.decode(encoding_of(d.format))
        if d.content_type == "application/json":
            body = json.loads(body)
        items.append(
            {
                "id": d.id,
                "message_id": d.message_id,
                "message_type": d.message_type,
                "version": d.version,
                "format": d.format,
                "content_type": d.content_type,
                "created_at": aware(d.created_at).isoformat(),
                "body": body,
            }
        )
    by_purpose: dict[str, list[str]] = {}
    for d in rows:
        by_purpose.setdefault(d.purpose, []).append(d.id)
    for purpose, ids in by_purpose.items():
        audit(conn, partner.id, "inbox-read", partner=partner.id, purpose=purpose, legal_basis=legal_basis_of(purpose), deliveries=ids)
    return items


def acknowledge(conn: Connection, partner: Partner, delivery_id: str, legal_basis_of: LegalBasis) -> dict[str, Any]:
    """Mark a delivery as received by its recipient. Idempotent: a second ack changes nothing.

    Audited last (on PostgreSQL the audit chain's head stays locked from its entry to the commit)."""
    row = conn.execute(
        sa.select(deliveries).where(deliveries.c.id == delivery_id, deliveries.c.recipient == partner.id)
    ).first()
    if row is None:
        raise Refusal("not-found", f"No delivery {delivery_id} is addressed to you")
    if row.status == "acknowledged":
        return {"id": row.id, "status": "acknowledged", "acknowledged_at": aware(row.acked_at).isoformat()}
    now = utcnow()
    conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(status="acknowledged", acked_at=now))
    record(conn, row.message_id, "delivery", "acknowledged", recipient=partner.id, delivery_id=delivery_id, message_type=row.message_type)
    if row.message_type not in CONTENT_TYPES:
        open_ = conn.execute(
            sa.select(sa.func.count())
            .select_from(deliveries)
            .where(
                deliveries.c.message_id == row.message_id,
                deliveries.c.status != "acknowledged",
                deliveries.c.message_type.not_in(CONTENT_TYPES),
            )
        ).scalar_one()
        if open_ == 0:
            conn.execute(messages.update().where(messages.c.id == row.message_id).values(status="delivered", updated_at=now))
            record(conn, row.message_id, "delivery", "delivered")
    audit(
        conn, partner.id, "acknowledged", message_id=row.message_id, delivery_id=delivery_id, partner=partner.id,
        purpose=row.purpose, legal_basis=legal_basis_of(row.purpose),
    )
    return {"id": row.id, "status": "acknowledged", "acknowledged_at": now.isoformat()}


def replay(conn: Connection, message_id: str, operator: str, transport: Any) -> dict[str, Any]:
    """Push a message's dead deliveries again -- those the broker refused until the relay gave them
    up, whatever the message's status (a quittung to a duplicate's sender, a rueckweisung can die
    too) -- or, where there are none, run the message through the pipeline again (deliveries already
    written are not written twice)."""
    row = conn.execute(sa.select(messages.c.id, messages.c.status).where(messages.c.id == message_id)).first()
    if row is None:
        raise Refusal("not-found", f"There is no message with id {message_id}")
    parked = _dead_deliveries(conn, message_id)
    if parked:
        return _replay_deliveries(conn, row, parked, operator, transport)
    if row.status in ("routed", "delivered", "duplicate"):
        raise Refusal("conflict", f"Message {message_id} was processed ({row.status}); nothing to replay")
    conn.execute(messages.update().where(messages.c.id == message_id).values(status="received", updated_at=utcnow()))
    conn.execute(dead_letters.update().where(dead_letters.c.message_id == message_id, dead_letters.c.replayed_at.is_(None)).values(replayed_at=utcnow()))
    record(conn, message_id, "operations", "replayed", by=operator, previous_status=row.status)
    audit(conn, operator, "replayed", message_id=message_id)
    transport.publish(conn, "pipeline", {"message_id": message_id, "replay": True})
    return {"id": message_id, "status": "received"}


def _dead_deliveries(conn: Connection, message_id: str) -> list[Any]:
    """The message's dead letters that are deliveries the relay gave up (their payload names one)."""
    rows = conn.execute(
        sa.select(dead_letters.c.id, dead_letters.c.queue, dead_letters.c.payload).where(
            dead_letters.c.message_id == message_id, dead_letters.c.replayed_at.is_(None)
        )
    ).all()
    return [r for r in rows if isinstance(r.payload, dict) and r.payload.get("delivery_id")]


def _replay_deliveries(conn: Connection, row: Any, parked: list[Any], operator: str, transport: Any) -> dict[str, Any]:
    """The message's dead deliveries back to `pending`, each queued for its push again."""
    now = utcnow()
    for p in parked:
        conn.execute(deliveries.update().where(deliveries.c.id == p.payload["delivery_id"], deliveries.c.status == "dead").values(status="pending"))
        transport.publish(conn, p.queue, p.payload)
    conn.execute(dead_letters.update().where(dead_letters.c.id.in_([p.id for p in parked])).values(replayed_at=now))
    ids = [p.payload["delivery_id"] for p in parked]
    record(conn, row.id, "operations", "replayed", by=operator, deliveries=ids)
    audit(conn, operator, "replayed", message_id=row.id, deliveries=ids)
    return {"id": row.id, "status": row.status, "deliveries": ids}


def raw_content(conn: Connection, message_id: str) -> tuple[str, bytes | None]:
    """A message's bytes exactly as received, with its format (None once retention deleted them)."""
    row = conn.execute(sa.select(messages.c.format, messages.c.raw).where(messages.c.id == message_id)).first()
    if row is None:
        raise Refusal("not-found", f"There is no message with id {message_id}")
    return row.format, row.raw
