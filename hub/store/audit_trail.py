"""The audit log for auditors: verify the hash chain, record anchors, export a period.

`verify` walks every shard's chain (hub.store.audit_chain) from its first entry: each entry's hash must
be the hash of its content, its `prev_hash` the hash of the entry before it, its seq the next one; the
last entry must be what the shard's head row says, and every anchor must name an entry that still has
the hash it had then. It stops at the first break and says which entry and what is wrong.

Anchors are the heads at a point in time. The chain alone proves that nothing was changed *unless*
someone rewrote everything from the change on, head row included; an anchor kept outside the database
(`hub audit anchor` prints them for an operator's append-only copy; `hub audit verify --anchors FILE`
checks such a copy) makes that detectable as well.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.store.audit_chain import CONTENT, GENESIS, entry_hash, stamp
from hub.store.db import utcnow
from hub.store.tables import audit_anchors, audit_heads, audit_log

_ROWS_PER_FETCH = 2000


@dataclass(frozen=True)
class Anchor:
    shard: int
    seq: int
    hash: str
    #: where it comes from, for the sentence that names it ("anchor 12 of 2026-12-03T...", "FILE line 3")
    label: str


@dataclass(frozen=True)
class Break:
    """The first place where the chain does not hold."""

    entry_id: int | None  # None: the entry is gone
    shard: int
    seq: int | None
    what: str

    def sentence(self) -> str:
        where = f"entry {self.entry_id}" if self.entry_id is not None else "an entry that no longer exists"
        return f"audit log broken at {where} (shard {self.shard}, seq {self.seq}): {self.what}"


@dataclass
class Verdict:
    entries: int = 0
    shards: int = 0
    anchors: int = 0
    broken: Break | None = None
    newest_anchor: str | None = None

    def summary(self) -> str:
        """The one line `hub audit verify` prints when the chain holds."""
        text = f"audit log verified: {_count(self.entries, 'entry', 'entries')} in {_count(self.shards, 'shard chain')}"
        if not self.anchors:
            return text + ", no anchors yet"
        text += f", {_count(self.anchors, 'anchor')} {'matches' if self.anchors == 1 else 'match'}"
        return text + (f" (newest {self.newest_anchor})" if self.newest_anchor else "")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


@dataclass
class _Shard:
    """Where the walk through one shard's chain stands."""

    shard: int
    head: tuple[int, str] | None
    seq: int = 0
    hash: str = GENESIS
    entry_id: int | None = None


def verify(conn: Connection, kept: Iterable[Anchor] = ()) -> Verdict:
    """Check every chain, the heads, the stored anchors and `kept` ones (an operator's own copy).

    The heads and anchors are read before the entries: on PostgreSQL each statement sees what was
    committed when it started, so entries appended meanwhile are simply checked too."""
    heads = {r.shard: (r.seq, r.hash) for r in conn.execute(sa.select(audit_heads))}
    anchors: dict[tuple[int, int], list[Anchor]] = {}
    newest: dt.datetime | None = None
    for a in conn.execute(sa.select(audit_anchors).order_by(audit_anchors.c.id)):
        anchors.setdefault((a.shard, a.seq), []).append(Anchor(a.shard, a.seq, a.hash, f"anchor {a.id} of {stamp(a.at)}"))
        newest = a.at
    for a in kept:
        anchors.setdefault((a.shard, a.seq), []).append(a)
    verdict = Verdict(anchors=sum(len(v) for v in anchors.values()), newest_anchor=stamp(newest) if newest else None)
    broken = _walk(conn, heads, anchors, verdict)
    verdict.broken = broken or _unmatched(anchors)
    return verdict


