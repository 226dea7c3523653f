"""What every part of the person index shares: its state, a record's filed form, the advisory
locks that serialise filing, and the small writes everyone makes (keys, events).

:class:`IndexBase` holds the caches that make lookups cheap (index size per database, blocks too
big to use, SQL text, the weight table), so that each concept module works on one instance.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.dedup import fastcompare
from hub.dedup.linkage import Linker
from hub.dedup.records import PersonRecord
from hub.store.db import utcnow
from hub.store.tables import person_events, person_keys, person_records, persons

FIELDS = ("given_name", "family_name", "birth_name", "birth_date", "street", "house_number", "postcode", "city")


@dataclass(frozen=True)
class Resolution:
    person_id: str
    record_id: str
    decision: str  # known | match | review | new | split (a known record that became someone else)
    weight: float | None = None
    review_id: str | None = None


def person_record(record_id: str, data: dict[str, Any]) -> PersonRecord:
    return PersonRecord(record_id=record_id, ids=dict(data.get("ids") or {}), **{f: data.get(f) for f in FIELDS})

KEY_WIDTH = 96  # person_keys.key

#: first key of the person index's PostgreSQL advisory locks (the two-int form, whose keys never
#: collide with the one-bigint form other code may use); the second key hashes a blocking key
LOCK_SPACE = 0x4D5049  # "MPI"
# The locks are taken in one round trip, in ascending order (the Sort runs below the function
# call), so two resolutions never wait for each other crosswise. The statement deliberately starts
# with WITH, not SELECT: hub.unit_of_work then treats it as a write and issues the item's lazy
# savepoint first, so that if a group transaction is chosen as a deadlock victim (locks held for
# earlier items of the group), only this item is rolled back and retried.
_LOCK_SQL = "WITH k(h) AS (SELECT DISTINCT unnest(CAST(%s AS integer[]))) SELECT pg_advisory_xact_lock(%s, h) FROM k ORDER BY h"


def lock_hash(key: str) -> int:
    """A blocking key as the second key of an advisory lock (signed 32 bits; collisions only make
    two unrelated resolutions wait for each other)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest(), "big", signed=True)


@dataclass(frozen=True)
class Filed:
    """What the index stores about a record besides its data: blocking keys and the normalised
    comparison form (:attr:`norm`)."""

    keys: list[str]
    form: fastcompare.Norm
    tag: str
    record: PersonRecord

    @property
    def row(self) -> fastcompare.Row:
        return fastcompare.row(self.form)

    @property
    def norm(self) -> str | None:
        """person_records.norm; None if it cannot be stored (see fastcompare.encode)."""
        return fastcompare.encode(self.form, self.tag)


class IndexBase:
    """State and shared helpers of the person index (see :mod:`hub.dedup.person_index`)."""

    def __init__(self, linker: Linker, policy: dict[str, Any]) -> None:
        self.linker = linker
        self.subjects: dict[str, dict[str, Any]] = policy.get("subjects") or {}
        # per database (engine: rendering its URL costs more than a lookup's bookkeeping); one
        # process may serve several
        self._sizes: dict[sa.Engine, tuple[float, int]] = {}
        # blocking keys shared by more than max_block records, per database: skipped, as the
        # in-memory index and the batch skip them. Kept for the life of the process: a block grows
        # with every record filed and shrinks only when known records' data change (their keys are
        # rewritten), so a key seldom drops back under max_block (if it does, lookups here skip it
        # until a restart). Only lookups use this set: the locks (_serialise, merge) take every key.
        self._big: dict[sa.Engine, set[str]] = {}
        self._sql: dict[tuple[str, int, int], str] = {}
        self._fast: bool | None = None  # fastcompare agrees with compare.py (checked on first use)
        self._keys_tag: str | None = None
        self._weight_table: fastcompare.Weights | None = None
        self._thresholds_at: dict[int, float] = {}

    def _serialise(self, conn: Connection, keys: Iterable[str]) -> None:
        """PostgreSQL: wait until no other transaction holds a lock on any of ``keys`` and hold
        them until this one ends (pg_advisory_xact_lock). Two records that could be the same person
        share a blocking key (else neither would ever be the other's candidate), so filing them is
        serialised; one statement, locks in ascending order (no deadlock between two of them).
        SQLite: nothing to do, a writing transaction holds the database's only write lock."""
        if conn.dialect.name != "postgresql":
            return
        hashes = sorted({lock_hash(k) for k in keys})
        if hashes:
            conn.exec_driver_sql(_LOCK_SQL, (hashes, LOCK_SPACE)).all()

    def file_form(self, data: dict[str, Any]) -> Filed:
        """Blocking keys and normalised form of a record's data (one normalisation for both)."""
        record = person_record("query", data)
        # normalised with a vocabulary of its own: keys that spell out values (street + house
        # number) need the values, which Linker.blocking_keys' frozen empty vocabulary lacks
        keys, form = fastcompare.keys_and_form(record, self.linker.passes)
        return Filed(sorted({k[:KEY_WIDTH] for k in keys}), form, self.keys_tag, record)

    @property
    def keys_tag(self) -> str:
        """Fingerprint of the blocking passes (their keys for the probe records), stored with
        each record's form: records filed under other passes are re-filed by refresh()."""
        if self._keys_tag is None:
            keys = [fastcompare.keys_and_form(r, self.linker.passes)[0] for r in fastcompare._probe_records()]
            self._keys_tag = "k" + hashlib.sha1(repr(keys).encode("utf-8")).hexdigest()[:8]
        return self._keys_tag

    def _data_of(self, conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for s in range(0, len(ids), 500):
            rows = conn.execute(sa.select(person_records.c.id, person_records.c.data).where(person_records.c.id.in_(ids[s : s + 500])))
            out.update({r.id: r.data for r in rows})
        return out

    def index_size(self, conn: Connection) -> int:
        """Persons in the index (the N of the prior), recounted at most once a minute."""
        key = conn.engine
        cached = self._sizes.get(key)
        if cached is None or time.monotonic() - cached[0] > 60:
            n = conn.execute(sa.select(sa.func.count()).select_from(persons).where(persons.c.merged_into.is_(None))).scalar_one()
            cached = self._sizes[key] = (time.monotonic(), n)
        return cached[1]

    def _forget_size(self, conn: Connection) -> None:
        self._sizes.pop(conn.engine, None)

    def _write_keys(self, conn: Connection, record_id: str, keys: list[str]) -> None:
        conn.execute(person_keys.delete().where(person_keys.c.record_id == record_id))
        if keys:
            conn.execute(person_keys.insert(), [{"key": k, "record_id": record_id} for k in keys])

    def _event(self, conn: Connection, action: str, person_id: str, *, actor: str, other: str | None = None, record_id: str | None = None, **detail: Any) -> None:
        conn.execute(
            person_events.insert().values(
                at=utcnow(), action=action, person_id=person_id, other_person_id=other, record_id=record_id, actor=actor, detail=detail or None
            )
        )
