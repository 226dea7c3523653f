"""The master person index: one person behind the records of many systems, in the database.

Every record a partner sends about a person is filed under (partner, local id) - the id
cross-reference - and under the person the linker decides it belongs to. Blocking keys are stored
in an indexed table, so a lookup fetches only the records that share a key with the query and
scores them with the Fellegi-Sunter model (contracts/dedup/model.json). Uncertain matches wait in a
review queue; merges and unmerges are recorded as events and never lose a record: each record
remembers the person it was first filed under, so an unmerge gives back exactly the records of the
person and of the persons merged into it, however far later merges carried them.

A record is always filed under a live person (one not merged into another). When a known record's
data changes so that it no longer matches the other records of its person, it is split off into a
person of its own (and offered for review where the model is unsure). On PostgreSQL, resolutions
and merges that could concern the same person take advisory locks on the records' blocking keys,
so two workers never file one new person twice (SQLite has one writer anyway).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection

from hub.store.db import aware, utcnow
from hub.dedup import fastcompare
from hub.dedup.linkage import MATCH, NON_MATCH, REVIEW, Candidate, Linker
from hub.dedup.records import PersonRecord
from hub.findings import Refusal
from hub.ids import new_id
from hub.store.tables import match_reviews, person_events, person_keys, person_records, persons

log = logging.getLogger(__name__)

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
SQLITE_MMAP = 2**31

#: first key of the person index's PostgreSQL advisory locks (the two-int form, whose keys never
#: collide with the one-bigint form other code may use); the second key hashes a blocking key
LOCK_SPACE = 0x4D5049  # "MPI"
# The locks are taken in one round trip, in ascending order (the Sort runs below the function
# call), so two resolutions never wait for each other crosswise. The statement deliberately starts
# with WITH, not SELECT: hub.unit_of_work then treats it as a write and issues the item's lazy
# savepoint first, so that if a group transaction is chosen as a deadlock victim (locks held for
# earlier items of the group), only this item is rolled back and retried.
_LOCK_SQL = "WITH k(h) AS (SELECT DISTINCT unnest(CAST(%s AS integer[]))) SELECT pg_advisory_xact_lock(%s, h) FROM k ORDER BY h"
_RANK = {MATCH: 2, REVIEW: 1}  # decisions of the best candidate, best first; none (non-match) is 0


def lock_hash(key: str) -> int:
    """A blocking key as the second key of an advisory lock (signed 32 bits; collisions only make
    two unrelated resolutions wait for each other)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest(), "big", signed=True)


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The fields (ids per scheme, as ``ids.<scheme>``) whose values differ: what an ``updated``
    event names, without the values (they stay in person_records)."""
    flat_before, flat_after = _flat(before), _flat(after)
    return sorted(k for k in flat_before.keys() | flat_after.keys() if flat_before.get(k) != flat_after.get(k))


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != "ids"}
    out.update({f"ids.{scheme}": v for scheme, v in (data.get("ids") or {}).items()})
    return out


#: "HUB" + 7 Crockford base32 characters: fits the Kundennummer pattern of the contracts
#: ([0-9A-Z]{3}[0-9A-Z]{4,7}) and is never mistaken for a BA Kundennummer (digits, letter, digits)
PSEUDONYM_PREFIX = "HUB"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: a partner's own id for a person: its latest record there that the hub did not issue, else the issued one
_OWN_ID = (
    sa.select(person_records.c.local_id)
    .where(person_records.c.person_id == sa.bindparam("person_id"), person_records.c.partner_id == sa.bindparam("partner_id"))
    .order_by(person_records.c.issued, person_records.c.updated_at.desc(), person_records.c.id.desc())
    .limit(1)
)
_ID_TAKEN = sa.select(person_records.c.id).where(person_records.c.partner_id == sa.bindparam("partner_id"), person_records.c.local_id == sa.bindparam("local_id"))


def new_pseudonym() -> str:
    return PSEUDONYM_PREFIX + "".join(secrets.choice(_CROCKFORD) for _ in range(7))


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




class PersonIndex:
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

    @classmethod
    def load(cls, contracts_dir: Path) -> PersonIndex | None:
        model, policy = contracts_dir / "dedup" / "model.json", contracts_dir / "dedup" / "policy.yaml"
        if not model.exists():
            return None
        return cls(Linker.from_dict(json.loads(model.read_text(encoding="utf-8"))), yaml.safe_load(policy.read_text(encoding="utf-8")))

    # -- what the pipeline calls -------------------------------------------------------------------
    def subject(self, message_type: str, body: dict[str, Any], sender_role: str | None = None) -> tuple[str, dict[str, Any]] | None:
        """(local id, record data) of the person a message carries, or None.

        An id scheme with `id_issuers` in the policy is an id only where the sender's role issues it:
        a Jobcenter's customer_number is the BA Kundennummer, a municipal office's is its own client
        number -- its local id, never compared with a Kundennummer (that would count every true
        match as 'ids different')."""
        spec = self.subjects.get(message_type)
        if spec is None or not isinstance(body.get(spec["person"]), dict) or not body.get(spec["local_id"]):
            return None
        person = body[spec["person"]]
        address = person.get("address") or {}
        data = {f: person.get(f) for f in ("given_name", "family_name", "birth_name", "birth_date")}
        data.update({f: address.get(f) for f in ("street", "house_number", "postcode", "city")})
        issuers = spec.get("id_issuers") or {}
        data["ids"] = {
            scheme: body[field] for scheme, field in spec.get("ids", {}).items()
            if body.get(field) and (scheme not in issuers or sender_role in issuers[scheme])
        }
        return str(body[spec["local_id"]]), {k: v for k, v in data.items() if v}

    def resolve(self, conn: Connection, partner_id: str, local_id: str, data: dict[str, Any], message_id: str | None = None) -> Resolution:
        known = conn.execute(
            sa.select(
                person_records.c.id, person_records.c.person_id, person_records.c.origin_person_id, person_records.c.data,
                person_records.c.norm, person_records.c.issued,
            ).where(person_records.c.partner_id == partner_id, person_records.c.local_id == local_id)
        ).first()
        now = utcnow()
        filed = self.file_form(data)
        if known is not None:
            return self._update_known(conn, known, partner_id, data, filed, message_id, now)
        # a worker filing a record that shares a key with this one (and so could be the same
        # person) commits first: its record is then a candidate here, not a second new person
        self._serialise(conn, filed.keys)
        candidates = self._candidates(conn, [filed], limit=5)[0]
        top = candidates[0] if candidates else None
        record_id = new_id()
        if top is not None and top.decision == MATCH:
            person_id, decision = top.person_id, "match"
        else:
            person_id, decision = new_id(), ("review" if top is not None and top.decision == REVIEW else "new")
            conn.execute(persons.insert().values(id=person_id, created_at=now))
            self._forget_size(conn)
        conn.execute(
            person_records.insert().values(
                id=record_id, person_id=person_id, origin_person_id=person_id, partner_id=partner_id, local_id=local_id,
                data=data, norm=filed.norm, message_id=message_id, created_at=now, updated_at=now,
            )
        )
        self._write_keys(conn, record_id, filed.keys)
        review_id = self._open_review(conn, record_id, top, now) if decision == "review" else None
        self._event(conn, "filed", person_id, record_id=record_id, actor="hub", decision=decision, weight=top.weight if top else None, partner=partner_id)
        return Resolution(person_id, record_id, decision, top.weight if top else None, review_id)

    def _open_review(self, conn: Connection, record_id: str, candidate: Candidate, now: dt.datetime) -> str:
        review_id = new_id()
        conn.execute(
            match_reviews.insert().values(
                id=review_id, record_id=record_id, candidate_person_id=candidate.person_id, weight=candidate.weight,
                detail={"levels": self._explain(candidate)}, status="open", created_at=now,
            )
        )
        return review_id

    # -- a known record whose data changed ---------------------------------------------------------
    def _update_known(
        self, conn: Connection, known: sa.Row[Any], partner_id: str, data: dict[str, Any], filed: Filed, message_id: str | None, now: dt.datetime
    ) -> Resolution:
        """Store the partner's new data for a record filed before; if it no longer matches the
        other records of its person, split it off (the model must never be overruled silently).
        A pseudonym the hub issued becomes the partner's own record with its first message under it."""
        changed = changed_fields(known.data or {}, data)
        if changed:
            self._serialise(conn, filed.keys)  # as for a new record: a lookup meeting the new data waits
        conn.execute(
            person_records.update().where(person_records.c.id == known.id).values(
                data=data, norm=filed.norm, message_id=message_id, updated_at=now, issued=False
            )
        )
        if changed or known.issued or known.norm != filed.norm:  # keys follow the data (a resend keeps them)
            self._write_keys(conn, known.id, filed.keys)
        self._event(conn, "updated", known.person_id, record_id=known.id, actor=partner_id, fields=changed, **({"message": message_id} if message_id else {}))
        if changed:
            detach, best = self._still_belongs(conn, known, filed)
            if detach:
                return self._split(conn, known, filed, best, changed, now)
        return Resolution(known.person_id, known.id, "known")

    def _still_belongs(self, conn: Connection, known: sa.Row[Any], filed: Filed) -> tuple[bool, Candidate | None]:
        """(detach?, the best of the person's other records for the new data).

        Detach when the new data is not a match for any other record of the person AND compares
        worse than the old data did: a record an operator merged from the review band stays while
        the model is still only unsure about it, but not once the model says it is someone else."""
        others = conn.execute(
            sa.select(person_records.c.id, person_records.c.person_id, person_records.c.norm).where(
                person_records.c.person_id == known.person_id, person_records.c.id != known.id, person_records.c.issued.is_(False)
            )
        ).all()
        if not others:
            return False, None  # a person of its own already
        records = {r.id: (r.person_id, r.norm) for r in others}
        ids = list(records)
        before, after = self._score(conn, [self.file_form(known.data or {}), filed], [ids, ids], records, self.index_size(conn), 1)
        rank_before, rank_after = (_RANK[c[0].decision] if c else 0 for c in (before, after))
        best = after[0] if after else None
        return rank_after < _RANK[MATCH] and rank_after < rank_before, best

    def _split(self, conn: Connection, known: sa.Row[Any], filed: Filed, best: Candidate | None, changed: list[str], now: dt.datetime) -> Resolution:
        """File the record under a new person of its own (it becomes that person's first record, so
        later unmerges leave it there); offer it for review against its former person if the model
        is unsure, and against any other person it now matches or may be."""
        former, person_id = known.person_id, new_id()
        conn.execute(persons.insert().values(id=person_id, created_at=now))
        conn.execute(
            person_records.update().where(person_records.c.id == known.id).values(person_id=person_id, origin_person_id=person_id, updated_at=now)
        )
        self._forget_size(conn)
        self._event(
            conn, "split", former, other=person_id, record_id=known.id, actor="hub", fields=changed,
            decision=best.decision if best else NON_MATCH, weight=best.weight if best else None, first_filed_under=known.origin_person_id,
        )
        reviews = [self._open_review(conn, known.id, best, now)] if best is not None and best.decision == REVIEW else []
        elsewhere = [c for c in self._candidates(conn, [filed], limit=5)[0] if c.person_id not in (person_id, former)]
        if elsewhere:
            reviews.append(self._open_review(conn, known.id, elsewhere[0], now))
        return Resolution(person_id, known.id, "split", best.weight if best else None, reviews[0] if reviews else None)

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

    def candidates(self, conn: Connection, data: dict[str, Any], limit: int = 5) -> list[Candidate]:
        """Persons in the index the record ``data`` may be, best first (match and review only)."""
        return self._candidates(conn, [self.file_form(data)], limit)[0]

    def candidates_many(self, conn: Connection, datas: Sequence[dict[str, Any]], limit: int = 5) -> list[list[Candidate]]:
        """:meth:`candidates` for a batch of records, one statement per 40 of them. Not faster
        yet (bench/mpi_bench.py --batch): on SQLite the per-row work dominates, and PostgreSQL
        plans the long statement for longer than the round trips it saves."""
        out: list[list[Candidate]] = []
        queries = [self.file_form(d) for d in datas]
        step = 40  # queries per statement: ~12 keys each stay below SQLite's 500 compound selects
        for s in range(0, len(queries), step):
            out.extend(self._candidates(conn, queries[s : s + step], limit))
        return out

    # -- candidate retrieval -----------------------------------------------------------------------
    def _fetch(self, conn: Connection, keys: list[str]) -> list[Any]:
        """(key, record id, person id, norm) of the records under ``keys``: at most max_block + 1 per
        key (enough to tell that a block is too big to use).

        On SQLite one join over ``key IN (...)`` with a LIMIT for all keys together is a quarter
        cheaper than the per-key subqueries (each of which SQLite materialises); only when it returns
        as many rows as that LIMIT can one block have crowded out the others, and the lookup asks
        again with the bound per key."""
        if conn.dialect.name == "sqlite":
            cap = (self.linker.max_block + 1) * len(keys)
            rows = conn.exec_driver_sql(self._statement_in(len(keys), cap), tuple(keys)).all()
            if len(rows) < cap:
                return rows
        return conn.exec_driver_sql(self._statement(conn, len(keys)), tuple(keys)).all()

    def _statement_in(self, n: int, cap: int) -> str:
        cache_key = ("sqlite-in", n, cap)
        sql = self._sql.get(cache_key)
        if sql is None:
            sql = self._sql[cache_key] = (
                "SELECT k.key, r.id, r.person_id, r.norm FROM person_keys AS k JOIN person_records AS r ON r.id = k.record_id "
                f"WHERE k.key IN ({', '.join('?' * n)}) LIMIT {cap}"
            )
        return sql

    def _statement(self, conn: Connection, n: int) -> str:
        """The records under ``n`` keys, at most max_block + 1 per key, one subquery each."""
        cache_key = (conn.dialect.name, n, self.linker.max_block)
        sql = self._sql.get(cache_key)
        if sql is None:
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            per_key = " UNION ALL ".join(
                f"SELECT * FROM (SELECT key, record_id FROM person_keys WHERE key = {mark} LIMIT {self.linker.max_block + 1}) AS s{i}"
                for i in range(n)
            )
            sql = self._sql[cache_key] = (
                f"SELECT k.key, r.id, r.person_id, r.norm FROM ({per_key}) AS k JOIN person_records AS r ON r.id = k.record_id"
            )
        return sql

    def _candidates(self, conn: Connection, queries: Sequence[Filed], limit: int) -> list[list[Candidate]]:
        big = self._big.setdefault(conn.engine, set())
        wanted = sorted({k for q in queries for k in q.keys if k not in big})
        out: list[list[Candidate]] = [[] for _ in queries]
        if not wanted:
            return out
        if conn.dialect.name == "sqlite" and "mpi_mmap" not in conn.connection.info:
            # candidate rows are scattered over a file of GBs: read them through the OS page
            # cache without a read() per page (SQLite caps this at its compile-time maximum)
            conn.exec_driver_sql(f"PRAGMA mmap_size={SQLITE_MMAP}")
            conn.connection.info["mpi_mmap"] = True
        rows = self._fetch(conn, wanted)
        by_key: dict[str, list[int]] = {}
        for k, row in enumerate(rows):
            by_key.setdefault(row[0], []).append(k)
        max_block = self.linker.max_block
        for key, ks in by_key.items():
            if len(ks) > max_block:
                big.add(key)
        records: dict[str, tuple[str, str | None]] = {}  # record id -> (person id, norm)
        for row in rows:
            records[row[1]] = (row[2], row[3])
        ids_of = [list(dict.fromkeys(rows[k][1] for key in q.keys if key not in big for k in by_key.get(key, ()))) for q in queries]
        return self._score(conn, queries, ids_of, records, self.index_size(conn), limit)

    def _score(
        self, conn: Connection, queries: Sequence[Filed], ids_of: Sequence[list[str]], records: dict[str, tuple[str, str | None]], n: int, limit: int
    ) -> list[list[Candidate]]:
        """Each query scored against its records ``ids_of`` (ids of ``records``: record id ->
        (person id, norm)): the match and review candidates per person, best first."""
        out: list[list[Candidate]] = [[] for _ in queries]
        if not self._fast_ok():
            # compare.py changed and fastcompare.py was not changed with it: correct, but slow
            data = self._data_of(conn, list(records))
            for qi, (q, ids) in enumerate(zip(queries, ids_of)):
                if ids:
                    out[qi] = self.linker.score(
                        q.record, [person_record(i, data[i]) for i in ids], [records[i][0] for i in ids], index_size=n, limit=limit
                    )
            return out
        forms = self._rows_of(conn, records)
        weights, at = self._weights(), self._review_at(n)
        for qi, (q, ids) in enumerate(zip(queries, ids_of)):
            if not ids:
                continue
            # most candidates are no match; only those that could be one are compared in full
            hits = fastcompare.scores(q.row, [forms[i] for i in ids], weights, at)
            if hits:
                levels = np.asarray([lv for _, lv, _ in hits], dtype=np.int8)
                w = np.asarray([x for _, _, x in hits])
                out[qi] = self.linker._candidates(w, levels, [records[ids[k]][0] for k, _, _ in hits], [ids[k] for k, _, _ in hits], n, limit, False)
        return out

    def _weights(self) -> fastcompare.Weights:
        if self._weight_table is None:
            self._weight_table = fastcompare.Weights(self.linker._require_model().weights)
        return self._weight_table

    def _review_at(self, n: int) -> float:
        """The lowest weight that is not a non-match in an index of ``n`` persons (checked
        against Thresholds.decide; -inf, i.e. compare everything, if it does not agree)."""
        at = self._thresholds_at.get(n)
        if at is None:
            t = self.linker.thresholds
            at = min(t.review_at(n), t.match_at(n))
            probe = np.asarray([at - 1e-6, at, at + 1e-6, at - 5, at - 50])
            if list(t.decide(probe, n) == NON_MATCH) != [True, False, False, True, True]:
                at = -np.inf
            if len(self._thresholds_at) > 1000:
                self._thresholds_at.clear()
            self._thresholds_at[n] = at
        return at

    def _rows_of(self, conn: Connection, records: dict[str, tuple[str, str | None]]) -> dict[str, fastcompare.Row]:
        out: dict[str, fastcompare.Row] = {}
        stale: list[str] = []
        decode = fastcompare.decode
        for rid, (_, norm) in records.items():
            r = decode(norm) if norm is not None else None
            if r is None:
                stale.append(rid)  # written before migration 0004 or by another normaliser
            else:
                out[rid] = r
        if stale:
            data = self._data_of(conn, stale)
            _, fresh = fastcompare.normal_forms([person_record(rid, data[rid]) for rid in stale])
            out.update(zip(stale, map(fastcompare.row, fresh)))
        return out

    def refresh(self, engine: sa.Engine, batch: int = 5000) -> int:
        """Re-file every record stored without a normalised form or with one of another
        normaliser or other blocking passes (after migration 0004, after normalisation or the
        passes changed): new blocking keys and form. Lookups stay correct without this (stale
        forms are recomputed from the data), but records filed under other passes are not found
        by the new ones until they are re-filed. Returns the number of records re-filed."""
        from hub.store import db

        done, after = 0, ""
        prefix = fastcompare.version() + self.keys_tag + "\x1f"
        while True:
            with db.read(engine) as conn:
                rows = conn.execute(
                    sa.select(person_records.c.id, person_records.c.data, person_records.c.norm, person_records.c.issued)
                    .where(person_records.c.id > after)
                    .order_by(person_records.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return done
            after = rows[-1].id
            stale = [r for r in rows if not r.issued and (r.norm is None or not r.norm.startswith(prefix))]
            if stale:
                filed = [self.file_form(r.data) for r in stale]
                with db.write(engine) as conn:
                    ids = [r.id for r in stale]
                    conn.execute(
                        person_records.update().where(person_records.c.id == sa.bindparam("rid")).values(norm=sa.bindparam("norm")),
                        [{"rid": i, "norm": f.norm} for i, f in zip(ids, filed)],
                    )
                    conn.execute(person_keys.delete().where(person_keys.c.record_id.in_(ids)))
                    keys = [{"key": k, "record_id": i} for i, f in zip(ids, filed) for k in f.keys]
                    if keys:
                        conn.execute(person_keys.insert(), keys)
                done += len(stale)

    def _data_of(self, conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for s in range(0, len(ids), 500):
            rows = conn.execute(sa.select(person_records.c.id, person_records.c.data).where(person_records.c.id.in_(ids[s : s + 500])))
            out.update({r.id: r.data for r in rows})
        return out

    def _fast_ok(self) -> bool:
        if self._fast is None:
            problem = fastcompare.self_check()
            if problem:
                log.warning("fastcompare disagrees with compare.py, person index uses the slow path: %s", problem)
            self._fast = problem is None
        return self._fast

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

    def _explain(self, candidate: Candidate) -> dict[str, Any]:
        return {concept: {"level": level, "weight": round(weight, 2)} for concept, (level, weight) in self.linker.explain(candidate.levels).items()}

    def _event(self, conn: Connection, action: str, person_id: str, *, actor: str, other: str | None = None, record_id: str | None = None, **detail: Any) -> None:
        conn.execute(
            person_events.insert().values(
                at=utcnow(), action=action, person_id=person_id, other_person_id=other, record_id=record_id, actor=actor, detail=detail or None
            )
        )

    # -- operators ---------------------------------------------------------------------------------
    def reviews(self, conn: Connection, status: str = "open", limit: int = 100) -> list[dict[str, Any]]:
        """The reviews, oldest first. Both sides are shown as the persons they are now: a person
        merged since the review was opened is shown as the person it was merged into
        (``proposed_person_id`` keeps the candidate the model proposed)."""
        rows = conn.execute(
            sa.select(match_reviews, person_records.c.data, person_records.c.partner_id, person_records.c.person_id.label("record_person_id"))
            .join(person_records, person_records.c.id == match_reviews.c.record_id)
            .where(match_reviews.c.status == status)
            .order_by(match_reviews.c.created_at)
            .limit(limit)
        ).all()
        out = []
        for r in rows:
            candidate_id = self._live(conn, r.candidate_person_id)
            candidate = conn.execute(
                sa.select(person_records.c.data, person_records.c.partner_id)
                .where(person_records.c.person_id == candidate_id, person_records.c.id != r.record_id)
                .order_by(person_records.c.created_at, person_records.c.id)
                .limit(1)
            ).first()
            out.append(
                {
                    "id": r.id, "status": r.status, "weight": r.weight, "created_at": aware(r.created_at).isoformat(),
                    "record": {"id": r.record_id, "partner": r.partner_id, "person_id": self._live(conn, r.record_person_id), **r.data},
                    "candidate": {
                        "person_id": candidate_id,
                        **({"proposed_person_id": r.candidate_person_id} if candidate_id != r.candidate_person_id else {}),
                        **({"partner": candidate.partner_id, **candidate.data} if candidate else {}),
                    },
                    "comparison": (r.detail or {}).get("levels"),
                }
            )
        return out

    def decide(self, conn: Connection, review_id: str, confirm: bool, actor: str) -> dict[str, Any]:
        """Close an open review: confirm merges the record's person into the candidate (both as
        they are now), reject records that they are kept apart. Exactly one decision wins: the
        review is claimed by a conditional UPDATE (on PostgreSQL a second operator's UPDATE waits
        for the first to commit and then finds the review decided), and the loser gets a conflict
        with nothing done."""
        review = conn.execute(sa.select(match_reviews).where(match_reviews.c.id == review_id)).first()
        if review is None:
            raise Refusal("not-found", f"No review {review_id}")
        status = "confirmed" if confirm else "rejected"
        claimed = conn.execute(
            match_reviews.update()
            .where(match_reviews.c.id == review_id, match_reviews.c.status == "open")
            .values(status=status, decided_at=utcnow(), decided_by=actor)
        ).rowcount
        if claimed != 1:
            decided = conn.execute(sa.select(match_reviews.c.status).where(match_reviews.c.id == review_id)).scalar_one()
            raise Refusal("conflict", f"Review {review_id} was already decided ({decided})")
        record_person = conn.execute(sa.select(person_records.c.person_id).where(person_records.c.id == review.record_id)).scalar_one()
        if not confirm:
            self._event(
                conn, "kept-apart", self._live(conn, record_person), other=self._live(conn, review.candidate_person_id), actor=actor, review_id=review_id
            )
            return {"id": review_id, "status": status}
        source, target = self._lock_live(conn, record_person, review.candidate_person_id)
        if source != target:  # else: merged meanwhile, nothing left to do but close the review
            self.merge(conn, source, target, actor, review_id=review_id)
        return {"id": review_id, "status": status, "person_id": target}

    def merge(self, conn: Connection, source: str, target: str, actor: str, **detail: Any) -> None:
        """File every record of `source` under `target`; `source` stays, marked as merged."""
        if source == target:
            return
        merged_into = self._lock_persons(conn, [source, target])
        for pid in (source, target):
            if pid not in merged_into or merged_into[pid] is not None:
                raise Refusal("conflict", f"Person {pid} does not exist or was merged already")
        # a resolution that found a record of `source` holds a lock on one of its keys: it commits
        # first and its record is moved with the others, instead of staying behind at a merged person
        self._serialise(conn, self._keys_of(conn, source))
        conn.execute(person_records.update().where(person_records.c.person_id == source).values(person_id=target, updated_at=utcnow()))
        conn.execute(persons.update().where(persons.c.id == source).values(merged_into=target))
        self._forget_size(conn)
        self._event(conn, "merged", target, other=source, actor=actor, **detail)

    def unmerge(self, conn: Connection, source: str, actor: str) -> None:
        """Undo the merge of `source`: the records first filed under `source` or under a person
        merged (directly or through others) into it go back to `source`, wherever later merges
        took them; the others stay with the person `source` was merged into, or the one that is now."""
        chain = self._locked_chain(conn, source)
        if len(chain) < 2:
            raise Refusal("conflict", f"Person {source} is not merged into another person")
        target, holders = chain[1], chain[1:]  # records are at the live end; the rest is for rows filed before chains were followed
        family = self._merged_family(conn, source, holders)
        moved = conn.execute(
            person_records.update()
            .where(person_records.c.person_id.in_(holders), person_records.c.origin_person_id.in_(family))
            .values(person_id=source, updated_at=utcnow())
        ).rowcount
        conn.execute(persons.update().where(persons.c.id == source).values(merged_into=None))
        self._forget_size(conn)
        self._event(conn, "unmerged", target, other=source, actor=actor, records=moved, **({"held_by": chain[-1]} if chain[-1] != target else {}))

    # -- the cross-reference, outbound ---------------------------------------------------------------
    def local_id_for(self, conn: Connection, person_id: str, partner_id: str, data: dict[str, Any]) -> str:
        """The id `partner_id` knows the person by, for a delivery; a pseudonym issued to it if none.

        A recipient gets the person under ITS OWN id (a Jobcenter its Kundennummer, a municipal office
        its own client number), never under the sender's. Where it has none yet, the hub issues it a
        pseudonym (`PSEUDONYM_PREFIX` + 7 characters, within the contracts' Kundennummer pattern) and
        files it as an `issued` record, so that what the recipient sends back under it is this person.
        The record holds the person data the recipient was given, not the sender's ids (the recipient
        never saw them); it has no blocking keys and is no evidence about the person until the
        recipient sends under it (see _update_known)."""
        person_id = self._live(conn, person_id)
        own = conn.execute(_OWN_ID, {"person_id": person_id, "partner_id": partner_id}).scalar()
        if own is not None:
            return own
        pseudonym = new_pseudonym()
        while conn.execute(_ID_TAKEN, {"partner_id": partner_id, "local_id": pseudonym}).first() is not None:
            pseudonym = new_pseudonym()
        now, record_id = utcnow(), new_id()
        conn.execute(
            person_records.insert().values(
                id=record_id, person_id=person_id, origin_person_id=person_id, partner_id=partner_id, local_id=pseudonym,
                data={k: v for k, v in data.items() if k != "ids"}, norm=None, message_id=None, created_at=now, updated_at=now, issued=True,
            )
        )
        self._event(conn, "pseudonym-issued", person_id, record_id=record_id, actor="hub", partner=partner_id)
        return pseudonym

    # -- following merges --------------------------------------------------------------------------
    def _live(self, conn: Connection, person_id: str) -> str:
        """The person `person_id` is now: itself, or the live end of its chain of merges."""
        return self._chain(conn, person_id)[-1]

    def _chain(self, conn: Connection, person_id: str) -> list[str]:
        """`person_id`, the person it was merged into, that one's, ... up to a live person (one
        element if `person_id` is live or unknown). Merges only ever point at a live person, so
        there is no cycle; the guard is for hand-edited data."""
        chain = [person_id]
        while True:
            nxt = conn.execute(sa.select(persons.c.merged_into).where(persons.c.id == chain[-1])).scalar()
            if nxt is None or nxt in chain:
                return chain
            chain.append(nxt)

    def _lock_persons(self, conn: Connection, ids: Iterable[str]) -> dict[str, str | None]:
        """Lock the rows of `ids` (PostgreSQL: FOR UPDATE, in id order so that two operators never
        wait for each other crosswise; SQLite: the write lock is held already) and return their
        merged_into as committed now. Unknown ids are missing from the result."""
        rows = conn.execute(
            sa.select(persons.c.id, persons.c.merged_into).where(persons.c.id.in_(sorted(set(ids)))).order_by(persons.c.id).with_for_update()
        ).all()
        return {r.id: r.merged_into for r in rows}

    def _lock_live(self, conn: Connection, *person_ids: str) -> list[str]:
        """The live persons `person_ids` are now, locked (re-read if a merge moved them meanwhile)."""
        for _ in range(5):
            live = [self._live(conn, p) for p in person_ids]
            merged_into = self._lock_persons(conn, live)
            if all(p in merged_into and merged_into[p] is None for p in live):
                return live
        raise Refusal("conflict", "The persons are being merged by another operator right now; try again")

    def _locked_chain(self, conn: Connection, person_id: str) -> list[str]:
        """:meth:`_chain`, its persons locked and checked to be still linked so."""
        for _ in range(5):
            chain = self._chain(conn, person_id)
            merged_into = self._lock_persons(conn, chain)
            if person_id not in merged_into:
                raise Refusal("conflict", f"Person {person_id} does not exist")
            if all(merged_into.get(p) == (chain[k + 1] if k + 1 < len(chain) else None) for k, p in enumerate(chain)):
                return chain
        raise Refusal("conflict", f"Person {person_id} is being merged or unmerged by another operator right now; try again")

    def _merged_family(self, conn: Connection, source: str, holders: Sequence[str]) -> list[str]:
        """`source` and the persons merged into it (directly or through others) among the first
        persons of the records the `holders` hold: whose records an unmerge of `source` gives back.
        Only records' first persons are followed (through the persons table's primary key), so
        this never scans the persons of the whole index."""
        origins = set(
            conn.execute(sa.select(person_records.c.origin_person_id).where(person_records.c.person_id.in_(holders)).distinct()).scalars()
        )
        parent: dict[str, str | None] = {source: None}  # the walk stops at source
        todo = origins - parent.keys()
        while todo:
            found = dict(conn.execute(sa.select(persons.c.id, persons.c.merged_into).where(persons.c.id.in_(sorted(todo)))).all())
            parent.update({p: found.get(p) for p in todo})
            todo = {m for m in found.values() if m is not None} - parent.keys()

        def reaches_source(p: str | None) -> bool:
            for _ in range(len(parent) + 1):
                if p is None or p == source:
                    return p == source
                p = parent.get(p)
            return False

        return sorted(o for o in origins if reaches_source(o))

    def _keys_of(self, conn: Connection, person_id: str) -> list[str]:
        """The blocking keys of the person's records (PostgreSQL only, for :meth:`_serialise`)."""
        if conn.dialect.name != "postgresql":
            return []
        return list(
            conn.execute(
                sa.select(person_keys.c.key).join(person_records, person_records.c.id == person_keys.c.record_id).where(person_records.c.person_id == person_id).distinct()
            ).scalars()
        )

    def person(self, conn: Connection, person_id: str) -> dict[str, Any]:
        row = conn.execute(sa.select(persons).where(persons.c.id == person_id)).first()
        if row is None:
            raise Refusal("not-found", f"No person {person_id}")
        records = conn.execute(sa.select(person_records).where(person_records.c.person_id == person_id).order_by(person_records.c.created_at)).all()
        events = conn.execute(
            sa.select(person_events).where(sa.or_(person_events.c.person_id == person_id, person_events.c.other_person_id == person_id)).order_by(person_events.c.id)
        ).all()
        return {
            "id": person_id,
            "merged_into": row.merged_into,
            "xref": [{"partner": r.partner_id, "local_id": r.local_id, "record_id": r.id, **({"issued": True} if r.issued else {})} for r in records],
            "records": [{"id": r.id, "partner": r.partner_id, **r.data} for r in records],
            "history": [
                {"at": aware(e.at).isoformat(), "action": e.action, "person_id": e.person_id, "other": e.other_person_id, "record_id": e.record_id, "actor": e.actor, **({"detail": e.detail} if e.detail else {})}
                for e in events
            ],
        }


@lru_cache(maxsize=None)
def person_index_for(contracts_dir: Path) -> PersonIndex | None:
    return PersonIndex.load(contracts_dir)
