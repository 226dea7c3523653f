"""Stage: a report whose content arrived before from the same sender is answered, never delivered twice."""

from __future__ import annotations

from fnmatch import fnmatchcase

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.chain import membership
from hub.pipeline import read_ahead
from hub.pipeline.context import Context, Duplicate
from hub.pipeline.fingerprints import report_digest
from hub.runtime import Hub
from hub.store import unit_of_work
from hub.store.db import utcnow
from hub.store.tables import report_fingerprints

_SELECT_FINGERPRINT = sa.select(report_fingerprints.c.message_id).where(report_fingerprints.c.fingerprint == sa.bindparam("fingerprint"))
_INSERT_FINGERPRINT = report_fingerprints.insert()


def detect_duplicate_report(hub: Hub, conn: Connection, ctx: Context) -> None:
    """The same report content for the same case, again: raise `Duplicate` naming the first message."""
    patterns = hub.dedup_policy.get("duplicate_reports") or ()
    if not any(fnmatchcase(ctx.row.message_type, p) for p in patterns):
        return
    refs = (hub.dedup_policy.get("case_refs") or {}).get(ctx.row.message_type, ())
    digest = report_digest(
        ctx.row.message_type, ctx.sender, ctx.case.id if ctx.case else None, ctx.message,
        lambda ref: (case.id if (case := membership.case_for_ref(conn, ctx.sender.id, ref)) else None), refs,
    )
    ahead = read_ahead.of(conn)
    first = ahead.fingerprints.get(digest) if ahead is not None else None  # earlier in this batch
    if first is None:
        if ahead is not None and digest in ahead.stored_fingerprints:  # read ahead for the batch
            first = ahead.stored_fingerprints[digest]
        else:
            first = conn.execute(_SELECT_FINGERPRINT, {"fingerprint": digest}).scalar()
    if first is not None and first != ctx.row.id:
        raise Duplicate(first)
    if first is None:
        unit_of_work.execute(conn, _INSERT_FINGERPRINT, {"fingerprint": digest, "message_id": ctx.row.id, "at": utcnow()})
        if ahead is not None:
            ahead.fingerprints[digest] = ctx.row.id
