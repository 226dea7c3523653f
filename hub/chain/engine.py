"""The case chain's engine: a message moves its link through the lifecycle, meets deadlines, closes
tasks, and fires the steering rules; a passed deadline fires them too.

Everything runs in the caller's transaction (the pipeline item's, or the scheduler's claim), so a
message that is refused, or a crash, leaves no trace in the chain; and since every task and deadline
has a unique key from its rule and cause, processing a cause twice changes nothing.

What the engine does not do: send. Opened tasks are returned (`Effects`) for the pipeline to deliver
to the owner's system as steuerung.aufgabe, and decisions leave the hub as ordinary messages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from hub.chain import calendar, conditions, deadlines, links, tasks
from hub.chain.lifecycle import NEW, Lifecycle, Transition
from hub.chain.membership import Case
from hub.chain.steering import Action, Rule, Steering
from hub.chain.tasks import Task
from hub.findings import Finding, Refusal


@dataclass
class Effects:
    """What the chain did that others must carry on: tasks to deliver, notifications to show."""

    tasks: list[Task] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    link: links.Link | None = None


@dataclass(frozen=True)
class Incoming:
    """The facts of one message the chain needs (the pipeline builds it from its context)."""

    message_id: str
    message_type: str
    message_uuid: str
    sender_id: str
    #: the partner whose link the message concerns (the provider that sends it, the one an
    #: assignment is addressed to, or the one that runs the measure an agency's change names)
    link_partner: str | None
    created_on: dt.date
    body: dict[str, Any]
    #: a test message moves only test links (opened by test messages), never a production link
    test: bool = False


@dataclass
class _Cause:
    """Where rule actions take their facts from: a message on a link, or a passed deadline."""

    case: Case
    link: links.Link | None
    body: dict[str, Any]
    key: str
    message_id: str | None = None
    message_uuid: str | None = None
    deadline_id: str | None = None


class Engine:
    def __init__(self, steering: Steering, partners: dict[str, Any]) -> None:
        self.steering = steering
        self.partners = partners

    @property
    def lifecycle(self) -> Lifecycle:
        return self.steering.lifecycle

    def concerns(self, message_type: str) -> bool:
        return message_type in self.lifecycle.message_types

    # -- a message arrives ---------------------------------------------------------------------------
    def on_message(self, conn: Connection, case: Case, msg: Incoming, today: dt.date, pointer: Any = None) -> Effects:
        """Apply `msg` to its link; refuse it (`Refusal`, nothing written) where it does not fit the
        link's state. `pointer(field)` names a body field in the sender's format, for findings."""
        measure = msg.body.get("measure_number")
        provider = msg.link_partner
        if provider is None or measure is None:
            return Effects()  # no partner's measure: nothing of the chain (routing refuses what it cannot place)
        link = links.latest(conn, case.id, provider, measure, msg.test)
        transition, state = self._decide(link, msg)
        if transition is None:
            raise _out_of_state(self.lifecycle, msg, state, measure, pointer)
        self._check_not_past(transition, msg, pointer)
        if state == NEW:  # an entry from `new` always names the state it opens the link in (lifecycle.py)
            link = links.open_link(conn, case.id, provider, measure, transition.to, msg.test)
            before = NEW
        else:
            before = link.status
        after = transition.to or link.status
        values = {col: msg.body[src] for col, src in transition.sets.items() if msg.body.get(src) is not None}
        if values or after != link.status:
            links.update(conn, link, after, values)
        kept = _kept(msg.body, transition.keep)
        links.record(conn, case.id, link.id, transition.record, message_id=msg.message_id, message_type=msg.message_type,
                     status_from=before, status_to=after, detail=kept)
        effects = Effects(link=link)
        met = set(deadlines.meet(conn, link.id, msg.message_type, msg.body.get("month"), msg.message_id, today))
        for task in tasks.open_of_link(conn, link.id, {msg.message_type, "expected"} if met else {msg.message_type}):
            if tasks.closed_by_message(task, msg.message_type, msg.body, met):
                tasks.close(conn, task, "done", decision=f"message:{msg.message_type}", by=msg.sender_id, message_id=msg.message_id)
                deadlines.meet_task(conn, task.id, today)
        if after != before and self.lifecycle.is_final(after):
            self._settle_final(conn, link, msg.sender_id, today)
        cause = _Cause(case, link, msg.body, msg.message_id, msg.message_id, msg.message_uuid)
        if after != before:
            self._fire(conn, "enters", after, cause, today, effects)
        self._fire(conn, "message", msg.message_type, cause, today, effects)
        return effects

    def _decide(self, link: links.Link | None, msg: Incoming) -> tuple[Transition | None, str]:
        """The entry for the link's state; a final link may also be followed by a new one."""
        if link is not None:
            found = self.lifecycle.decide(link.status, msg.message_type, msg.body)
            if found is not None or not self.lifecycle.is_final(link.status):
                return found, link.status
        found = self.lifecycle.decide(NEW, msg.message_type, msg.body)
        if found is None and link is not None:
            return None, link.status
        return found, NEW

    def _check_not_past(self, transition: Transition, msg: Incoming, pointer: Any) -> None:
        findings = []
        for name in transition.not_past:
            value = msg.body.get(name)
            if isinstance(value, dt.date) and value < msg.created_on:
                findings.append(Finding(f"{name} {value.isoformat()} lies before the message's own date {msg.created_on.isoformat()}",
                                        pointer=pointer(name) if pointer else None))
        if findings:
            raise Refusal("business-rule", "A deadline in the message lies in the past", findings)

    def _settle_final(self, conn: Connection, link: links.Link, by: str, today: dt.date) -> None:
        """A link that ended owes no message it can no longer send (a start, an attendance for a
        month after its end), and a task that only such a message could close is cancelled."""
        end = link.values.get("end_date")
        end_month = calendar.month_of(end) if end else None
        owed = deadlines.open_of_link(conn, link.id)
        stale = [
            d.id for d in owed
            if d.message_type and (not self.lifecycle.accepts(link.status, d.message_type) or (d.month and end_month and d.month > end_month))
        ]
        unanswerable = {t for t in self.lifecycle.message_types if not self.lifecycle.accepts(link.status, t)}
        cancelled = tasks.open_of_link(conn, link.id, unanswerable)
        for task in cancelled:
            tasks.close(conn, task, "cancelled", remark=f"the link ended ({link.status})", by=by)
        of_cancelled = {t.id for t in cancelled}
        deadlines.cancel(conn, stale + [d.id for d in owed if d.task_id in of_cancelled])

    # -- a deadline passed ----------------------------------------------------------------------------
    def on_deadline_missed(self, conn: Connection, case: Case, deadline: deadlines.Deadline, today: dt.date) -> Effects:
        """The deadline is missed (the caller claimed it): an SLA breach of its partner, and the rules."""
        link = links.latest_by_id(conn, deadline.link_id) if deadline.link_id else None
        links.record(conn, case.id, deadline.link_id, "breach", detail={
            "deadline": deadline.id, "kind": deadline.kind, "partner": deadline.partner_id, "due_on": deadline.due_on, "month": deadline.month,
        })
        effects = Effects(link=link)
        cause = _Cause(case, link, {}, f"deadline:{deadline.id}", deadline_id=deadline.id)
        self._fire(conn, "deadline", deadline.kind, cause, today, effects)
        return effects

    # -- rules ----------------------------------------------------------------------------------------
    def _fire(self, conn: Connection, event: str, name: str, cause: _Cause, today: dt.date, effects: Effects) -> None:
        for rule in self.steering.firing(event, name):
            if not conditions.brings_recent(rule.condition, cause.body):
                continue  # the count cannot newly reach its threshold without an item of this message
            record = links.kept(conn, cause.link.id) if cause.link and rule.condition and "recent" in rule.condition else ()
            if rule.condition and not conditions.holds(rule.condition, cause.body, record):
                continue
            for action in rule.actions:
                getattr(self, f"_do_{action.kind}")(conn, rule, action, cause, today, effects)

    def _state_of(self, partner_id: str) -> str | None:
        partner = self.partners.get(partner_id)
        return (getattr(partner, "profile", None) or {}).get("state") if partner else None

    def _sla(self, partner_id: str, name: str) -> dict[str, Any]:
        partner = self.partners.get(partner_id)
        own = ((getattr(partner, "profile", None) or {}).get("slas") or {}) if partner else {}
        return dict(own.get(name) or self.steering.slas[name])

    def _due(self, spec: dict[str, Any], cause: _Cause, partner_id: str, today: dt.date, month: str | None = None) -> dt.date:
        if "field" in spec:
            value = cause.body.get(spec["field"])
            if isinstance(value, dt.date):
                return value
            return self._due(spec.get("otherwise") or {"working_days": 10}, cause, partner_id, today, month)
        rule = {**self._sla(partner_id, spec["sla"]), **{k: v for k, v in spec.items() if k != "sla"}} if "sla" in spec else spec
        anchor = cause.body.get(rule["after"]) if rule.get("after") else None
        return calendar.due_date(rule, anchor if isinstance(anchor, dt.date) else today, self._state_of(partner_id), month)

    def _do_expect(self, conn: Connection, rule: Rule, action: Action, cause: _Cause, today: dt.date, effects: Effects) -> None:
        spec, link = action.spec, cause.link
        if link is None:
            return
        partner = link.partner_id if spec["from"] == "provider" else cause.case.owner
        month = None
        if spec.get("month") is not None:
            source = spec["month"]["next"] if isinstance(spec["month"], dict) else spec["month"]
            value = cause.body.get(source) or link.values.get(source)
            if value is None:
                return
            month = calendar.next_month(calendar.month_of(value)) if isinstance(spec["month"], dict) else calendar.month_of(value)
            last = link.values.get("end_date") or link.values.get("period_end")
            if last and month > calendar.month_of(last):
                return  # the participation does not run in that month
        deadlines.expect(
            conn, case_id=cause.case.id, link_id=link.id, partner_id=partner, kind=spec["kind"], message_type=spec["message"],
            due_on=self._due(spec["due"], cause, partner, today, month), rule_id=rule.id, rule_version=self.steering.version, month=month,
        )

    def _do_task(self, conn: Connection, rule: Rule, action: Action, cause: _Cause, today: dt.date, effects: Effects) -> None:
        spec, owner = action.spec, cause.case.owner
        propose = spec.get("propose")
        proposed = propose if isinstance(propose, str) else (propose or [None])[0]
        kept = {
            "decisions": spec["decisions"], "closed_by": spec.get("closed_by"), "answers_uuid": cause.message_uuid,
            "proposal": self.steering.measures[proposed].title if proposed else None,
        }
        due = self._due(spec["due"], cause, owner, today)
        if spec.get("repeat") is False and cause.link is not None:
            # CMMN's repetition rule: while a task of this kind is open on the link, a further cause
            # joins it (one decision about the participation, not one per feedback); the earlier due date holds
            joined = next((t for t in tasks.open_of_link(conn, cause.link.id) if t.kind == spec["kind"]), None)
            if joined is not None:
                if due < joined.due_on:
                    tasks.move_due(conn, joined, due)
                    deadlines.move_task_due(conn, joined.id, due)
                links.record(conn, cause.case.id, cause.link.id, "task_joined", message_id=cause.message_id,
                             detail={"task": joined.id, "kind": joined.kind, "due_on": min(due, joined.due_on)})
                return
        task = tasks.open_task(
            conn, key=f"{rule.id}:{cause.key}", case_id=cause.case.id, link_id=cause.link.id if cause.link else None, owner=owner,
            kind=spec["kind"], title=spec["title"], due_on=due, rule_id=rule.id,
            rule_version=self.steering.version, proposed_measure=proposed, spec=kept,
            cause_message_id=cause.message_id, cause_deadline_id=cause.deadline_id,
        )
        links.record(conn, cause.case.id, task.link_id, "task", message_id=cause.message_id, detail={"task": task.id, "kind": task.kind, "due_on": task.due_on})
        if spec.get("deadline"):
            deadlines.expect(
                conn, case_id=cause.case.id, link_id=task.link_id, partner_id=owner, kind=spec["deadline"], message_type=None,
                due_on=task.due_on, rule_id=rule.id, rule_version=self.steering.version, task_id=task.id, key=f"task:{task.id}",
            )
        effects.tasks.append(task)

    def _do_case_status(self, conn: Connection, rule: Rule, action: Action, cause: _Cause, today: dt.date, effects: Effects) -> None:
        links.set_case_status(conn, cause.case.id, str(action.spec["value"]))
        links.record(conn, cause.case.id, None, "case_status", message_id=cause.message_id, detail={"status": action.spec["value"], "rule": rule.id})

    def _do_close_chain(self, conn: Connection, rule: Rule, action: Action, cause: _Cause, today: dt.date, effects: Effects) -> None:
        close_chain(conn, cause.case.id, rule.id, cause.message_id)

    def _do_notify(self, conn: Connection, rule: Rule, action: Action, cause: _Cause, today: dt.date, effects: Effects) -> None:
        text = str(action.spec["text"])
        links.record(conn, cause.case.id, cause.link.id if cause.link else None, "notice", message_id=cause.message_id,
                     detail={"to": action.spec.get("to", "owner"), "text": text, "rule": rule.id})
        effects.notices.append(text)


