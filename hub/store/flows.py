"""Flows for the console: per partner and message type, how many messages were received, routed,
rejected, found duplicate, delivered and given up, over the last hour, day and 30 days, and as a series.

Counted from the message history's outcome events (`OUTCOME_EVENTS`: each counts when it happened,
so a message replayed after its dead letter counts as dead once and later as delivered), keyed by
the message's sender and type. Grouping a million messages on every page view is too slow, and
counting in the pipeline would put a hot row into every batch; so a roll-up (`roll_up`, every minute
in a pipeline worker) sums each closed hour once into `flow_counts`, and each closed day from its
hours. A window is then read from a few thousand counters: whole days, whole hours, and only its ragged
ends and the time since the roll-up counted live, through the partial index that holds the outcome
events alone. An hour is closed `GRACE` after its end: a transaction that stamped its events inside
the hour has committed by then.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.store.db import InsertOnce, aware, utcnow
from hub.store.tables import OUTCOME_EVENTS, OUTCOME_EVENTS_SQL, flow_counts, flow_rollup, message_events, messages, outbox

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
#: an hour is rolled up this long after its end
GRACE = dt.timedelta(minutes=5)
#: hourly counters are kept this long (the day series and the 30-day totals need no older hours)
KEEP_HOURS = dt.timedelta(days=32)
#: where a first roll-up starts: flows look back 30 days, no further
LOOK_BACK = dt.timedelta(days=31)

Span = Literal["hour", "day"]
Key = tuple[str, str, str]  # partner, message type, outcome


def outcome_counts(counts: Counter | None = None) -> dict[str, int]:
    """Every outcome with its count (0 where none)."""
    counts = counts or Counter()
    return {o: int(counts.get(o, 0)) for o in OUTCOME_EVENTS}


@dataclass(frozen=True)
class Flow:
    """One partner's messages of one type: outcome -> count in each window."""

    partner: str
    message_type: str
    last_hour: dict[str, int]
    last_day: dict[str, int]
    last_30_days: dict[str, int]


@dataclass(frozen=True)
class Point:
    """One bucket of a series: its start (UTC) and outcome -> count."""

    start: dt.datetime
    counts: dict[str, int]


@dataclass(frozen=True)
class QueueDepth:
    """A queue's backlog: how many items wait, and since when the oldest does (None: empty, or the
    broker does not say)."""

    queue: str
    depth: int | None  # None: not known (the broker did not answer; `note` says why)
    oldest_at: dt.datetime | None = None
    oldest_age_seconds: float | None = None
    where: str = "outbox"  # outbox (the database) | broker
    note: str | None = None


@dataclass
class _Filter:
    partner: str | None = None
    message_type: str | None = None


def floor_hour(t: dt.datetime) -> dt.datetime:
    return aware(t).replace(minute=0, second=0, microsecond=0)


def floor_day(t: dt.datetime) -> dt.datetime:
    return aware(t).replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil(t: dt.datetime, floor, step: dt.timedelta) -> dt.datetime:  # type: ignore[no-untyped-def]
    f = floor(t)
    return f if f == aware(t) else f + step


# -- reading ------------------------------------------------------------------------------------------
def _live_statement(lo: dt.datetime, hi: dt.datetime) -> sa.Select:
    """Outcome events in [lo, hi) grouped by sender, type and outcome, through the partial index: its
    condition is written out literally, or SQLite would not use it. A partner or type is picked from
    the groups afterwards: in SQL it lets the planner walk the partner's messages instead (a
    month of them, to find an hour's)."""
    return (
        sa.select(messages.c.sender, messages.c.message_type, message_events.c.event, sa.func.count())
        .select_from(message_events.join(messages, messages.c.id == message_events.c.message_id))
        .where(sa.text(f"message_events.{OUTCOME_EVENTS_SQL}"), message_events.c.at >= lo, message_events.c.at < hi)
        .group_by(messages.c.sender, messages.c.message_type, message_events.c.event)
    )


def _live(conn: Connection, lo: dt.datetime, hi: dt.datetime, f: _Filter) -> Counter[Key]:
    if lo >= hi:
        return Counter()
    return Counter({
        (r[0], r[1], r[2]): r[3] for r in conn.execute(_live_statement(lo, hi))
        if f.partner in (None, r[0]) and f.message_type in (None, r[1])
    })


#: sums of rolled-up counters, per database, range and filter: a rolled range never changes (the
#: roll-up only adds later hours), so a console refreshing its page sums a month of counters once
#: per hour instead of on every view; the live rest is counted each time
_sums: OrderedDict[tuple, Any] = OrderedDict()
_SUMS_KEPT = 256


