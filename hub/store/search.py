"""Message search for the console: by id, partner, type, status, case reference and time of receipt,
newest first, one page at a time.

Over a million messages an OFFSET walks every row it skips; a page here continues after the last id
of the one before (keyset pagination: the cursor is that id), so every page costs the same. Each
filter has its index: (sender, id), (message_type, id), (status, id), deliveries (recipient,
message_id) for what a partner received, message_cases for a case's messages, and a time range is
an id range, since ids are ULIDs. A filter is a typed object that refuses what it cannot answer
(`Refusal`, kind invalid-request, one sentence naming the field), so the console shows the reason.

Two filters together (a partner and a status, say) have no index of their own: one drives and the
other is checked row by row, and a rare combination would walk a month of the partner's messages for
one page. Such a search therefore looks back in slices of time, growing fourfold from six hours (no
more than the time left would take at the pace so far), until the page is full or `BUDGET_SECONDS`
are spent; then it answers with what it found, the cursor
where it stopped and `searched_to`, and the next page goes on from there. Every page stays within a
page's time; the console says "searched back to ..." and offers to go on.

Only the messages' metadata is read, never a body: the caller audits what it shows.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any, Literal, Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import Connection

from hub.findings import Refusal
from hub.ids import id_floor, id_time
from hub.store.db import aware
from hub.store.tables import case_members, cases, deliveries, message_cases, messages

#: a page holds at most this many messages
MAX_PAGE = 200
#: what a search of two or more filters spends on one page before it answers with what it found
BUDGET_SECONDS = 0.15
FIRST_SLICE = dt.timedelta(hours=6)
MIN_SLICE = 60.0  # seconds: less is not worth another statement
STATUSES = ("received", "routed", "rejected", "duplicate", "delivered", "dead")
_KEY = re.compile(r"^[0-9A-Za-z]{1,26}$")
_NAME = re.compile(r"^[0-9A-Za-z_.:-]{1,64}$")


def key_value(value: str | None) -> str | None:
    if value is not None and not _KEY.match(value):
        raise ValueError("must be a message id (up to 26 letters and digits)")
    return value


def name_value(value: str | None) -> str | None:
    if value is not None and not _NAME.match(value):
        raise ValueError("must be a partner id or message type code (letters, digits, . _ : -)")
    return value


def utc_value(value: dt.datetime | None) -> dt.datetime | None:
    return aware(value) if value is not None else None  # no zone given: UTC, as everything stored


class Filter(BaseModel):
    """A typed filter of the console: unknown fields refused, immutable, built from loose input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, **fields: Any) -> Self:
        """A filter from loose input (query parameters: strings; None or "" for an empty field), or a
        Refusal naming the first field that is wrong and why."""
        try:
            return cls(**{k: v for k, v in fields.items() if v not in (None, "")})
        except ValidationError as exc:
            raise refusal(exc) from None


class MessageFilter(Filter):
    """What the console's search asks for; every field optional, all given ones must hold."""

    id: str | None = None
    #: the sender or a recipient (`role` narrows it to one side)
    partner: str | None = None
    role: Literal["any", "sender", "recipient"] = "any"
    message_type: str | None = None
    status: Literal["received", "routed", "rejected", "duplicate", "delivered", "dead"] | None = None
    #: any member's reference for a case (a Kundennummer, a provider's case id) or the hub's case id
    case_ref: str | None = Field(default=None, min_length=1, max_length=40)
    received_from: dt.datetime | None = None
    received_to: dt.datetime | None = None  # exclusive
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    #: the `next_cursor` of the page before
    cursor: str | None = None

    check_keys = field_validator("id", "cursor")(lambda cls, v: key_value(v))
    check_names = field_validator("partner", "message_type")(lambda cls, v: name_value(v))
    check_times = field_validator("received_from", "received_to")(lambda cls, v: utc_value(v))

    @model_validator(mode="after")
    def _range(self) -> MessageFilter:
        if self.received_from and self.received_to and self.received_from >= self.received_to:
            raise ValueError("received_from must be before received_to")
        if self.role != "any" and self.partner is None:
            raise ValueError("role needs a partner")
        return self


