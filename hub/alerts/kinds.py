"""What each kind of alert measures, read from the message store and the chain's rows.

Each kind answers "which subjects fire now" with one or two indexed statements (the evaluation runs
in every worker every HUB_ALERT_INTERVAL seconds and at every /metrics scrape): a message's id is a
ULID, so "the messages of the last hour" is a range of the primary key, and "the oldest message
waiting for the pipeline" is the first entry of the (status, id) index. What a firing says is ids,
counts, a case reference and a console link -- never a name, a birth date or a message's content.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.alerts.rules import Alert
from hub.chain import calendar
from hub.ids import floor_id, time_of
from hub.store.db import aware
from hub.store.tables import chain_deadlines, chain_tasks, dead_letters, messages

#: the console's pages a notification links to (docs/console.md): the page of the thing itself where
#: there is one (dead letters, the case, the agency's tasks), else the console's list of alerts
LINKS = {
    "dead_letters": "/ops/dead",
    "rejection_rate": "/ops/alerts",
    "queue_age": "/ops/alerts",
    "sla_breach": "/ops/cases/{case}",
    "task_due": "/ops/tasks",
}

#: each kind's sentence where the alert's `text` gives none; `text` may use the same {names}
TEXTS = {
    "dead_letters": "{count} dead letters wait for an operator",
    "rejection_rate": "{partner}: {rejected} of {total} messages rejected in the last {minutes} minutes ({percent} %)",
    "queue_age": "The oldest message waiting for the pipeline was received {seconds} seconds ago",
    "sla_breach": "{partner} missed the {deadline_kind} deadline due on {due_on} (case {case})",
    "task_due": "{count} task(s) of {owner} due on {day}",
}


@dataclass(frozen=True)
class Found:
    """One subject an alert fires for, with the values its sentence and link are made of."""

    subject: str
    values: dict[str, object]
    since: dt.datetime | None = None
    case_id: str | None = None


def _dead_letters(conn: Connection, alert: Alert, now: dt.datetime, states: Mapping[str, str | None]) -> list[Found]:
    count, oldest = conn.execute(
        sa.select(sa.func.count(), sa.func.min(dead_letters.c.at)).where(dead_letters.c.replayed_at.is_(None))
    ).one()
    if count <= alert.params["above"]:
        return []
    return [Found("all", {"count": count}, aware(oldest) if oldest else None)]


def _rejection_rate(conn: Connection, alert: Alert, now: dt.datetime, states: Mapping[str, str | None]) -> list[Found]:
    window = alert.params["window_seconds"]
    rejected = sa.func.sum(sa.case((messages.c.status == "rejected", 1), else_=0))
    rows = conn.execute(
        sa.select(messages.c.sender, sa.func.count(), rejected)
        .where(messages.c.id >= floor_id(now - dt.timedelta(seconds=window)))
        .group_by(messages.c.sender)
    )
    found = []
    for sender, total, bad in rows:
        bad = int(bad or 0)
        if total >= alert.params["min_messages"] and bad * 100 > alert.params["above_percent"] * total:
            values = {"partner": sender, "rejected": bad, "total": total, "minutes": window // 60, "percent": round(bad * 100 / total, 1)}
            found.append(Found(sender, values))
    return found


def oldest_waiting(conn: Connection) -> dt.datetime | None:
    """When the oldest message still waiting for the pipeline was received (or replayed); None: none waits."""
    first = conn.execute(sa.select(sa.func.min(messages.c.id)).where(messages.c.status == "received")).scalar()
    if first is None:
        return None
    updated = conn.execute(sa.select(messages.c.updated_at).where(messages.c.id == first)).scalar()
    return max(time_of(first), aware(updated)) if updated else time_of(first)


def _queue_age(conn: Connection, alert: Alert, now: dt.datetime, states: Mapping[str, str | None]) -> list[Found]:
    oldest = oldest_waiting(conn)
    if oldest is None or (now - oldest).total_seconds() <= alert.params["above_seconds"]:
        return []
    return [Found("pipeline", {"seconds": int((now - oldest).total_seconds())}, oldest)]


def _sla_breach(conn: Connection, alert: Alert, now: dt.datetime, states: Mapping[str, str | None]) -> list[Found]:
    cutoff = now - dt.timedelta(hours=alert.params["within_hours"])
    rows = conn.execute(
        sa.select(chain_deadlines.c.id, chain_deadlines.c.case_id, chain_deadlines.c.partner_id, chain_deadlines.c.kind,
                  chain_deadlines.c.due_on, chain_deadlines.c.resolved_at)
        .where(chain_deadlines.c.status == "missed", chain_deadlines.c.resolved_at >= cutoff)
        .order_by(chain_deadlines.c.resolved_at, chain_deadlines.c.id)
    )
    return [
        Found(r.id, {"partner": r.partner_id, "deadline_kind": r.kind, "due_on": r.due_on.isoformat(), "case": r.case_id, "deadline": r.id},
              aware(r.resolved_at), r.case_id)
        for r in rows
    ]


def _task_due(conn: Connection, alert: Alert, now: dt.datetime, states: Mapping[str, str | None]) -> list[Found]:
    """Open tasks due tomorrow -- with `working_day`, due by the owner's next working day (a task due
    on Saturday or on Monday is announced on Friday) -- one firing per owner and day."""
    today = calendar.today(now)
    rows = conn.execute(  # a week ahead holds the next working day after any run of holidays
        sa.select(chain_tasks.c.owner, chain_tasks.c.due_on, sa.func.count())
        .where(chain_tasks.c.status == "open", chain_tasks.c.due_on > today, chain_tasks.c.due_on <= today + dt.timedelta(days=7))
        .group_by(chain_tasks.c.owner, chain_tasks.c.due_on)
    )
    found = []
    for owner, due_on, count in rows:
        due = calendar.add_working_days(today, 1, states.get(owner)) if alert.params["working_day"] else today + dt.timedelta(days=1)
        if due_on <= due:
            found.append(Found(f"{owner}:{due_on.isoformat()}", {"owner": owner, "day": due_on.isoformat(), "count": count}))
    return found


Measure = Callable[[Connection, Alert, dt.datetime, Mapping[str, str | None]], list[Found]]
MEASURES: dict[str, Measure] = {
    "dead_letters": _dead_letters,
    "rejection_rate": _rejection_rate,
    "queue_age": _queue_age,
    "sla_breach": _sla_breach,
    "task_due": _task_due,
}


def text_of(alert: Alert, found: Found) -> str:
    """The alert's sentence for one subject: its own `text`, or the kind's; a {name} it does not
    know stays as written (a typo in the file must not stop a notification)."""
    template = alert.text or TEXTS[alert.kind]
    return template.format_map(_Keep({"subject": found.subject, **found.values}))


def link_of(alert: Alert, found: Found) -> str:
    return LINKS[alert.kind].format_map(_Keep({"subject": found.subject, **found.values}))


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
