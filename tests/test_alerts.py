"""Alerts as data (contracts/alerts.yaml): each kind fires for what the store holds, an instance is
recorded once and notified once per channel -- by mail through a real SMTP server and by a webhook a
real receiver verifies -- with ids and links only, audited; a receiver that fails is tried again with
the same id; a broken alerts file is refused with file and line before a process starts."""

from __future__ import annotations

import datetime as dt
import shutil
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from hub import alerts
from hub.alerts import firing
from hub.alerts.notifier import Notifier
from hub.alerts.rules import AlertRules
from hub.chain import deadlines, membership, tasks
from hub.cli import app
from hub.cli.base import _checked
from hub.ids import floor_id, new_id
from hub.runtime import Hub
from hub.store import db
from hub.store.tables import alert_firings, alert_notifications, audit_log, dead_letters, messages
from hub.yaml_lines import ContractError
from tests.alert_receivers import MailBox, WebhookReceiver
from tests.conftest import CONTRACTS, JOBCENTER, OTHER_PROVIDER, PROVIDER, hub_for, wait_until

CUSTOMER = "900A000001"  # a Kundennummer: personal data, which no notification may carry


# -- the store, as the alerts see it --------------------------------------------------------------------
def add_dead_letter(hub: Hub) -> None:
    with db.write(hub.engine) as conn:
        conn.execute(dead_letters.insert().values(queue="pipeline", payload={"message_id": "x"}, attempts=5, reason="gave up", message_id=None, at=db.utcnow()))


def replay_dead_letters(hub: Hub) -> None:
    with db.write(hub.engine) as conn:
        conn.execute(dead_letters.update().values(replayed_at=db.utcnow()))


def add_messages(hub: Hub, sender: str, total: int, rejected: int, *, status: str = "routed", age: dt.timedelta = dt.timedelta()) -> None:
    """`total` stored messages of `sender`, `rejected` of them rejected; made `age` ago (their ULIDs say so)."""
    made = db.utcnow() - age
    stamp = floor_id(made)[:10]
    with db.write(hub.engine) as conn:
        conn.execute(messages.insert(), [
            {"id": stamp + new_id()[10:], "sender": sender, "message_uuid": new_id(), "message_type": "teilnahme.anwesenheit.2030", "version": "1.0",
             "format": "provider-json", "status": "rejected" if i < rejected else status, "correlation_id": "c", "test": False,
             "content_hash": "0" * 64, "raw": b"{}", "created_at": made, "updated_at": made}
            for i in range(total)
        ])


def missed_deadline(hub: Hub, customer: str = CUSTOMER) -> tuple[str, str]:
    """A deadline the provider missed just now: (its id, its case id)."""
    with db.write(hub.engine) as conn:
        case = membership.open_case(conn, JOBCENTER, customer, None)
        deadlines.expect(conn, case_id=case.id, link_id=None, partner_id=PROVIDER, kind="start", message_type="teilnahme.eintritt.2010",
                         due_on=dt.date(2026, 11, 2), rule_id="start-message-due", rule_version="test", key=f"seed:{customer}")
    with db.write(hub.engine) as conn:
        (deadline_id,) = conn.execute(sa.select(deadlines.chain_deadlines.c.id).where(deadlines.chain_deadlines.c.case_id == case.id)).scalars()
        assert deadlines.claim_missed(conn, deadline_id)
    return deadline_id, case.id


def open_task_due(hub: Hub, due_on: dt.date, n: int) -> None:
    with db.write(hub.engine) as conn:
        case = membership.open_case(conn, JOBCENTER, CUSTOMER, None)
        for i in range(n):
            tasks.open_task(conn, key=f"t:{due_on}:{i}", case_id=case.id, link_id=None, owner=JOBCENTER, kind="decision", title="Entscheidung",
                            due_on=due_on, rule_id="r", rule_version="test", proposed_measure=None, spec={"decisions": {"ok": {}}})


def firing_now(hub: Hub, now: dt.datetime | None = None) -> dict[str, list[alerts.ActiveAlert]]:
    with db.read(hub.engine) as conn:
        found = alerts.active(conn, hub, now=now)
    by_alert: dict[str, list[alerts.ActiveAlert]] = {}
    for a in found:
        by_alert.setdefault(a.alert_id, []).append(a)
    return by_alert


