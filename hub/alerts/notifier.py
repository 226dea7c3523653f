"""Sending the recorded notifications: an outbox with at-least-once delivery to idempotent receivers.

A worker leases a due notification (a conditional UPDATE that one worker wins; the lease is
HUB_VISIBILITY_TIMEOUT, like a queue item's), sends it, and records it sent in a second transaction
with its audit entry. Killed between the send and the record, the lease runs out and a worker sends
it again -- with the same id as webhook-id and Message-ID, so the receiver keeps one. A send that
fails is tried again after an exponential backoff with jitter (HUB_ALERT_RETRY_SECONDS, doubled per
attempt, at most ten minutes); after MAX_ATTEMPTS it is given up (status `failed`, logged).
"""

from __future__ import annotations

import time

import sqlalchemy as sa
import structlog

from hub.alerts.channels import Note, SendFailed, send
from hub.alerts.firing import rules_of
from hub.runtime import Hub
from hub.store import db
from hub.store.db import aware, utcnow
from hub.store.history import audit
from hub.store.tables import alert_firings, alert_notifications
from hub.transport.base import backoff

log = structlog.get_logger("hub.alerts")

MAX_ATTEMPTS = 10
#: seconds the backoff grows to at most
RETRY_CAP = 600.0

_n, _f = alert_notifications.c, alert_firings.c
_DUE = (
    sa.select(_n.id, _n.channel, _n.attempts, _n.available_at, _f.alert_id, _f.severity, _f.subject, _f.text, _f.link, _f.since, _f.case_id, _f.episode)
    .join(alert_firings, alert_firings.c.id == _n.firing_id)
    .where(_n.status == "pending", _n.available_at <= sa.bindparam("now"))
    .order_by(_n.available_at, _n.id)
    .limit(sa.bindparam("limit"))
)


class Notifier:
    def __init__(self, hub: Hub, batch: int = 20) -> None:
        self.hub = hub
        self.batch = batch

    def deliver(self) -> int:
        """Send every notification that is due; how many this worker sent."""
        sent = 0
        while True:
            leased = self._lease()
            sent += sum(self._send(row) for row in leased)
            if len(leased) < self.batch:
                return sent

    def _lease(self) -> list[sa.Row]:
        now = time.time()
        lease = now + self.hub.settings.visibility_timeout
        with db.write(self.hub.engine) as conn:
            due = conn.execute(_DUE.with_for_update(skip_locked=True, of=alert_notifications), {"now": now, "limit": self.batch}).all()
            won = []
            for row in due:
                taken = conn.execute(
                    alert_notifications.update()
                    .where(_n.id == row.id, _n.status == "pending", _n.available_at == row.available_at)
                    .values(available_at=lease, attempts=_n.attempts + 1)
                ).rowcount
                if taken:
                    won.append(row)
        return won

    def _send(self, row: sa.Row) -> bool:
        hub = self.hub
        channel = rules_of(hub).channels.get(row.channel)
        note = Note(row.id, row.alert_id, row.severity, row.subject, row.text, hub.settings.console_url.rstrip("/") + row.link,
                    aware(row.since), row.case_id, row.episode)
        try:
            if channel is None:
                raise SendFailed(f"channel {row.channel!r} is no longer in contracts/alerts.yaml")
            send(channel, note, hub.settings)
        except SendFailed as exc:
            self._failed(row, str(exc))
            return False
        if hub.settings.fault_alert_delay > 0:
            time.sleep(hub.settings.fault_alert_delay)  # crash tests: a kill -9 lands between the send and its record
        with db.write(hub.engine) as conn:
            conn.execute(alert_notifications.update().where(_n.id == row.id).values(status="sent", sent_at=utcnow(), last_error=None))
            audit(conn, "hub", "alert-notified", alert=row.alert_id, subject=row.subject, channel=row.channel, via=channel.kind,
                  notification=row.id, case=row.case_id)
        log.info("alert.notified", alert=row.alert_id, subject=row.subject, channel=row.channel, notification=row.id)
        return True

    def _failed(self, row: sa.Row, error: str) -> None:
        attempts = row.attempts + 1
        values: dict = {"last_error": error, "available_at": time.time() + backoff(attempts, self.hub.settings.alert_retry_seconds, RETRY_CAP)}
        if attempts >= MAX_ATTEMPTS:
            values["status"] = "failed"
        with db.write(self.hub.engine) as conn:
            conn.execute(alert_notifications.update().where(_n.id == row.id).values(**values))
        if attempts >= MAX_ATTEMPTS:
            log.error("alert.notification_given_up", alert=row.alert_id, channel=row.channel, notification=row.id, attempts=attempts, error=error)
        else:
            log.warning("alert.notification_failed", alert=row.alert_id, channel=row.channel, notification=row.id, attempts=attempts, error=error)
