"""What the hub answers the sender: the quittung (from its template), or a rueckweisung naming every finding."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Connection

from hub.canonical import Message
from hub.findings import Refusal
from hub.metrics import MESSAGES_REJECTED
from hub.pipeline import receipt
from hub.pipeline.context import Context
from hub.pipeline.deliver import store_delivery, write_delivery
from hub.runtime import Hub
from hub.store import writes
from hub.store.db import aware, utcnow
from hub.store.history import record


def quittung(hub: Hub, conn: Connection, ctx: Context) -> None:
    """The quittung to the sender, from its template (`receipt`: the same bytes as the full path)."""
    row, sender = ctx.row, ctx.sender
    message_type = receipt.MESSAGE_TYPE
    version = sender.version_for(message_type, hub.registry.versions(message_type, sender.format))
    values = {
        "message_uuid": uuid.uuid4(), "created_at": utcnow(), "reference_uuid": uuid.UUID(row.message_uuid),
        "received_at": aware(row.created_at), "hub_id": row.id,
    }
    data = hub.part(receipt.Receipts).encode(sender, version, values, test=bool(row.test))
    store_delivery(conn, ctx, sender, message_type, version, hub.adapter(sender.format).media_type, data, "administration")


def answer(hub: Hub, conn: Connection, ctx: Context, message_type: str, body: dict[str, Any]) -> None:
    """An answer from the hub to the sender (a rueckweisung; the quittung takes `quittung`'s template),
    in the sender's format and version."""
    sender = ctx.sender
    version = sender.version_for(message_type, hub.registry.versions(message_type, sender.format))
    header = receipt.answer_header(sender, message_type, version, uuid.uuid4(), utcnow(), ctx.row.message_uuid, bool(ctx.row.test))
    write_delivery(hub, conn, ctx, sender, Message.build(header, body), "administration")


def reject(hub: Hub, conn: Connection, ctx: Context, refusal: Refusal, *, answer_sender: bool = True) -> None:
    """The message is refused: history, a rueckweisung to the sender (where its format has one), status."""
    findings = [{"message": f.message[:4000], "location": f.location[:255] or None} for f in refusal.findings]
    findings = [{k: v for k, v in f.items() if v} for f in findings]
    record(conn, ctx.row.id, "pipeline", "rejected", reason=refusal.kind, detail=refusal.detail, findings=findings)
    if answer_sender and ctx.sender.format in hub.registry.formats:
        answer(hub, conn, ctx, "administration.rueckweisung.0010", {"reason": refusal.kind, "detail": refusal.detail, "findings": findings})
    writes.set_status(conn, ctx.row.id, "rejected")
    MESSAGES_REJECTED.labels(ctx.row.sender, ctx.row.message_type, refusal.kind).inc()