# -- what fires ---------------------------------------------------------------------------------------
def test_nothing_fires_on_an_empty_hub(hub: Hub) -> None:
    assert firing_now(hub) == {}, "an empty hub raises alerts"


def test_dead_letters_above_the_threshold_fire_until_they_are_replayed(hub: Hub) -> None:
    add_dead_letter(hub)
    (alert,) = firing_now(hub)["dead-letters"]
    assert (alert.severity, alert.subject, alert.text, alert.link) == ("critical", "all", "1 dead letters wait for an operator", "/ops/dead"), alert
    replay_dead_letters(hub)
    assert "dead-letters" not in firing_now(hub), "replayed dead letters still fire"


def test_a_partners_rejection_rate_fires_above_its_percentage_with_enough_messages(hub: Hub) -> None:
    add_messages(hub, PROVIDER, total=30, rejected=9)  # 30 %: above 20 %, 30 messages: enough
    add_messages(hub, OTHER_PROVIDER, total=5, rejected=5)  # 100 %, but 5 messages are too few to judge
    add_messages(hub, JOBCENTER, total=40, rejected=4, age=dt.timedelta(hours=2))  # outside the last hour: not counted
    add_messages(hub, JOBCENTER, total=25, rejected=2)  # 8 %
    (alert,) = firing_now(hub)["partner-rejections"]
    assert alert.subject == PROVIDER and "9 of 30 messages rejected in the last 60 minutes (30.0 %)" in alert.text, alert


def test_the_oldest_message_waiting_for_the_pipeline_fires_once_it_waited_too_long(hub: Hub) -> None:
    add_messages(hub, PROVIDER, total=1, rejected=0, status="received", age=dt.timedelta(seconds=100))
    assert "pipeline-backlog" not in firing_now(hub), "a message waiting 100 s fires an alert at 300 s"
    add_messages(hub, PROVIDER, total=1, rejected=0, status="received", age=dt.timedelta(seconds=400))
    (alert,) = firing_now(hub)["pipeline-backlog"]
    assert alert.text.startswith("The oldest message waiting for the pipeline was received 4"), alert.text


def test_a_missed_deadline_fires_with_its_case_reference_and_no_personal_data(hub: Hub) -> None:
    deadline_id, case_id = missed_deadline(hub)
    (alert,) = firing_now(hub)["deadline-missed"]
    assert (alert.subject, alert.case_id, alert.link) == (deadline_id, case_id, f"/ops/cases/{case_id}"), alert
    assert CUSTOMER not in repr(alert), "the alert carries the customer number"
    later = db.utcnow() + dt.timedelta(hours=25)
    assert "deadline-missed" not in firing_now(hub, later), "a breach fires past its within_hours"


def test_tasks_due_by_the_next_working_day_fire_per_owner_and_day(hub: Hub) -> None:
    """On a Friday the next working day is Monday: tasks due on Saturday and on Monday are announced,
    one alert per day, Tuesday's are not; on the Monday before, only Tuesday's."""
    for day, n in ((dt.date(2026, 12, 5), 1), (dt.date(2026, 12, 7), 2), (dt.date(2026, 12, 8), 4)):
        open_task_due(hub, day, n)
    friday = dt.datetime(2026, 12, 4, 9, tzinfo=dt.timezone.utc)
    announced = [(a.subject, a.text) for a in firing_now(hub, friday)["tasks-due-tomorrow"]]
    assert sorted(announced) == [(f"{JOBCENTER}:2026-12-05", f"1 task(s) of {JOBCENTER} due on 2026-12-05"),
                                 (f"{JOBCENTER}:2026-12-07", f"2 task(s) of {JOBCENTER} due on 2026-12-07")], announced
    monday = dt.datetime(2026, 12, 7, 9, tzinfo=dt.timezone.utc)
    assert [a.subject for a in firing_now(hub, monday)["tasks-due-tomorrow"]] == [f"{JOBCENTER}:2026-12-08"], "Monday announces Tuesday's tasks"