def _walk(conn: Connection, heads: dict[int, tuple[int, str]], anchors: dict[tuple[int, int], list[Anchor]], verdict: Verdict) -> Break | None:
    query = sa.select(audit_log).order_by(audit_log.c.shard, audit_log.c.seq).execution_options(yield_per=_ROWS_PER_FETCH)
    walk: _Shard | None = None
    for row in conn.execute(query).mappings():
        if walk is None or row["shard"] != walk.shard:
            if walk is not None and (broken := _end(walk)):
                return broken
            if row["shard"] not in heads:
                return Break(row["id"], row["shard"], row["seq"], "its shard has no head row (audit_heads was changed)")
            walk = _Shard(row["shard"], heads.pop(row["shard"]))
            verdict.shards += 1
        broken = _check(walk, row, anchors)
        if broken:
            return broken
        walk.seq, walk.hash, walk.entry_id = row["seq"], row["hash"], row["id"]
        verdict.entries += 1
    if walk is not None and (broken := _end(walk)):
        return broken
    for shard, (seq, _hash) in sorted(heads.items()):  # shards without a single entry left
        if seq > 0:
            return Break(None, shard, 1, f"the shard has no entries, but its head says it had {seq}: all were deleted")
    return None


def _check(walk: _Shard, row: Any, anchors: dict[tuple[int, int], list[Anchor]]) -> Break | None:
    """One entry against the entry before it, its own hash, the head and the anchors."""
    entry_id, seq = row["id"], row["seq"]
    if seq != walk.seq + 1:
        if seq > walk.seq + 1:
            missing = f"seq {walk.seq + 1}" if seq == walk.seq + 2 else f"seq {walk.seq + 1} to {seq - 1}"
            return Break(entry_id, walk.shard, seq, f"the entries before it ({missing}) are missing: deleted")
        return Break(entry_id, walk.shard, seq, f"its seq repeats seq {walk.seq}: chained twice")
    if entry_hash(row) != row["hash"]:
        return Break(entry_id, walk.shard, seq, "its content does not match its hash: changed after it was written")
    if row["prev_hash"] != walk.hash:
        if walk.entry_id is None:
            return Break(entry_id, walk.shard, seq, "the first entry of its shard does not start from the genesis hash")
        # this entry is intact (its hash covers its prev_hash): the one before it was rewritten, hash and all
        return Break(walk.entry_id, walk.shard, walk.seq, f"it was rewritten with a new hash: the next entry ({entry_id}) chained to another one")
    for anchor in anchors.pop((walk.shard, seq), ()):
        if anchor.hash != row["hash"]:
            return Break(entry_id, walk.shard, seq, f"{anchor.label} recorded another hash for it: rewritten since")
    if walk.head is not None and walk.head[0] == seq and walk.head[1] != row["hash"]:
        return Break(entry_id, walk.shard, seq, "the head of its shard recorded another hash for it: rewritten since")
    return None


def _end(walk: _Shard) -> Break | None:
    """The shard's chain ends: it must reach at least its head (read before the walk)."""
    if walk.head is not None and walk.seq < walk.head[0]:
        return Break(
            walk.entry_id, walk.shard, walk.seq,
            f"the chain ends here, but its head says seq {walk.head[0]}: the entries after it were deleted",
        )
    return None


def _unmatched(anchors: dict[tuple[int, int], list[Anchor]]) -> Break | None:
    """Anchors whose entry the walk never met: the genesis anchor of an empty shard, or a deleted entry."""
    for (shard, seq), found in sorted(anchors.items()):
        for anchor in found:
            if seq == 0 and anchor.hash == GENESIS:
                continue
            return Break(None, shard, seq, f"{anchor.label} names an entry that is no longer in the chain: deleted")
    return None


def read_anchors(lines: Iterable[str], name: str) -> list[Anchor]:
    """Anchors from an operator's copy: JSON lines as `hub audit anchor` prints them (an export's
    anchor lines too; other lines are skipped). ValueError names a line that is not such an anchor."""
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{name} line {number} is not JSON") from None
        if not isinstance(doc, dict) or doc.get("record", "anchor") != "anchor":
            continue
        try:
            found.append(Anchor(int(doc["shard"]), int(doc["seq"]), str(doc["hash"]), f"the anchor in {name} line {number}"))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{name} line {number} is not an anchor (shard, seq, hash)") from None
    return found


