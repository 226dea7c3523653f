"""Dead letters for an operator: list and count those matching a filter, replay one or all of them.

A dead letter is what a queue gave up (the pipeline after its last attempt, the relay after the
broker refused a push); `message_store.replay` sends its message again and marks the message's dead
letters replayed (`replayed_at`). Lists and bulk replay leave replayed ones out unless asked, so
replaying "everything of partner X since Monday" twice sends nothing twice. A bulk replay goes in
batches, one transaction each: a long run holds no lock for long and a failure keeps the batches
before it. A message that was processed or delivered meanwhile is refused by `replay` itself,
nothing changed, and counted as skipped.

`hub messages dead` and `hub messages replay` use these functions, as the console does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import Field, field_validator, model_validator
from sqlalchemy.engine import Connection, Engine

from hub.findings import Refusal
from hub.store import db, message_store
from hub.store.db import aware
from hub.store.search import MAX_PAGE, Filter, name_value, utc_value
from hub.store.tables import dead_letters, deliveries, messages

#: dead letters replayed per transaction
REPLAY_BATCH = 100


class DeadLetterFilter(Filter):
    """Which dead letters: every given field must hold."""

    #: the message's sender, or a recipient of one of its deliveries
    partner: str | None = None
    message_type: str | None = None
    #: a part of the reason, in any case ("refused", "timeout")
    reason: str | None = Field(default=None, min_length=1, max_length=200)
    queue: str | None = None
    at_from: dt.datetime | None = None
    at_to: dt.datetime | None = None  # exclusive
    include_replayed: bool = False
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: int | None = Field(default=None, ge=1)

    check_names = field_validator("partner", "message_type", "queue")(lambda cls, v: name_value(v))
    check_times = field_validator("at_from", "at_to")(lambda cls, v: utc_value(v))

    @model_validator(mode="after")
    def _range(self) -> DeadLetterFilter:
        if self.at_from and self.at_to and self.at_from >= self.at_to:
            raise ValueError("at_from must be before at_to")
        return self


@dataclass(frozen=True)
class DeadLetter:
    id: int
    queue: str
    message_id: str | None
    sender: str | None
    message_type: str | None
    attempts: int
    reason: str | None
    at: dt.datetime
    replayed_at: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "queue": self.queue, "message_id": self.message_id, "sender": self.sender, "message_type": self.message_type,
            "attempts": self.attempts, "reason": self.reason, "at": self.at.isoformat(),
            "replayed_at": self.replayed_at.isoformat() if self.replayed_at else None,
        }


@dataclass(frozen=True)
class DeadLetterPage:
    """Dead letters newest first; `next_cursor` continues after them (None: the last page)."""

    items: list[DeadLetter]
    next_cursor: int | None


@dataclass
class ReplayResult:
    """What a bulk replay did: messages sent again; dead letters matched but replayed before (left
    out); messages refused because they were processed or delivered meanwhile (nothing changed);
    dead letters that name no message (nothing to send)."""

    replayed: int = 0
    skipped_replayed: int = 0
    skipped_processed: int = 0
    skipped_no_message: int = 0
    #: the first refusals, one sentence each (at most 20)
    refusals: list[str] = field(default_factory=list)


_COLUMNS = (
    dead_letters.c.id, dead_letters.c.queue, dead_letters.c.message_id, messages.c.sender, messages.c.message_type,
    dead_letters.c.attempts, dead_letters.c.reason, dead_letters.c.at, dead_letters.c.replayed_at,
)
_FROM = dead_letters.outerjoin(messages, messages.c.id == dead_letters.c.message_id)


_MESSAGE = messages.alias("m")


def _of_message(column: str) -> Any:
    """A column of the dead letter's message, looked up by its key."""
    return sa.select(_MESSAGE.c[column]).where(_MESSAGE.c.id == dead_letters.c.message_id).correlate(dead_letters).scalar_subquery()


