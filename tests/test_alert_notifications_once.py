"""Alert notifications in the workers: nothing lost, nothing twice in effect -- a worker killed with
kill -9 between sending a notification and recording it leaves that one to be sent again with the
same id (the receivers keep one: the webhook-id, the Message-ID), and competing workers after it
send every other notification once. On both backends (SQLite with the embedded queue; PostgreSQL
with RabbitMQ)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import sqlalchemy as sa

from hub.runtime import Hub
from hub.store import db
from hub.store.tables import alert_firings, alert_notifications, audit_log
from tests.alert_receivers import MailBox, WebhookReceiver
from tests.conftest import CONTRACTS, wait_until
from tests.integration.conftest import WorkerProcess
from tests.test_alerts import missed_deadline

N = 10  # missed deadlines: one firing each, notified by mail and by webhook

ALERTS = """\
version: 1
channels:
  mail: {mail: [betrieb@hub.example]}
  hook: {webhook: {url_env: HUB_ALERT_WEBHOOK_URL, secret_env: HUB_ALERT_WEBHOOK_SECRET}}
alerts:
  - id: deadline-missed
    kind: sla_breach
    severity: warning
    channels: [mail, hook]
"""


def contracts_with_alerts(tmp_path: Path) -> Path:
    target = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, target)
    (target / "alerts.yaml").write_text(textwrap.dedent(ALERTS), encoding="utf-8")
    return target


def sent(hub: Hub) -> int:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(alert_notifications).where(alert_notifications.c.status == "sent")).scalar_one()


def test_a_worker_killed_while_notifying_loses_none_and_competing_workers_send_none_twice(hub_env: dict[str, str], hub: Hub, tmp_path: Path) -> None:
    for i in range(N):
        missed_deadline(hub, f"900K{i:06d}")
    with MailBox() as box, WebhookReceiver() as hook:
        env = {**hub_env, "HUB_TEST_LOG": str(tmp_path / "worker.log"), "HUB_CONTRACTS_DIR": str(contracts_with_alerts(tmp_path))}
        channels = {**hook.env(), "HUB_SMTP_URL": box.url, "HUB_ALERT_INTERVAL": "0.2", "HUB_VISIBILITY_TIMEOUT": "1"}

        def worker(delay: str) -> WorkerProcess:
            return WorkerProcess(env, role="pipeline", extra_env={**channels, "HUB_FAULT_ALERT_DELAY": delay})

        def arrived() -> int:
            return len(hook.distinct()) + len(set(box.message_ids()))

        slow = worker("0.1")  # each notification waits between its send and its record: the kill lands there
        slow.start()
        try:
            wait_until(lambda: arrived() >= 5, 60, lambda: f"the worker to send 5 notifications ({arrived()} so far)")
            slow.kill9()
        finally:
            slow.stop()
        assert arrived() < 2 * N, "the worker sent everything before the kill: nothing was tested"
        competing = [worker("0"), worker("0")]
        for w in competing:
            w.start()
        try:
            wait_until(lambda: sent(hub) == 2 * N, 60, lambda: f"all {2 * N} notifications recorded sent after the restart ({sent(hub)} are)")
        finally:
            for w in competing:
                w.stop()

        with db.read(hub.engine) as conn:
            ids = {r.id: r.channel for r in conn.execute(sa.select(alert_notifications.c.id, alert_notifications.c.channel))}
            instances = conn.execute(sa.select(sa.func.count()).select_from(alert_firings)).scalar_one()
            audited = conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(audit_log.c.action == "alert-notified")).scalar_one()
        mail_ids = [m.strip("<>").split(".")[0] for m in box.message_ids()]
        assert instances == N and len(ids) == 2 * N, f"each missed deadline is one instance with two notifications: {instances}, {len(ids)}"
        assert hook.distinct() == {i for i, c in ids.items() if c == "hook"}, "a webhook was lost, or one the hub never recorded arrived"
        assert set(mail_ids) == {i for i, c in ids.items() if c == "mail"}, "a mail was lost, or one the hub never recorded arrived"
        again = len(hook.received) + len(mail_ids) - 2 * N
        assert again <= 1, f"{again} notifications arrived twice: only the one in flight at the kill may (with its own id)"
        assert hook.refused == 0, "a webhook arrived without a valid signature"
        assert audited == 2 * N, f"each notification sent is one audit entry ({audited})"