def refusal(exc: ValidationError) -> Refusal:
    """One sentence for the first error of a filter (what the console and the CLI show)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "is not a filter"
    if first["type"] == "less_than_equal" and where == "limit":
        message = f"at most {MAX_PAGE} fit on a page"
    return Refusal("invalid-request", f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class MessageSummary:
    id: str
    sender: str
    message_type: str
    version: str
    status: str
    received_at: dt.datetime
    updated_at: dt.datetime
    correlation_id: str
    test: bool


@dataclass(frozen=True)
class Page:
    """A page of messages, newest first; `next_cursor` continues after it (None: this is the last)."""

    items: list[MessageSummary]
    next_cursor: str | None
    #: set when the search stopped at its time budget: it looked at the messages received from this
    #: instant on (and may have found fewer than a page); the next page goes on before it
    searched_to: dt.datetime | None = None


_COLUMNS = (
    messages.c.id, messages.c.sender, messages.c.message_type, messages.c.version, messages.c.status,
    messages.c.created_at, messages.c.updated_at, messages.c.correlation_id, messages.c.test,
)


def case_ids(conn: Connection, ref: str) -> list[str]:
    """The cases a reference names: the hub's case id, or any member's own reference for it."""
    named = sa.select(case_members.c.case_id).where(case_members.c.local_ref == ref)
    own = sa.select(cases.c.id).where(cases.c.id == ref)
    return sorted({r[0] for r in conn.execute(sa.union(named, own))})


def _conditions(f: MessageFilter, cases_of_ref: list[str] | None, lower: str | None, upper: str | None) -> list[Any]:
    conds: list[Any] = []
    if f.id is not None:
        conds.append(messages.c.id == f.id)
    if f.message_type is not None:
        conds.append(messages.c.message_type == f.message_type)
    if f.status is not None:
        conds.append(messages.c.status == f.status)
    if f.received_from is not None:
        conds.append(messages.c.id >= id_floor(f.received_from.timestamp()))
    if f.received_to is not None:
        conds.append(messages.c.id < id_floor(f.received_to.timestamp()))
    if f.cursor is not None:
        conds.append(messages.c.id < f.cursor)
    if lower is not None:
        conds.append(messages.c.id >= lower)
    if upper is not None:
        conds.append(messages.c.id < upper)
    if cases_of_ref is not None:
        conds.append(messages.c.id.in_(sa.select(message_cases.c.message_id).where(message_cases.c.case_id.in_(cases_of_ref))))
    return conds


def statements(conn: Connection, f: MessageFilter, lower: str | None = None, upper: str | None = None) -> list[sa.Select]:
    """The statements a search runs (one, or two for a partner on either side, merged by id), over
    the ids in [lower, upper) where given: for the page, and for checking that each uses an index
    (tests, `bench/console_bench.py`)."""
    cases_of_ref = case_ids(conn, f.case_ref) if f.case_ref is not None else None
    if cases_of_ref == []:
        return []  # a reference nobody uses: no message
    conds = _conditions(f, cases_of_ref, lower, upper)
    n = f.limit + 1
    out = []
    if f.partner is None or f.role in ("any", "sender"):
        sent = sa.select(*_COLUMNS).where(*conds)
        if f.partner is not None:
            sent = sent.where(messages.c.sender == f.partner)
        out.append(sent.order_by(messages.c.id.desc()).limit(n))
    if f.partner is not None and f.role in ("any", "recipient"):
        # ordered by the delivery's message id: the index (recipient, message_id) walks it newest first
        received = (
            sa.select(*_COLUMNS)
            .select_from(deliveries.join(messages, messages.c.id == deliveries.c.message_id))
            .where(deliveries.c.recipient == f.partner, *conds)
            .where(*([deliveries.c.message_id >= lower] if lower else []), *([deliveries.c.message_id < upper] if upper else []))
            .order_by(deliveries.c.message_id.desc())
            .limit(2 * n)  # a message may have two deliveries to one partner
        )
        out.append(received)
    return out


def _sliced(f: MessageFilter) -> bool:
    """Whether one index does not answer the filter alone (two of partner, type, status; a few rows
    of an id or a case need no slices)."""
    return f.id is None and f.case_ref is None and sum(v is not None for v in (f.partner, f.message_type, f.status)) >= 2


def search(conn: Connection, f: MessageFilter, budget: float = BUDGET_SECONDS) -> Page:
    """One page of the messages matching `f`, newest first (see the module's docstring for a page
    that stops at its time budget)."""
    found: dict[str, Any] = {}
    started = time.perf_counter()
    upper = f.cursor
    top = id_time(f.cursor) if f.cursor else (f.received_to or dt.datetime.now(dt.timezone.utc)).timestamp()
    sliced = _sliced(f) and top is not None
    bottom = f.received_from.timestamp() if f.received_from else _oldest(conn) if sliced else None
    span: float = FIRST_SLICE.total_seconds()
    stopped: float | None = None
    covered = 0.0
    while True:
        low = top - span if sliced and bottom is not None and top - span > bottom else None
        lower = id_floor(low) if low is not None else None
        for statement in statements(conn, f, lower, upper):
            for row in conn.execute(statement):
                found.setdefault(row.id, row)
        if len(found) > f.limit or lower is None:
            break
        covered += span
        spent = time.perf_counter() - started
        # the next slice grows fourfold, but only as far as the time left would take it at the pace so far
        span = min(span * 4, (budget - spent) * covered / spent) if spent > 0 else span * 4
        if span < MIN_SLICE:
            stopped = low
            break
        upper, top = lower, low
    rows = [found[k] for k in sorted(found, reverse=True)]
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    items = [
        MessageSummary(r.id, r.sender, r.message_type, r.version, r.status, aware(r.created_at), aware(r.updated_at), r.correlation_id, bool(r.test))
        for r in rows
    ]
    if stopped is not None and not more:
        return Page(items, id_floor(stopped), dt.datetime.fromtimestamp(stopped, dt.timezone.utc))
    return Page(items, rows[-1].id if more and rows else None)


def _oldest(conn: Connection) -> float | None:
    """When the oldest message came (where slices stop)."""
    first = conn.execute(sa.select(sa.func.min(messages.c.id))).scalar()
    return id_time(first) if first else None
