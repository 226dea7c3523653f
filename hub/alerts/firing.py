"""What fires now (`active`, for the console and /metrics), and the firing instances the workers record.

A firing instance is the alert, its subject and its episode: the n-th time the alert fires for that
subject. Its key `alert|subject|episode` is what any number of workers compute alike, so claiming
it is an INSERT of a unique key that exactly one of them wins, in the transaction that also writes
its notifications (one per channel, sent afterwards as from an outbox, hub.alerts.notifier). A worker
killed before the commit leaves nothing, and the next evaluation claims the instance again; once
committed, the instance is notified, however often it is evaluated, until its subject stops firing
(the instance is resolved) and fires again (the next episode).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from hub.alerts.kinds import MEASURES, Found, link_of, text_of
from hub.alerts.rules import Alert, AlertRules
from hub.ids import new_id
from hub.runtime import Hub
from hub.store import db
from hub.store.db import InsertOnce, aware, utcnow
from hub.store.tables import alert_firings, alert_notifications

log = structlog.get_logger("hub.alerts")


@dataclass(frozen=True)
class ActiveAlert:
    """An alert that fires now for one subject."""

    alert_id: str
    kind: str
    severity: str  # info | warning | critical
    subject: str  # "all", a partner, a deadline id, "<owner>:<day>"
    text: str  # ids and counts, a case reference: no personal data
    link: str  # the console page, e.g. /ops/dead or /ops/cases/<case id>
    since: dt.datetime  # when it started: the oldest dead letter, the miss, or when a worker first saw it
    case_id: str | None = None


def _load(hub: Hub) -> AlertRules:
    return AlertRules.load(hub.contracts_dir)


def rules_of(hub: Hub) -> AlertRules:
    """The hub's alerts (contracts/alerts.yaml), loaded and checked once per process."""
    return hub.part(_load)


def _states(hub: Hub) -> dict[str, str | None]:
    return {p.id: (p.profile or {}).get("state") for p in hub.partners.values()}


def evaluate(conn: Connection, hub: Hub, now: dt.datetime) -> list[tuple[Alert, Found]]:
    states = _states(hub)
    return [(alert, found) for alert in rules_of(hub).alerts for found in MEASURES[alert.kind](conn, alert, now, states)]


def _open(conn: Connection) -> dict[tuple[str, str], dict]:
    rows = conn.execute(sa.select(alert_firings).where(alert_firings.c.resolved_at.is_(None)))
    return {(r.alert_id, r.subject): dict(r._mapping) for r in rows}


def active(conn: Connection, hub: Hub, *, now: dt.datetime | None = None) -> list[ActiveAlert]:
    """Every alert of contracts/alerts.yaml that fires now, one entry per subject, most severe first
    (then oldest first). Reads only; `since` is the measured start where the kind has one, else when
    a worker first recorded the instance, else now."""
    now = now or utcnow()
    recorded = _open(conn)
    found = []
    for alert, f in evaluate(conn, hub, now):
        first = recorded.get((alert.id, f.subject))
        since = f.since or (aware(first["since"]) if first else now)
        found.append(ActiveAlert(alert.id, alert.kind, alert.severity, f.subject, text_of(alert, f), link_of(alert, f), since, f.case_id))
    rank = {"critical": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda a: (rank[a.severity], a.since, a.alert_id, a.subject))


_insert_firing = InsertOnce(alert_firings)


def claim(conn: Connection, alert: Alert, found: Found, now: dt.datetime) -> str | None:
    """Record the instance that fires for `found` and its notifications; the firing's id for the one
    worker that wins it, None where it is recorded already (by this or another worker)."""
    same = (alert_firings.c.alert_id == alert.id, alert_firings.c.subject == found.subject)
    if conn.execute(sa.select(alert_firings.c.id).where(*same, alert_firings.c.resolved_at.is_(None))).first():
        return None
    episode = conn.execute(sa.select(sa.func.count()).select_from(alert_firings).where(*same)).scalar_one() + 1
    firing_id = new_id()
    # RETURNING, not rowcount: psycopg answers -1 for an INSERT ... ON CONFLICT DO NOTHING
    won = conn.execute(_insert_firing(conn).returning(alert_firings.c.id), {
        "id": firing_id, "key": f"{alert.id}|{found.subject}|{episode}"[:240], "alert_id": alert.id, "subject": found.subject[:160],
        "episode": episode, "severity": alert.severity, "text": text_of(alert, found)[:500], "link": link_of(alert, found)[:240],
        "case_id": found.case_id, "since": found.since or now, "resolved_at": None,
    }).first() is not None
    if not won:
        return None
    at = time.time()
    conn.execute(alert_notifications.insert(), [
        {"id": new_id(), "firing_id": firing_id, "channel": name, "status": "pending", "attempts": 0, "available_at": at, "created_at": now}
        for name in alert.channels
    ])
    return firing_id


def record(hub: Hub, now: dt.datetime | None = None) -> int:
    """Evaluate every alert; claim the instances that fire and are not yet recorded, each in a
    transaction of its own, and resolve those whose subject no longer fires. How many this worker
    claimed (the others' are not counted)."""
    now = now or utcnow()
    with db.read(hub.engine) as conn:
        firing = evaluate(conn, hub, now)
        recorded = _open(conn)
    claimed = 0
    for alert, found in firing:
        if (alert.id, found.subject) in recorded:
            continue
        with db.write(hub.engine) as conn:
            if claim(conn, alert, found, now):
                claimed += 1
                log.info("alert.firing", alert=alert.id, subject=found.subject, severity=alert.severity)
    still = {(alert.id, found.subject) for alert, found in firing}
    gone = [row["id"] for key, row in recorded.items() if key not in still]
    if gone:
        with db.write(hub.engine) as conn:
            conn.execute(alert_firings.update().where(alert_firings.c.id.in_(gone), alert_firings.c.resolved_at.is_(None)).values(resolved_at=now))
        log.info("alert.resolved", firings=len(gone))
    return claimed