def test_open_tasks_due_tomorrow_fire_from_the_store(hub: Hub) -> None:
    now = db.utcnow()
    from hub.chain import calendar

    next_day = calendar.add_working_days(calendar.today(now), 1, hub.partners[JOBCENTER].profile.get("state"))
    open_task_due(hub, next_day, 3)
    (alert,) = firing_now(hub, now)["tasks-due-tomorrow"]
    assert (alert.subject, alert.text) == (f"{JOBCENTER}:{next_day}", f"3 task(s) of {JOBCENTER} due on {next_day}"), alert


# -- recorded once, notified once --------------------------------------------------------------------------
def firings(hub: Hub) -> list[sa.Row]:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(alert_firings).order_by(alert_firings.c.episode)).all()


def test_an_instance_is_recorded_once_resolved_when_it_stops_and_a_new_episode_when_it_fires_again(hub: Hub) -> None:
    add_dead_letter(hub)
    assert firing.record(hub) == 1, "the firing dead-letters alert was not recorded"
    assert firing.record(hub) == 0, "an instance already recorded was recorded again"
    replay_dead_letters(hub)
    firing.record(hub)
    add_dead_letter(hub)
    assert firing.record(hub) == 1, "the alert firing again is no new instance"
    rows = firings(hub)
    assert [(r.key, r.resolved_at is None) for r in rows] == [("dead-letters|all|1", False), ("dead-letters|all|2", True)], rows
    with db.read(hub.engine) as conn:
        per_firing = conn.execute(sa.select(alert_notifications.c.firing_id, sa.func.count()).group_by(alert_notifications.c.firing_id)).all()
    assert sorted(n for _, n in per_firing) == [2, 2], "each instance is one notification per channel (mail, webhook)"


