"""Rows of the message store written directly, at chosen times: what the console's queries read,
without running a month of traffic through the pipeline."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

import sqlalchemy as sa

from hub.ids import _b32
from hub.store.tables import case_members, cases, dead_letters, deliveries, message_cases, message_events, messages

UTC = dt.timezone.utc


def id_at(t: dt.datetime) -> str:
    """A message id issued at `t` (a ULID)."""
    return _b32(int(t.timestamp() * 1000), 10) + _b32(int.from_bytes(os.urandom(10), "big"), 16)


@dataclass
class Seeded:
    id: str
    sender: str
    message_type: str
    status: str
    at: dt.datetime
    recipient: str | None = None
    case_id: str | None = None
    outcomes: list[tuple[str, dt.datetime]] = field(default_factory=list)


def message(
    conn: sa.Connection, sender: str, message_type: str, at: dt.datetime, status: str = "routed", recipient: str | None = None,
    case_id: str | None = None, outcomes: list[tuple[str, dt.datetime]] | None = None,
) -> Seeded:
    """A message received at `at` with its history: received, then each (outcome event, time)."""
    mid = id_at(at)
    conn.execute(messages.insert().values(
        id=mid, sender=sender, message_uuid=mid, message_type=message_type, version="1.0", format="provider-json", status=status,
        correlation_id=mid, test=False, content_hash=mid, raw=b"{}", created_at=at, updated_at=at,
    ))
    history = [("ingress", "received", at), ("ingress", "validated", at)]
    stage = {"routed": "routing", "delivered": "delivery", "rejected": "pipeline", "duplicate": "dedup", "dead": "pipeline"}
    history += [(stage[o], o, t) for o, t in outcomes or []]
    conn.execute(message_events.insert(), [{"message_id": mid, "at": t, "stage": s, "event": e, "detail": None} for s, e, t in history])
    if recipient is not None:
        conn.execute(deliveries.insert().values(
            id=id_at(at), message_id=mid, recipient=recipient, message_type=message_type, version="1.0", format="agency-xml",
            content_type="application/xml", purpose="reporting", status="pending", body=b"<x/>", created_at=at,
        ))
    if case_id is not None:
        conn.execute(message_cases.insert().values(case_id=case_id, message_id=mid))
    return Seeded(mid, sender, message_type, status, at, recipient, case_id, list(outcomes or []))


def case(conn: sa.Connection, case_id: str, owner: str, customer_number: str, members: dict[str, str]) -> None:
    """A case with its owner's reference (the Kundennummer) and each member's own."""
    now = dt.datetime.now(UTC)
    conn.execute(cases.insert().values(id=case_id, owner=owner, customer_number=customer_number, created_at=now))
    refs = {owner: customer_number, **members}
    conn.execute(case_members.insert(), [
        {"case_id": case_id, "partner_id": p, "role": "owner" if p == owner else "provider", "local_ref": r, "joined_at": now} for p, r in refs.items()
    ])


def dead_letter(conn: sa.Connection, message_id: str, at: dt.datetime, reason: str = "gave up after 5 attempts", queue: str = "pipeline",
                replayed_at: dt.datetime | None = None) -> int:
    return conn.execute(dead_letters.insert().values(
        queue=queue, payload={"message_id": message_id}, attempts=5, reason=reason, message_id=message_id, at=at, replayed_at=replayed_at,
    )).inserted_primary_key[0]