def _cached(conn: Connection, key: tuple, compute: Callable[[], Any]) -> Any:
    key = (conn.engine.url.render_as_string(), *key)
    if key in _sums:
        _sums.move_to_end(key)
        return _sums[key]
    value = _sums[key] = compute()
    if len(_sums) > _SUMS_KEPT:
        _sums.popitem(last=False)
    return value


def _counters(conn: Connection, span: Span, lo: dt.datetime, hi: dt.datetime, f: _Filter) -> Counter[Key]:
    """The counters of `span` starting in [lo, hi), summed per partner, type and outcome (a range the
    roll-up has passed: cached)."""
    if lo >= hi:
        return Counter()
    return _cached(conn, ("counters", span, lo, hi, f.partner, f.message_type), lambda: _sum_counters(conn, span, lo, hi, f))


def _sum_counters(conn: Connection, span: Span, lo: dt.datetime, hi: dt.datetime, f: _Filter) -> Counter[Key]:
    query = (
        sa.select(flow_counts.c.partner, flow_counts.c.message_type, flow_counts.c.outcome, sa.func.sum(flow_counts.c.n))
        .where(flow_counts.c.span == span, flow_counts.c.start >= lo, flow_counts.c.start < hi)
        .group_by(flow_counts.c.partner, flow_counts.c.message_type, flow_counts.c.outcome)
    )
    if f.partner is not None:
        query = query.where(flow_counts.c.partner == f.partner)
    if f.message_type is not None:
        query = query.where(flow_counts.c.message_type == f.message_type)
    return Counter({(r[0], r[1], r[2]): int(r[3]) for r in conn.execute(query)})


def rolled_until(conn: Connection) -> dt.datetime | None:
    """Everything before this instant is in `flow_counts` (None: no roll-up ran yet)."""
    value = conn.execute(sa.select(flow_rollup.c.until).where(flow_rollup.c.id == 1)).scalar()
    return aware(value) if value is not None else None


def _window(conn: Connection, lo: dt.datetime, hi: dt.datetime, until: dt.datetime | None, f: _Filter) -> Counter[Key]:
    """Outcomes in [lo, hi): whole days and hours from the counters, the rest live."""
    if until is None or until <= lo:
        return _live(conn, lo, hi, f)
    total = _live(conn, max(lo, until), hi, f)
    top = min(hi, until)  # until is a whole hour
    h_lo = _ceil(lo, floor_hour, HOUR)
    if h_lo >= top:
        return total + _live(conn, lo, top, f)
    total += _live(conn, lo, h_lo, f)
    d_lo, d_hi = _ceil(h_lo, floor_day, DAY), floor_day(top)
    if d_lo < d_hi:
        return total + _counters(conn, "hour", h_lo, d_lo, f) + _counters(conn, "day", d_lo, d_hi, f) + _counters(conn, "hour", d_hi, top, f)
    return total + _counters(conn, "hour", h_lo, top, f)


def flows(conn: Connection, now: dt.datetime | None = None, partner: str | None = None, message_type: str | None = None) -> list[Flow]:
    """Per partner (the sender) and message type, the outcomes of the last hour, day and 30 days;
    sorted by partner and type. Rows with nothing in 30 days are left out."""
    now = aware(now or utcnow())
    f = _Filter(partner, message_type)
    until = rolled_until(conn)
    windows = [_window(conn, now - span, now, until, f) for span in (HOUR, DAY, 30 * DAY)]
    per: dict[tuple[str, str], list[Counter]] = {}
    for i, window in enumerate(windows):
        for (p, t, o), n in window.items():
            per.setdefault((p, t), [Counter(), Counter(), Counter()])[i][o] += n
    return [Flow(p, t, *(outcome_counts(c) for c in per[(p, t)])) for p, t in sorted(per)]


def series(
    conn: Connection, span: Span, now: dt.datetime | None = None, partner: str | None = None, message_type: str | None = None
) -> list[Point]:
    """A chart's buckets, oldest first: the last 24 hours per hour (`span` "hour", the current hour
    last) or the last 30 days per day ("day", today last); each outcome summed over partners and types
    unless `partner` / `message_type` narrow it."""
    if span not in ("hour", "day"):
        raise ValueError(f"span must be 'hour' or 'day', not {span!r}")
    now = aware(now or utcnow())
    f = _Filter(partner, message_type)
    step, floor, n = (HOUR, floor_hour, 24) if span == "hour" else (DAY, floor_day, 30)
    first = floor(now) - (n - 1) * step
    until = rolled_until(conn)
    done = floor(until) if until is not None else first  # buckets before this one are wholly in the counters
    by_start: dict[dt.datetime, Counter] = _cached(conn, ("series", span, first, done, partner, message_type), lambda: _buckets(conn, span, first, done, f))
    points = []
    for i in range(n):
        start = first + i * step
        if start < done:
            counts = by_start.get(start, Counter())
        else:
            counts = Counter()
            for (_, _, o), c in _window(conn, start, min(start + step, now), until, f).items():
                counts[o] += c
        points.append(Point(start, outcome_counts(counts)))
    return points