@pytest.fixture
def receivers(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with MailBox() as box, WebhookReceiver() as hook:
        for name, value in hook.env().items():
            monkeypatch.setenv(name, value)
        yield box, hook


def test_notifications_go_out_by_mail_and_signed_webhook_once_with_stable_ids_and_are_audited(hub_env: dict[str, str], receivers) -> None:  # type: ignore[no-untyped-def]
    box, hook = receivers
    hub = hub_for(hub_env, smtp_url=box.url, console_url="https://hub.example/")
    deadline_id, case_id = missed_deadline(hub)
    add_dead_letter(hub)
    firing.record(hub)
    assert Notifier(hub).deliver() == 3, "dead letters by mail and webhook, the breach by webhook"
    assert Notifier(hub).deliver() == 0, "a notification sent was sent again"
    firing.record(hub)
    assert Notifier(hub).deliver() == 0, "an instance evaluated again was notified again"

    (mail,) = box.mails
    assert mail["To"] == "betrieb@hub.example" and mail["Subject"] == "[critical] 1 dead letters wait for an operator", mail
    assert "https://hub.example/ops/dead" in mail.get_payload(), "the mail does not link the console page"
    assert len(hook.received) == 2 and hook.refused == 0, (hook.received, hook.refused)
    breach = next(b for b in hook.bodies.values() if b["data"]["alert"] == "deadline-missed")
    assert breach["data"]["case"] == case_id and breach["data"]["link"] == f"https://hub.example/ops/cases/{case_id}", breach
    everything = str(hook.bodies) + mail.as_string()
    assert CUSTOMER not in everything, "a notification carries the customer number"
    with db.read(hub.engine) as conn:
        sent = {r.id: r for r in conn.execute(sa.select(alert_notifications))}
        audited = conn.execute(sa.select(audit_log.c.actor, audit_log.c.purpose, audit_log.c.legal_basis, audit_log.c.detail).where(audit_log.c.action == "alert-notified")).all()
    assert set(hook.received) | {box.mails[0]["Message-ID"].strip("<>").split(".")[0]} == set(sent), "the ids sent are not the notifications' own"
    assert {r.status for r in sent.values()} == {"sent"}, sent
    assert len(audited) == 3 and {(a.actor, a.purpose) for a in audited} == {("hub", "betrieb")}, audited
    assert all(a.legal_basis for a in audited) and {a.detail["notification"] for a in audited} == set(sent), audited
    hub.close()


def test_a_receiver_that_fails_gets_the_same_notification_again_after_a_backoff(hub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookReceiver(fail_first=2) as hook:
        for name, value in hook.env().items():
            monkeypatch.setenv(name, value)
        hub = hub_for(hub_env, alert_retry_seconds=0.01)
        missed_deadline(hub)
        firing.record(hub)
        notifier = Notifier(hub)
        wait_until(lambda: notifier.deliver() or hook.received, 10, "the webhook to get through after two failures")
        with db.read(hub.engine) as conn:
            (row,) = conn.execute(sa.select(alert_notifications)).all()
        assert hook.received == [row.id] and row.status == "sent" and row.attempts == 3, (hook.received, row)
        hub.close()


def test_a_channel_that_cannot_send_keeps_its_notification_pending_with_the_reason(hub: Hub) -> None:
    add_dead_letter(hub)
    firing.record(hub)
    assert Notifier(hub).deliver() == 0
    with db.read(hub.engine) as conn:
        errors = {r.channel: (r.status, r.last_error) for r in conn.execute(sa.select(alert_notifications))}
    assert errors["betrieb-mail"] == ("pending", "HUB_SMTP_URL is not set: no mail server to send through"), errors
    assert errors["betrieb-webhook"][0] == "pending" and "HUB_ALERT_WEBHOOK_URL" in errors["betrieb-webhook"][1], errors


# -- the file --------------------------------------------------------------------------------------------
def alerts_file(tmp_path: Path, text: str) -> Path:
    (tmp_path / "alerts.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


GOOD = """\
version: 1
channels:
  mail: {mail: [ops@hub.example]}
alerts:
  - id: a
    kind: dead_letters
    severity: critical
    channels: [mail]
"""


@pytest.mark.parametrize(("change", "line", "words"), [
    (("kind: dead_letters", "kind: dead_letter"), 6, "'kind' is one of"),
    (("    channels: [mail]", "    channels: [mail]\n    params: {abvoe: 3}"), 9, "no parameter 'abvoe'"),
    (("    channels: [mail]", "    channels: [mail]\n    params: {above: -1}"), 9, "'above' is a whole number of at least 0"),
    (("    channels: [mail]", "    channels: [mial]"), 8, "unknown channel 'mial'"),
    (("severity: critical", "severity: urgent"), 7, "'severity' is one of"),
    (("  mail: {mail: [ops@hub.example]}", "  mail: {webhook: {url_env: HUB_X, secret: geheim}}"), 3, "names the environment variables"),
    (("    kind: dead_letters", "    kind: rejection_rate"), 5, "needs the parameter 'above_percent'"),
    (("    channels: [mail]", "    channels: [mail]\n    colour: red"), 9, "unknown key 'colour'"),
])
def test_a_broken_alert_is_an_error_naming_file_and_line(tmp_path: Path, change: tuple[str, str], line: int, words: str) -> None:
    assert AlertRules.load(alerts_file(tmp_path, GOOD)).alert("a") is not None, "the good file does not load"
    folder = alerts_file(tmp_path, GOOD.replace(*change))
    with pytest.raises(ContractError) as error:
        AlertRules.load(folder)
    assert str(error.value).startswith(f"{folder / 'alerts.yaml'}:{line}: ") and words in str(error.value), str(error.value)


def test_the_shipped_alerts_check_out() -> None:
    rules = AlertRules.load(CONTRACTS)
    assert {a.kind for a in rules.alerts} == {"dead_letters", "rejection_rate", "queue_age", "sla_breach", "task_due"}, "a kind has no example"


def test_a_process_does_not_start_and_contracts_check_fails_with_a_broken_alerts_file(hub_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, contracts)
    path = contracts / "alerts.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("kind: queue_age", "kind: queue_agee"), encoding="utf-8")
    hub = hub_for({**hub_env, "HUB_CONTRACTS_DIR": str(contracts)})
    with pytest.raises(typer.Exit):
        _checked(hub)
    assert f"{path}:" in capsys.readouterr().err, "the refusal to start does not name the alerts file"
    hub.close()
    monkeypatch.setenv("HUB_CONTRACTS_DIR", str(contracts))
    result = CliRunner().invoke(app, ["contracts", "check"])
    assert result.exit_code == 1 and "alerts.yaml:" in result.output and "'kind' is one of" in result.output, result.output
