"""Message history and audit log: every stage appends to both, in the stage's own transaction.

History answers "what happened to this message" (for senders and operators); the audit log answers
"who transmitted or accessed what, when, on which legal basis" (§ 80 SGB X, for auditors) and
survives the deletion of message bodies.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.engine import Connection

from hub.store import unit_of_work
from hub.store.db import utcnow
from hub.metrics import STAGE_EVENTS
from hub.store.tables import audit_log, message_events

log = structlog.get_logger("hub")

_INSERT_EVENT = message_events.insert()
_INSERT_AUDIT = audit_log.insert()


def record(conn: Connection, message_id: str, stage: str, event: str, **detail: Any) -> None:
    # a prebuilt statement with a parameter dict (no per-call statement construction), collected into
    # the transaction's unit of work where one is open (one executemany per batch)
    unit_of_work.execute(conn, _INSERT_EVENT, {"message_id": message_id, "at": utcnow(), "stage": stage, "event": event, "detail": detail or None})
    STAGE_EVENTS.labels(stage, event).inc()
    log.info(f"{stage}.{event}", message_id=message_id, **detail)


def audit(
    conn: Connection,
    actor: str,
    action: str,
    *,
    message_id: str | None = None,
    delivery_id: str | None = None,
    partner: str | None = None,
    purpose: str | None = None,
    legal_basis: str | None = None,
    **detail: Any,
) -> None:
    unit_of_work.execute(
        conn,
        _INSERT_AUDIT,
        {
            "at": utcnow(),
            "actor": actor,
            "action": action,
            "message_id": message_id,
            "delivery_id": delivery_id,
            "partner": partner,
            "purpose": purpose,
            "legal_basis": legal_basis,
            "detail": detail or None,
        },
    )
