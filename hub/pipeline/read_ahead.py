"""What a batch reads ahead for its messages, so the stages need no round trip per message.

A consumer hands the pipeline a batch of queue items in one transaction. `prefetch` reads (and
locks) their message rows in one statement, decodes them, and reads the cases they name, whether
their providers run the measures, and their report fingerprints, one statement each -- on
PostgreSQL those round trips were the worker's main wait. The stages take from here only what
cannot change within the batch (`UnitOfWork.reads_current`); what the batch itself did (its
fingerprints, the messages it processed) is kept here too, and rewound with a failed item's savepoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.canonical import Message
from hub.chain import membership
from hub.chain.membership import Case
from hub.partners import Partner
from hub.pipeline.context import case_ref
from hub.pipeline.fingerprints import report_digest
from hub.routing.rules import Route
from hub.runtime import Hub
from hub.store import unit_of_work
from hub.store.tables import messages, report_fingerprints
from hub.transport import Item


@dataclass
class ReadAhead:
    """The batch's read-ahead and its own doings, kept on the unit of work (`UnitOfWork.extension`)."""

    #: message id -> its locked row
    rows: dict[str, Any] = field(default_factory=dict)
    #: message id -> the message decoded
    decoded: dict[str, Message] = field(default_factory=dict)
    #: (sender, the sender's case reference) -> case
    cases: dict[tuple[str, str], Case] = field(default_factory=dict)
    #: (case, provider, measure) -> whether the provider runs that measure for the case
    runs: dict[tuple[str, str, str], bool] = field(default_factory=dict)
    #: report digest -> the message stored with it before the batch (None: none)
    stored_fingerprints: dict[str, str | None] = field(default_factory=dict)
    #: report digest -> the message of this batch that carried it first
    fingerprints: dict[str, str] = field(default_factory=dict)
    #: messages this batch processed (their status change still waits in the unit of work)
    processed: set[str] = field(default_factory=set)

    def snapshot(self) -> tuple[dict, dict, dict, set]:
        return dict(self.rows), dict(self.decoded), dict(self.fingerprints), set(self.processed)

    def restore(self, snapshot: tuple[dict, dict, dict, set]) -> None:
        self.rows, self.decoded, self.fingerprints, self.processed = dict(snapshot[0]), dict(snapshot[1]), dict(snapshot[2]), set(snapshot[3])


def of(conn: Connection) -> ReadAhead | None:
    """The read-ahead of the batch running on `conn`, or None outside a batch."""
    unit = unit_of_work.current(conn)
    return unit.extension(ReadAhead) if unit is not None else None


def current(conn: Connection) -> ReadAhead | None:
    """The read-ahead, where what it read is still what the database holds (nothing written at once since)."""
    unit = unit_of_work.current(conn)
    return unit.extension(ReadAhead) if unit is not None and unit.reads_current() else None


_SELECT_MESSAGES = sa.select(messages).where(messages.c.id.in_(sa.bindparam("ids", expanding=True))).with_for_update()
_RECEIVED = sa.select(sa.func.count()).select_from(messages).where(messages.c.id.in_(sa.bindparam("ids", expanding=True)), messages.c.status == "received")
_SELECT_FINGERPRINTS = sa.select(report_fingerprints.c.fingerprint, report_fingerprints.c.message_id).where(
    report_fingerprints.c.fingerprint.in_(sa.bindparam("digests", expanding=True))
)


def prefetch(hub: Hub, conn: Connection, items: list[Item]) -> None:
    """Read (and lock) the message rows of a whole batch in one statement; `handle` takes them from
    here instead of one round trip each."""
    ahead = of(conn)
    ids = [item.payload.get("message_id") for item in items if item.payload.get("message_id")]
    if ahead is None or not ids:
        return
    rows = conn.execute(_SELECT_MESSAGES, {"ids": ids}).all()
    for row in rows:
        ahead.rows[row.id] = row
    _read_ahead(hub, conn, ahead, rows)


def still_current(conn: Connection) -> bool:
    """Under the write lock, after a speculative pass: every message the pass processed is still
    unprocessed in the database (else another worker was faster and the pass is void)."""
    ahead = of(conn)
    ids = sorted(ahead.processed) if ahead is not None else []
    return not ids or conn.execute(_RECEIVED, {"ids": ids}).scalar_one() == len(ids)


def _read_ahead(hub: Hub, conn: Connection, ahead: ReadAhead, rows: list[Any]) -> None:
    """Decode the batch's messages and read the cases they name and their report fingerprints in one
    statement each.

    Only what cannot change within the batch is taken from here: a case found by reference (until an
    item writes at once; a reference not found is asked again), whether a fingerprint was stored
    before the batch (the batch's own are in `fingerprints`). A message that does not decode is left
    to the decode stage, which refuses it with its findings."""
    decoded: list[tuple[Any, Partner, Message, list[Route]]] = []
    for row in rows:
        sender = hub.partners.get(row.sender)
        if row.status != "received" or sender is None:
            continue
        try:
            message = hub.adapter(row.format).decode(row.raw)
        except Exception:  # noqa: BLE001 - the decode stage says what is wrong
            continue
        ahead.decoded[row.id] = message
        decoded.append((row, sender, message, hub.routes.matching(row.message_type, sender.role)))
    refs = {(sender.id, ref) for _, sender, message, routes in decoded if any(r.requires_case_membership for r in routes) and (ref := case_ref(message))}
    found = membership.cases_for_refs(conn, sorted(refs))
    ahead.cases.update(found)
    reported = [  # (case, provider, measure) the batch's provider reports name: does the provider run it?
        (case.id, sender.id, measure)
        for _, sender, message, _ in decoded
        if sender.role == "provider" and (measure := getattr(message.body, "measure_number", None))
        and (case := found.get((sender.id, case_ref(message) or ""))) is not None
    ]
    runs = membership.measures_of(conn, sorted({case_id for case_id, _, _ in reported}))
    for key in reported:
        ahead.runs[key] = key in runs
    patterns = hub.dedup_policy.get("duplicate_reports") or ()
    in_body = hub.dedup_policy.get("case_refs") or {}
    digests = []
    for row, sender, message, routes in decoded:
        if any(r.opens_case for r in routes) or not any(fnmatchcase(row.message_type, p) for p in patterns):
            continue  # no report, or its case is only known once the case chain stage opened it
        if row.message_type in in_body:
            continue  # the cases its lines name are looked up by the stage
        if any(r.requires_case_membership for r in routes):
            case = found.get((sender.id, case_ref(message) or ""))
            if case is None:
                continue  # refused by the case chain stage before its fingerprint matters
            digests.append(report_digest(row.message_type, sender, case.id, message))
        else:
            digests.append(report_digest(row.message_type, sender, None, message))
    if digests:
        stored = dict(conn.execute(_SELECT_FINGERPRINTS, {"digests": digests}).all())
        for digest in digests:
            ahead.stored_fingerprints[digest] = stored.get(digest)