def close_chain(conn: Connection, case_id: str, by: str, message_id: str | None = None) -> None:
    """The chain is closed: nothing is owed any more."""
    links.set_case_status(conn, case_id, "closed", closed=True)
    deadlines.cancel_case(conn, case_id)
    links.record(conn, case_id, None, "case_status", message_id=message_id, detail={"status": "closed", "by": by})


def _kept(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The `keep` fields of a body; a dotted name keeps that field of each list item."""
    kept: dict[str, Any] = {}
    for name in names:
        head, _, rest = name.partition(".")
        value = body.get(head)
        if value is None:
            continue
        if rest and isinstance(value, list):
            items = kept.setdefault(head, [{} for _ in value])
            for item, source in zip(items, value):
                if isinstance(source, dict) and source.get(rest) is not None:
                    item[rest] = source[rest]
        else:
            kept[head] = value
    return kept


def _out_of_state(lifecycle: Any, msg: Incoming, state: str, measure: str | None, pointer: Any) -> Refusal:
    accepted = sorted({s for t in lifecycle.transitions if t.message == msg.message_type for s in t.sources})
    where = "there is no open link for measure" if state == NEW else f"the link's state is '{state}' ({lifecycle.label(state)}) for measure"
    return Refusal(
        "business-rule",
        f"{msg.message_type} does not fit the case chain: {where} {measure}",
        [Finding(f"the link of measure {measure!r} is {'not open' if state == NEW else state!r}; "
                 f"{msg.message_type} is accepted in: {', '.join(accepted)}", pointer=pointer("measure_number") if pointer else None)],
    )