def _conditions(f: DeadLetterFilter, replayed: bool | None) -> list[Any]:
    """`replayed`: None as the filter says, True only replayed ones, False only waiting ones."""
    conds: list[Any] = []
    if replayed is None:
        replayed = None if f.include_replayed else False
    if replayed is not None:
        conds.append(dead_letters.c.replayed_at.is_not(None) if replayed else dead_letters.c.replayed_at.is_(None))
    # the message's columns as a lookup per dead letter on the messages' key: dead letters are few, and
    # a join let PostgreSQL hash every message of the type (55,000) to count a few hundred; beside
    # the OR, EXISTS would hash every delivery to the partner (800,000 for a Jobcenter)
    if f.partner is not None:
        to_partner = (
            sa.select(deliveries.c.recipient)
            .where(deliveries.c.message_id == dead_letters.c.message_id, deliveries.c.recipient == f.partner)
            .limit(1).scalar_subquery()
        )
        conds.append(sa.or_(_of_message("sender") == f.partner, to_partner.is_not(None)))
    if f.message_type is not None:
        conds.append(_of_message("message_type") == f.message_type)
    if f.reason is not None:
        escaped = f.reason.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(dead_letters.c.reason.ilike(f"%{escaped}%", escape="\\"))
    if f.queue is not None:
        conds.append(dead_letters.c.queue == f.queue)
    if f.at_from is not None:
        conds.append(dead_letters.c.at >= f.at_from)
    if f.at_to is not None:
        conds.append(dead_letters.c.at < f.at_to)
    return conds


def page_statement(f: DeadLetterFilter) -> sa.Select:
    conds = _conditions(f, None)
    if f.cursor is not None:
        conds.append(dead_letters.c.id < f.cursor)
    return sa.select(*_COLUMNS).select_from(_FROM).where(*conds).order_by(dead_letters.c.id.desc()).limit(f.limit + 1)


def page(conn: Connection, f: DeadLetterFilter) -> DeadLetterPage:
    """One page of the dead letters matching `f`, newest first."""
    rows = conn.execute(page_statement(f)).all()
    more = len(rows) > f.limit
    items = [
        DeadLetter(r.id, r.queue, r.message_id, r.sender, r.message_type, r.attempts, r.reason, aware(r.at), aware(r.replayed_at) if r.replayed_at else None)
        for r in rows[: f.limit]
    ]
    return DeadLetterPage(items, items[-1].id if more else None)


def count(conn: Connection, f: DeadLetterFilter, replayed: bool | None = None) -> int:
    """How many dead letters match `f` (`replayed`: see `_conditions`)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(dead_letters).where(*_conditions(f, replayed))).scalar_one())


def replay_matching(
    engine: Engine, f: DeadLetterFilter, operator: str, transport: Any, batch: int = REPLAY_BATCH,
    progress: Callable[[ReplayResult], None] | None = None,
) -> ReplayResult:
    """Replay the message of every dead letter matching `f`, oldest first, `batch` dead letters per
    transaction, each message once (`message_store.replay`). Already replayed dead letters are left
    out and counted, unless the filter includes them."""
    result = ReplayResult()
    if not f.include_replayed:
        with db.read(engine) as conn:
            result.skipped_replayed = count(conn, f, replayed=True)
    seen: set[str] = set()
    after = 0
    while True:
        with db.write(engine) as conn:
            rows = conn.execute(
                sa.select(dead_letters.c.id, dead_letters.c.message_id)
                .where(*_conditions(f, None), dead_letters.c.id > after).order_by(dead_letters.c.id).limit(batch)
            ).all()
            if not rows:
                break
            after = rows[-1].id
            for row in rows:
                if row.message_id is None:
                    result.skipped_no_message += 1
                    continue
                if row.message_id in seen:
                    continue
                seen.add(row.message_id)
                try:
                    message_store.replay(conn, row.message_id, operator, transport)
                    result.replayed += 1
                except Refusal as refused:  # processed or delivered meanwhile: replay changed nothing
                    if refused.kind == "not-found":
                        result.skipped_no_message += 1
                        continue
                    result.skipped_processed += 1
                    if len(result.refusals) < 20:
                        result.refusals.append(refused.detail)
        if progress is not None:
            progress(result)
    return result
