"""Candidate lookups in the database: the persons a record may be, and how sure the model is.

The hot path of the person index. A query's blocking keys select rows of the indexed key table
(at most max_block + 1 per key, blocks bigger than that are skipped as the batch skips them), the
candidates' stored normalised forms are decoded and scored by fastcompare, and the linker ranks
them per person. SQLite and PostgreSQL get the statement each runs fastest; the slow path through
compare.py is kept for when fastcompare no longer agrees with it.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
from sqlalchemy.engine import Connection

from hub.dedup import fastcompare
from hub.dedup.index.base import Filed, IndexBase, person_record
from hub.dedup.linkage import NON_MATCH, Candidate

log = logging.getLogger(__name__)

SQLITE_MMAP = 2**31


class CandidateLookup(IndexBase):
    """:meth:`candidates` and :meth:`candidates_many`, and the scoring that resolve() shares."""

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

    def _fast_ok(self) -> bool:
        if self._fast is None:
            problem = fastcompare.self_check()
            if problem:
                log.warning("fastcompare disagrees with compare.py, person index uses the slow path: %s", problem)
            self._fast = problem is None
        return self._fast