# -- anchors -----------------------------------------------------------------------------------------
def anchor(conn: Connection) -> list[dict[str, Any]]:
    """Record the head of every shard that has entries; returns them as `hub audit anchor` prints them."""
    at = utcnow()
    rows = [{"at": at, "shard": h.shard, "seq": h.seq, "hash": h.hash} for h in conn.execute(sa.select(audit_heads).order_by(audit_heads.c.shard)) if h.seq > 0]
    if rows:
        conn.execute(audit_anchors.insert(), rows)
    return [{"record": "anchor", "shard": r["shard"], "seq": r["seq"], "hash": r["hash"], "at": stamp(at)} for r in rows]


# -- export ------------------------------------------------------------------------------------------
FORMATS = ("jsonl", "csv")
#: CSV columns: `record` says whether the row is an entry or an anchor (anchors fill shard, seq, at, hash)
COLUMNS = ("record", "id", *CONTENT, "hash")


def _entries(conn: Connection, start: dt.datetime, end: dt.datetime) -> Iterator[dict[str, Any]]:
    query = (
        sa.select(audit_log)
        .where(audit_log.c.at >= start, audit_log.c.at < end)
        .order_by(audit_log.c.id)
        .execution_options(yield_per=_ROWS_PER_FETCH)
    )
    for row in conn.execute(query).mappings():
        yield {"record": "entry", "id": row["id"], **{name: row[name] for name in CONTENT}, "at": stamp(row["at"]), "hash": row["hash"]}


def _anchors(conn: Connection, start: dt.datetime, end: dt.datetime) -> Iterator[dict[str, Any]]:
    query = sa.select(audit_anchors).where(audit_anchors.c.at >= start, audit_anchors.c.at < end).order_by(audit_anchors.c.id)
    for a in conn.execute(query):
        yield {"record": "anchor", "id": a.id, "shard": a.shard, "seq": a.seq, "at": stamp(a.at), "hash": a.hash}


def export(conn: Connection, start: dt.datetime, end: dt.datetime, out: IO[str], fmt: str) -> tuple[int, int]:
    """Write the entries (ordered by id) and anchors with `start <= at < end` to `out` as JSON lines
    or CSV; returns (entries, anchors). Every entry carries its shard, seq, prev_hash and hash, so an
    auditor can recompute each hash from the entry alone (docs/audit.md) and check the links."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    counts = [0, 0]
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for kind, records in ((0, _entries(conn, start, end)), (1, _anchors(conn, start, end))):
        for record in records:
            counts[kind] += 1
            if writer is None:
                out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            else:
                if "detail" in record:  # as the hash covers it
                    record["detail"] = json.dumps(record["detail"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                writer.writerow(record)
    return counts[0], counts[1]


@dataclass(frozen=True)
class EntryFilter:
    """What an auditor looks for: by actor, action, message, partner or purpose, in a period."""

    actor: str | None = None
    action: str | None = None
    message_id: str | None = None
    partner: str | None = None
    purpose: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None


def entries(conn: Connection, wanted: EntryFilter, *, limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
    """The newest entries matching `wanted` (older than `before_id`, for the next page), newest first.
    Walks the primary key backwards; the message and the period have their own indexes."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    for column, value in (("actor", wanted.actor), ("action", wanted.action), ("message_id", wanted.message_id),
                          ("partner", wanted.partner), ("purpose", wanted.purpose)):
        if value:
            query = query.where(audit_log.c[column] == value)
    if wanted.start:
        query = query.where(audit_log.c.at >= wanted.start)
    if wanted.end:
        query = query.where(audit_log.c.at < wanted.end)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    return [
        {"id": r.id, "at": r.at, "actor": r.actor, "action": r.action, "message_id": r.message_id, "partner": r.partner,
         "purpose": r.purpose, "legal_basis": r.legal_basis, "detail": r.detail, "shard": r.shard, "seq": r.seq}
        for r in conn.execute(query)
    ]
