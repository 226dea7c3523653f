"""The write side of the message store: a message received, a delivery queued, a message's status.

All go through the transaction's unit of work, so a batch (of accepts in a group commit, of pipeline
items) writes each table once. The read side is `message_store`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.ids import new_id
from hub.store import unit_of_work
from hub.store.db import InsertOnce, utcnow
from hub.store.tables import deliveries, message_cases, messages

_INSERT_MESSAGE = messages.insert()
_INSERT_DELIVERY = deliveries.insert()
_SET_STATUS = (
    messages.update()
    .where(messages.c.id == sa.bindparam("b_id"))
    .values(status=sa.bindparam("b_status"), updated_at=sa.bindparam("b_at"))
)
#: a replayed message finds its case again: the row is there already
_MESSAGE_CASE = InsertOnce(message_cases)
_SELECT_DELIVERIES = sa.select(deliveries.c.id, deliveries.c.recipient, deliveries.c.message_type).where(
    deliveries.c.message_id == sa.bindparam("message_id")
)


def store_message(conn: Connection, row: dict) -> None:
    """A message as ingress checked it (the row of `messages`, raw bytes included). Collected like the
    rest: a resend then fails the group's commit, and the group commits its writes one by one
    (`group_commit`), so this one alone meets the unique key (sender, message UUID)."""
    unit_of_work.execute(conn, _INSERT_MESSAGE, row)


def queue_delivery(
    conn: Connection, message_id: str, recipient: str, message_type: str, version: str, fmt: str, media_type: str, purpose: str, data: bytes
) -> str:
    """A new pending delivery of encoded, checked bytes; its id."""
    delivery_id = new_id()
    unit_of_work.execute(
        conn,
        _INSERT_DELIVERY,
        {
            "id": delivery_id, "message_id": message_id, "recipient": recipient, "message_type": message_type,
            "version": version, "format": fmt, "content_type": media_type, "purpose": purpose, "status": "pending",
            "body": data, "created_at": utcnow(), "acked_at": None,
        },
    )
    return delivery_id


def existing_deliveries(conn: Connection, message_id: str) -> dict[tuple[str, str], str]:
    """(recipient, message type) -> delivery id of what a message already delivered (before a replay)."""
    return {(r.recipient, r.message_type): r.id for r in conn.execute(_SELECT_DELIVERIES, {"message_id": message_id})}


def set_status(conn: Connection, message_id: str, status: str) -> None:
    unit_of_work.execute(conn, _SET_STATUS, {"b_id": message_id, "b_status": status, "b_at": utcnow()})


def concerns_case(conn: Connection, message_id: str, case_id: str) -> None:
    """Note the case a message concerns, for finding a case's messages (collected with the rest)."""
    unit_of_work.execute(conn, _MESSAGE_CASE(conn), {"case_id": case_id, "message_id": message_id})
