"""The audit log's hash chain: each entry's hash covers its content and the hash of the entry before it.

An entry changed, removed or slipped in afterwards breaks the chain where it happened, and `hub audit
verify` (hub.store.audit_trail) names it. What the hash covers, as canonical JSON (`canonical`): the
entry's place (shard, seq), the previous entry's hash, and its content -- actor, action, time,
message and delivery id, partner, purpose, legal basis and detail. The row id is not covered: it is
the database's, and an auditor's copy may number rows differently.

Why shards. One chain means one head, so every transaction that writes an audit entry would wait for
the one before it to commit: on PostgreSQL, with competing pipeline workers, the group commit of
accepts and API requests (inbox reads, acks) in many processes, the head would be the hub's single
lock. So there are `SHARDS` chains, each with a head row in `audit_heads` (its last seq and hash). A
transaction appends to one shard: it locks a head row `FOR UPDATE SKIP LOCKED`, preferring the shard
its connection used last and taking the next free one when that is busy, so it waits only when every
shard is held by a transaction about to commit. Alternatives considered: sequence numbers per shard
without a head row need the previous entry's hash anyway (a read of the last row under a lock, e.g. an
advisory lock, which SQLite does not have), and a global sequence with the chain computed later by a
background job leaves fresh entries unchained and makes the chain a second, lagging truth.

When. Rows are sealed (`seal_rows`) when they are written, not when `history.audit` is called: in a
unit of work at its flush, as the last statement before the commit (hub.store.unit_of_work.seal), so a
batch is still one executemany and the head is locked only for its last moments; outside a unit at
once. The head update is part of the same transaction: a rollback (of the transaction, or of a
savepoint around an entry written at once) takes the entries and the head back together, so no entry
is lost, skipped or chained twice. On SQLite writers are serialized anyway; the shards cost nothing
there, and it appends to shard 0 alone. `UNIQUE (shard, seq)` makes a fork impossible to store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from hub.store import unit_of_work
from hub.store.db import aware
from hub.store.tables import audit_log

#: chains appended to side by side (the heads are made by migration 0011)
SHARDS = 16
#: the "previous hash" of a shard's first entry
GENESIS = "0" * 64
#: what an entry's hash covers, besides nothing else (the row id is the database's)
CONTENT = ("shard", "seq", "prev_hash", "at", "actor", "action", "message_id", "delivery_id", "partner", "purpose", "legal_basis", "detail")

INSERT = audit_log.insert()


# the head statements run on the driver connection (hub.store.unit_of_work.direct): through SQLAlchemy
# the two of them cost more than the inserts of a transaction's entries. `shard < p` orders the
# connection's own shard p and those after it first (false sorts before true on both databases).
_HEAD = "SELECT shard, seq, hash FROM audit_heads ORDER BY shard < {p}, shard LIMIT 1"
#: dialect -> (the first head no other transaction holds -- rows this transaction locked are not
#: skipped --, the preferred one, waited for when every head is held, the head's update)
_SQL = {
    "postgresql": (_HEAD.format(p="%s") + " FOR UPDATE SKIP LOCKED", _HEAD.format(p="%s") + " FOR UPDATE", "UPDATE audit_heads SET seq = %s, hash = %s WHERE shard = %s"),
    "sqlite": (_HEAD.format(p="?"), _HEAD.format(p="?"), "UPDATE audit_heads SET seq = ?, hash = ? WHERE shard = ?"),
}

_PREFERRED = "hub_audit_shard"  # key in the pooled connection's info: the shard it appended to last


def stamp(at: dt.datetime) -> str:
    """A time as the hash covers it: UTC, microseconds, ISO 8601 (the same from SQLite and PostgreSQL)."""
    return aware(at).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash is taken over: its CONTENT as JSON with sorted keys, no spaces, UTF-8.

    `at` may be a datetime (as stored) or already its `stamp` (as exported)."""
    doc = {name: entry.get(name) for name in CONTENT}
    if isinstance(doc["at"], dt.datetime):
        doc["at"] = stamp(doc["at"])
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of `canonical(entry)`."""
    return hashlib.sha256(canonical(entry)).hexdigest()


_SCALARS = (str, int, float, bool, type(None))


def normalised(detail: Any) -> Any:
    """`detail` as the JSON column gives it back (tuples as lists, keys as strings), so the hash taken
    now is the one verified later. The usual detail -- string keys, scalars and lists of scalars --
    is that already and is not copied (a round trip through JSON costs more than the hash)."""
    if detail is None:
        return None
    if type(detail) is dict and all(
        type(k) is str and (type(v) in _SCALARS or (type(v) is list and all(type(x) in _SCALARS for x in v))) for k, v in detail.items()
    ):
        return detail
    return json.loads(json.dumps(detail, allow_nan=False))


def take_head(conn: Connection) -> tuple[int, int, str]:
    """Lock and read the head of a shard for this transaction (see the module's docstring): (shard, seq, hash)."""
    free, wait, _ = _SQL[conn.dialect.name]
    first = conn.info.get(_PREFERRED)
    if first is None:  # SQLite has one writer at a time: one chain is as fast and simpler to read
        first = 0 if conn.dialect.name == "sqlite" else random.randrange(SHARDS)
    with unit_of_work.direct(conn, free) as driver:
        cursor = driver.cursor()
        try:
            head = cursor.execute(free, (first,)).fetchone() or cursor.execute(wait, (first,)).fetchone()
        finally:
            cursor.close()
    if head is None:
        raise RuntimeError("the audit log has no chain heads (audit_heads is empty): run `hub db upgrade`")
    conn.info[_PREFERRED] = head[0]
    return head[0], head[1], head[2]


def seal_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Chain `rows` (audit_log parameter dicts, in order) onto a shard and advance its head, in the
    connection's transaction. Idempotent on the dicts: sealed again (a flush tried again), they are
    chained afresh."""
    shard, seq, prev = take_head(conn)
    for row in rows:
        seq += 1
        row["detail"] = normalised(row.get("detail"))
        row["shard"], row["seq"], row["prev_hash"] = shard, seq, prev
        prev = row["hash"] = entry_hash(row)
    advance = _SQL[conn.dialect.name][2]
    with unit_of_work.direct(conn, advance) as driver:
        cursor = driver.cursor()
        try:
            cursor.execute(advance, (seq, prev, shard))
        finally:
            cursor.close()


unit_of_work.seal(INSERT, seal_rows)
