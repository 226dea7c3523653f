"""A dead letter says why it died: the last attempt's error (type and message, no personal data) is kept
with it, shown in the message's history and by `hub messages dead`, and each failed attempt is logged
with the message it concerns -- the last one as the last."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa
from structlog.testing import capture_logs

from hub import pipeline
from hub.store import db
from hub.errors import describe
from hub.runtime import Hub
from hub.store.tables import dead_letters, message_events
from hub.transport import PIPELINE
from hub.transport.embedded import EmbeddedTransport
from tests.conftest import JOBCENTER, ROOT, agency_sample, encode


def accept_one(hub: Hub) -> str:
    from hub.endpoints import ingress

    return ingress.accept(hub, hub.partners[JOBCENTER], encode(hub, "agency-xml", agency_sample("zuweisung.anmeldung.1020")), "application/xml").id


def fail_until_dead(hub: Hub, transport: EmbeddedTransport, error: Exception) -> None:
    def handler(conn, item):  # noqa: ANN001, ANN202
        raise error

    for _ in range(transport.max_attempts + 1):
        with db.write(hub.engine) as conn:  # due at once: the backoff is not what is tested here
            conn.exec_driver_sql("UPDATE outbox SET available_at = 0")
        for item in transport.claim(PIPELINE, lambda conn, item, reason: pipeline.dead(hub, conn, item, reason)):
            transport.process(item, handler)


def test_a_dead_letter_keeps_the_last_error_in_its_record_and_the_message_history(hub: Hub) -> None:
    transport = EmbeddedTransport(hub.engine, visibility_timeout=30, max_attempts=3, poll_interval=0.01)
    message_id = accept_one(hub)
    with capture_logs() as logs:
        fail_until_dead(hub, transport, LookupError("no route for 'Jürgen Müller' in table 7"))
    with db.read(hub.engine) as conn:
        (reason,) = conn.execute(sa.select(dead_letters.c.reason).where(dead_letters.c.message_id == message_id)).scalars()
        dead = conn.execute(sa.select(message_events.c.detail).where(message_events.c.message_id == message_id, message_events.c.event == "dead")).scalar_one()
    assert reason == "gave up after 3 attempts; last error: LookupError: no route for '…' in table 7", reason
    assert dead["reason"] == reason, "the history names the cause too"
    assert "Jürgen" not in reason, "no personal data in the reason"

    failures = [e for e in logs if e["event"].startswith("handler failed")]
    assert [e["attempt"] for e in failures] == [1, 2, 3]
    assert all(e["message_id"] == message_id for e in failures), "every failure line names the message"
    assert failures[-1]["event"] == "handler failed on its last attempt; the item goes to the dead letters"
    assert failures[-1]["log_level"] == "error" and "will retry" not in failures[-1]["event"]


def test_hub_messages_dead_shows_the_cause(hub: Hub) -> None:
    transport = EmbeddedTransport(hub.engine, visibility_timeout=30, max_attempts=1, poll_interval=0.01)
    message_id = accept_one(hub)
    fail_until_dead(hub, transport, KeyError("recipient"))
    env = {"HUB_DATABASE_URL": str(hub.engine.url), "HUB_CONTRACTS_DIR": str(hub.settings.contracts_dir), "HUB_LOG_LEVEL": "warning", "PATH": ""}
    out = subprocess.run([sys.executable, "-m", "hub.cli", "messages", "dead"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert message_id in out.stdout and "last error: KeyError: '…'" in out.stdout, out.stdout


def test_describe_keeps_type_and_message_but_no_statement_parameters_or_values(hub: Hub) -> None:
    try:
        with db.read(hub.engine) as conn:
            conn.execute(sa.text("SELECT * FROM messages WHERE sender = :n AND nope = 1"), {"n": "Jürgen"})
    except sa.exc.SQLAlchemyError as exc:
        text = describe(exc)
    assert text == "OperationalError (OperationalError): no such column: nope", text
