"""The gauges of /metrics, measured from the store when it is scraped: queue depth and oldest item,
the oldest message waiting for the pipeline, dead letters, outstanding SLA breaches, active alerts.

Measured at scrape rather than by the workers, so any process (an API-only one too) answers them
alike and a worker that died cannot leave stale values behind. A handful of indexed statements: the
active alerts are the instances the workers' last evaluation left open (alert_firings), not a new
evaluation -- a rejection rate reads an hour of messages, which a scrape every few seconds need not.
"""

from __future__ import annotations

import sqlalchemy as sa

from hub.alerts.firing import rules_of
from hub.alerts.kinds import oldest_waiting
from hub.metrics import ALERT_NOTIFICATIONS, ALERTS_ACTIVE, DEAD_LETTERS, PIPELINE_WAITING, QUEUE_DEPTH, QUEUE_OLDEST, SLA_BREACHES_OPEN
from hub.runtime import Hub
from hub.store import db, flows
from hub.store.db import utcnow
from hub.store.tables import alert_firings, alert_notifications, chain_deadlines, dead_letters


def observe(hub: Hub) -> None:
    """Set every store gauge from one reading transaction."""
    now = utcnow()
    with db.read(hub.engine) as conn:
        queues = flows.outbox_depths(conn, now)
        waiting = oldest_waiting(conn)
        dead = conn.execute(sa.select(sa.func.count()).select_from(dead_letters).where(dead_letters.c.replayed_at.is_(None))).scalar_one()
        breaches = conn.execute(
            sa.select(chain_deadlines.c.partner_id, sa.func.count())
            .where(chain_deadlines.c.status == "missed", chain_deadlines.c.met_on.is_(None))
            .group_by(chain_deadlines.c.partner_id)
        ).all()
        unsent = dict(conn.execute(
            sa.select(alert_notifications.c.status, sa.func.count()).where(alert_notifications.c.status.in_(("pending", "failed")))
            .group_by(alert_notifications.c.status)
        ).all())
        firing = dict(conn.execute(
            sa.select(alert_firings.c.alert_id, sa.func.count()).where(alert_firings.c.resolved_at.is_(None)).group_by(alert_firings.c.alert_id)
        ).all())
    QUEUE_DEPTH.clear()
    QUEUE_OLDEST.clear()
    for q in queues:
        QUEUE_DEPTH.labels(q.queue).set(q.depth or 0)
        QUEUE_OLDEST.labels(q.queue).set(max(0.0, q.oldest_age_seconds or 0.0))
    PIPELINE_WAITING.set(max(0.0, (now - waiting).total_seconds()) if waiting else 0.0)
    DEAD_LETTERS.set(dead)
    SLA_BREACHES_OPEN.clear()
    for partner, count in breaches:
        SLA_BREACHES_OPEN.labels(partner).set(count)
    for status in ("pending", "failed"):
        ALERT_NOTIFICATIONS.labels(status).set(unsent.get(status, 0))
    ALERTS_ACTIVE.clear()
    for alert in rules_of(hub).alerts:
        ALERTS_ACTIVE.labels(alert.id, alert.severity).set(firing.get(alert.id, 0))

