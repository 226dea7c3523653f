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
    def __init__(self, hub: Hub, batch: int = 100) -> None:
        self.hub = hub
        self.batch = batch

    def deliver(self) -> int:
        """Send the notifications that are due (at most `batch`, each tried once); how many this worker sent."""
        sent, tried = 0, set()
        while len(tried) < self.batch and (row := self._lease(tried)) is not None:
            tried.add(row.id)
            sent += self._send(row)
        return sent

    def _lease(self, tried: set[str]) -> sa.Row | None:
        """The next due notification, leased to this worker for HUB_VISIBILITY_TIMEOUT seconds: one at
        a time, right before its send, so no lease runs out while others of a batch are sent."""
        while True:
            now = time.time()
            with db.write(self.hub.engine) as conn:
                query = _DUE.where(_n.id.not_in(tried)) if tried else _DUE
                row = conn.execute(query.with_for_update(skip_locked=True, of=alert_notifications), {"now": now, "limit": 1}).first()
                if row is None:
                    return None
                taken = conn.execute(
                    alert_notifications.update()
                    .where(_n.id == row.id, _n.status == "pending", _n.available_at == row.available_at)
                    .values(available_at=now + self.hub.settings.visibility_timeout, attempts=_n.attempts + 1)
                ).rowcount
            if taken:
                return row

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
            first = conn.execute(alert_notifications.update().where(_n.id == row.id, _n.status == "pending").values(
                status="sent", sent_at=utcnow(), last_error=None)).rowcount
            if not first:  # its lease ran out and another worker sent it too (the same id): recorded once
                return False
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
            conn.execute(alert_notifications.update().where(_n.id == row.id, _n.status == "pending").values(**values))
        if attempts >= MAX_ATTEMPTS:
            log.error("alert.notification_given_up", alert=row.alert_id, channel=row.channel, notification=row.id, attempts=attempts, error=error)
        else:
            log.warning("alert.notification_failed", alert=row.alert_id, channel=row.channel, notification=row.id, attempts=attempts, error=error)
