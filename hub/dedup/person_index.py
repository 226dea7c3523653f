"""The master person index: one person behind the records of many systems, in the database.

Every record a partner sends about a person is filed under (partner, local id) - the id
cross-reference - and under the person the linker decides it belongs to. Blocking keys are stored
in an indexed table, so a lookup fetches only the records that share a key with the query and
scores them with the Fellegi-Sunter model (contracts/dedup/model.json). Uncertain matches wait in a
review queue; merges and unmerges are recorded as events and never lose a record: each record
remembers the person it was first filed under, so an unmerge is exact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection

from hub.db import aware, utcnow
from hub.dedup import fastcompare
from hub.dedup.linkage import MATCH, NON_MATCH, REVIEW, Candidate, Linker
from hub.dedup.records import PersonRecord
from hub.findings import Refusal
from hub.ids import new_id
from hub.tables import match_reviews, person_events, person_keys, person_records, persons

log = logging.getLogger(__name__)

FIELDS = ("given_name", "family_name", "birth_name", "birth_date", "street", "house_number", "postcode", "city")


@dataclass(frozen=True)
class Resolution:
    person_id: str
    record_id: str
    decision: str  # known | match | review | new
    weight: float | None = None
    review_id: str | None = None


def person_record(record_id: str, data: dict[str, Any]) -> PersonRecord:
    return PersonRecord(record_id=record_id, ids=dict(data.get("ids") or {}), **{f: data.get(f) for f in FIELDS})


KEY_WIDTH = 96  # person_keys.key
SQLITE_MMAP = 2**31


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
        # in-memory index and the batch skip them (a block only grows, so this never goes stale
        # in the direction that would lose a candidate the batch would see)
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
    def subject(self, message_type: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """(local id, record data) of the person a message carries, or None."""
        spec = self.subjects.get(message_type)
        if spec is None or not isinstance(body.get(spec["person"]), dict) or not body.get(spec["local_id"]):
            return None
        person = body[spec["person"]]
        address = person.get("address") or {}
        data = {f: person.get(f) for f in ("given_name", "family_name", "birth_name", "birth_date")}
        data.update({f: address.get(f) for f in ("street", "house_number", "postcode", "city")})
        data["ids"] = {scheme: body[field] for scheme, field in spec.get("ids", {}).items() if body.get(field)}
        return str(body[spec["local_id"]]), {k: v for k, v in data.items() if v}

    def resolve(self, conn: Connection, partner_id: str, local_id: str, data: dict[str, Any], message_id: str | None = None) -> Resolution:
        known = conn.execute(
            sa.select(person_records.c.id, person_records.c.person_id).where(
                person_records.c.partner_id == partner_id, person_records.c.local_id == local_id
            )
        ).first()
        now = utcnow()
        filed = self.file_form(data)
        if known is not None:
            conn.execute(
                person_records.update().where(person_records.c.id == known.id).values(data=data, norm=filed.norm, message_id=message_id, updated_at=now)
            )
            self._write_keys(conn, known.id, filed.keys)
            return Resolution(known.person_id, known.id, "known")
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
        review_id = None
        if decision == "review":
            review_id = new_id()
            conn.execute(
                match_reviews.insert().values(
                    id=review_id, record_id=record_id, candidate_person_id=top.person_id, weight=top.weight,
                    detail={"levels": self._explain(top)}, status="open", created_at=now,
                )
            )
        self._event(conn, "filed", person_id, record_id=record_id, actor="hub", decision=decision, weight=top.weight if top else None, partner=partner_id)
        return Resolution(person_id, record_id, decision, top.weight if top else None, review_id)

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
        n = self.index_size(conn)
        if not self._fast_ok():
            # compare.py changed and fastcompare.py was not changed with it: correct, but slow
            data = self._data_of(conn, list(records))
            for qi, q in enumerate(queries):
                ids = list(dict.fromkeys(rows[k][1] for key in q.keys if key not in big for k in by_key.get(key, ())))
                if ids:
                    out[qi] = self.linker.score(
                        q.record, [person_record(i, data[i]) for i in ids], [records[i][0] for i in ids], index_size=n, limit=limit
                    )
            return out
        forms = self._rows_of(conn, records)
        weights, at = self._weights(), self._review_at(n)
        for qi, q in enumerate(queries):
            ids = list(dict.fromkeys(rows[k][1] for key in q.keys if key not in big for k in by_key.get(key, ())))
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
        from hub import db

        done, after = 0, ""
        prefix = fastcompare.version() + self.keys_tag + "\x1f"
        while True:
            with db.read(engine) as conn:
                rows = conn.execute(
                    sa.select(person_records.c.id, person_records.c.data, person_records.c.norm)
                    .where(person_records.c.id > after)
                    .order_by(person_records.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return done
            after = rows[-1].id
            stale = [r for r in rows if r.norm is None or not r.norm.startswith(prefix)]
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
        rows = conn.execute(
            sa.select(match_reviews, person_records.c.data, person_records.c.partner_id)
            .join(person_records, person_records.c.id == match_reviews.c.record_id)
            .where(match_reviews.c.status == status)
            .order_by(match_reviews.c.created_at)
            .limit(limit)
        ).all()
        out = []
        for r in rows:
            candidate = conn.execute(
                sa.select(person_records.c.data, person_records.c.partner_id).where(person_records.c.person_id == r.candidate_person_id)
            ).first()
            out.append(
                {
                    "id": r.id, "status": r.status, "weight": r.weight, "created_at": aware(r.created_at).isoformat(),
                    "record": {"id": r.record_id, "partner": r.partner_id, **r.data},
                    "candidate": {"person_id": r.candidate_person_id, **({"partner": candidate.partner_id, **candidate.data} if candidate else {})},
                    "comparison": (r.detail or {}).get("levels"),
                }
            )
        return out

    def decide(self, conn: Connection, review_id: str, confirm: bool, actor: str) -> dict[str, Any]:
        review = conn.execute(sa.select(match_reviews).where(match_reviews.c.id == review_id)).first()
        if review is None:
            raise Refusal("not-found", f"No review {review_id}")
        if review.status != "open":
            raise Refusal("conflict", f"Review {review_id} was already decided ({review.status})")
        conn.execute(
            match_reviews.update().where(match_reviews.c.id == review_id).values(
                status="confirmed" if confirm else "rejected", decided_at=utcnow(), decided_by=actor
            )
        )
        record = conn.execute(sa.select(person_records.c.person_id).where(person_records.c.id == review.record_id)).one()
        if confirm:
            self.merge(conn, record.person_id, review.candidate_person_id, actor, review_id=review_id)
        else:
            self._event(conn, "kept-apart", record.person_id, other=review.candidate_person_id, actor=actor, review_id=review_id)
        return {"id": review_id, "status": "confirmed" if confirm else "rejected"}

    def merge(self, conn: Connection, source: str, target: str, actor: str, **detail: Any) -> None:
        """File every record of `source` under `target`; `source` stays, marked as merged."""
        if source == target:
            return
        for pid in (source, target):
            if conn.execute(sa.select(persons.c.id).where(persons.c.id == pid, persons.c.merged_into.is_(None))).first() is None:
                raise Refusal("conflict", f"Person {pid} does not exist or was merged already")
        conn.execute(person_records.update().where(person_records.c.person_id == source).values(person_id=target, updated_at=utcnow()))
        conn.execute(persons.update().where(persons.c.id == source).values(merged_into=target))
        self._forget_size(conn)
        self._event(conn, "merged", target, other=source, actor=actor, **detail)

    def unmerge(self, conn: Connection, source: str, actor: str) -> None:
        """Undo a merge: the records first filed under `source` go back to it."""
        row = conn.execute(sa.select(persons.c.merged_into).where(persons.c.id == source)).first()
        if row is None or row.merged_into is None:
            raise Refusal("conflict", f"Person {source} is not merged into another person")
        target = row.merged_into
        conn.execute(
            person_records.update()
            .where(person_records.c.origin_person_id == source, person_records.c.person_id == target)
            .values(person_id=source, updated_at=utcnow())
        )
        conn.execute(persons.update().where(persons.c.id == source).values(merged_into=None))
        self._forget_size(conn)
        self._event(conn, "unmerged", target, other=source, actor=actor)

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
            "xref": [{"partner": r.partner_id, "local_id": r.local_id, "record_id": r.id} for r in records],
            "records": [{"id": r.id, "partner": r.partner_id, **r.data} for r in records],
            "history": [
                {"at": aware(e.at).isoformat(), "action": e.action, "person_id": e.person_id, "other": e.other_person_id, "record_id": e.record_id, "actor": e.actor, **({"detail": e.detail} if e.detail else {})}
                for e in events
            ],
        }


@lru_cache(maxsize=None)
def person_index_for(contracts_dir: Path) -> PersonIndex | None:
    return PersonIndex.load(contracts_dir)