def _buckets(conn: Connection, span: Span, first: dt.datetime, done: dt.datetime, f: _Filter) -> dict[dt.datetime, Counter]:
    """Outcome counts per bucket start in [first, done), from the counters of `span`."""
    by_start: dict[dt.datetime, Counter] = {}
    if done <= first:
        return by_start
    query = (
        sa.select(flow_counts.c.start, flow_counts.c.outcome, sa.func.sum(flow_counts.c.n))
        .where(flow_counts.c.span == span, flow_counts.c.start >= first, flow_counts.c.start < done)
        .group_by(flow_counts.c.start, flow_counts.c.outcome)
    )
    if f.partner is not None:
        query = query.where(flow_counts.c.partner == f.partner)
    if f.message_type is not None:
        query = query.where(flow_counts.c.message_type == f.message_type)
    for start, outcome, count in conn.execute(query):
        by_start.setdefault(aware(start), Counter())[outcome] += int(count)
    return by_start


# -- the roll-up --------------------------------------------------------------------------------------
_FIRST = InsertOnce(flow_rollup)


def roll_up(conn: Connection, now: dt.datetime | None = None, max_hours: int = 24) -> int:
    """Count the closed hours not yet counted (at most `max_hours` in this transaction), each closed
    day from its hours; drop hourly counters older than KEEP_HOURS. Returns the hours counted.

    Safe beside another worker's roll-up: the progress row is locked first (PostgreSQL; SQLite has one
    writer), and each starts where the other stopped."""
    now = aware(now or utcnow())
    target = floor_hour(now - GRACE)
    conn.execute(_FIRST(conn), {"id": 1, "until": floor_day(now - LOOK_BACK)})
    until = aware(conn.execute(sa.select(flow_rollup.c.until).where(flow_rollup.c.id == 1).with_for_update()).scalar_one())
    hours = 0
    none = _Filter()
    while until < target and hours < max_hours:
        end = until + HOUR
        rows = [
            {"span": "hour", "start": until, "partner": p, "message_type": t, "outcome": o, "n": n}
            for (p, t, o), n in _live(conn, until, end, none).items()
        ]
        if rows:
            conn.execute(flow_counts.insert(), rows)
        if end == floor_day(end):
            day = end - DAY
            conn.execute(flow_counts.insert().from_select(
                ["span", "start", "partner", "message_type", "outcome", "n"],
                sa.select(sa.literal("day"), sa.literal(day, flow_counts.c.start.type), flow_counts.c.partner, flow_counts.c.message_type,
                          flow_counts.c.outcome, sa.func.sum(flow_counts.c.n))
                .where(flow_counts.c.span == "hour", flow_counts.c.start >= day, flow_counts.c.start < end)
                .group_by(flow_counts.c.partner, flow_counts.c.message_type, flow_counts.c.outcome),
            ))
        until, hours = end, hours + 1
    if hours:
        conn.execute(flow_rollup.update().where(flow_rollup.c.id == 1).values(until=until))
        conn.execute(flow_counts.delete().where(flow_counts.c.span == "hour", flow_counts.c.start < floor_day(now - KEEP_HOURS)))
    return hours


# -- queues -------------------------------------------------------------------------------------------
def outbox_depths(conn: Connection, now: dt.datetime | None = None) -> list[QueueDepth]:
    """Items waiting in the outbox per queue, with the age of the oldest: on the embedded broker the
    queues themselves, on AMQP what the relay has not yet handed to the broker."""
    now = aware(now or utcnow())
    rows = conn.execute(
        sa.select(outbox.c.queue, sa.func.count(), sa.func.min(outbox.c.id)).group_by(outbox.c.queue).order_by(outbox.c.queue)
    ).all()
    oldest = dict(conn.execute(sa.select(outbox.c.id, outbox.c.created_at).where(outbox.c.id.in_([r[2] for r in rows]))).all()) if rows else {}
    out = []
    for queue, depth, first in rows:
        at = aware(oldest[first]) if first in oldest else None
        out.append(QueueDepth(queue, int(depth), at, (now - at).total_seconds() if at else None))
    return out
