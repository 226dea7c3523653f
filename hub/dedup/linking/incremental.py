"""The linker's incremental index: records added one at a time, queries matched against them.

The index lives in memory, keyed by the same blocking keys the batch uses. :meth:`score` does what
:meth:`match` does for candidate records a database-backed index fetched itself; the hub's person
index (hub/dedup/index) scores its own candidates faster and ranks them per person with
:meth:`_candidates`.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from hub.dedup.blocking import row_keys
from hub.dedup.compare import compare_pairs
from hub.dedup.fellegi_sunter import NON_MATCH
from hub.dedup.linking.base import Candidate, LinkerBase
from hub.dedup.records import PersonRecord, RecordTable, Vocabulary


class IncrementalIndex(LinkerBase):
    """:meth:`add`/:meth:`add_many`, :meth:`match`/:meth:`match_many` and :meth:`score`."""

    def blocking_keys(self, record: PersonRecord) -> list[str]:
        """The blocking keys of one record (strings ``"<pass>:<value>"``; store them in a table
        ``(key, person_id)`` for a database-backed index) -- the same keys the hub's person index
        stores. Normalised with a vocabulary of the record's own: the linker's vocabulary holds only
        what it has seen, so keys that spell out values (street + house number) would go missing."""
        from hub.dedup import fastcompare  # imports this module's neighbours, not this module

        return fastcompare.keys_and_form(record, self.passes)[0]

    @property
    def index_size(self) -> int:
        """Number of distinct persons in the in-memory index (the N of the prior)."""
        return len(self._persons)

    def add(self, record: PersonRecord, person_id: str | None = None) -> str:
        """Put a record into the in-memory index under ``person_id`` (default: its record id);
        several records may belong to one person. Returns the person id."""
        pid = str(person_id if person_id is not None else record.record_id)
        row = self._index.append(record)
        self._row_person.append(pid)
        self._persons[pid] = self._persons.get(pid, 0) + 1
        for key in row_keys(self._index, row, self.passes):
            self._blocks.setdefault(key, []).append(row)
        return pid

    def add_many(self, records: Iterable[PersonRecord], person_ids: Iterable[str] | None = None) -> None:
        """Bulk :meth:`add` (normalises all records in one go)."""
        records = list(records)
        pids = [str(p) for p in person_ids] if person_ids is not None else [r.record_id for r in records]
        rows = self._index.extend(records)
        self._row_person.extend(pids)
        for pid in pids:
            self._persons[pid] = self._persons.get(pid, 0) + 1
        blocks, passes = self._blocks, self.passes
        for row in rows:
            for key in row_keys(self._index, row, passes):
                lst = blocks.get(key)
                if lst is None:
                    blocks[key] = [row]
                else:
                    lst.append(row)

    def match(self, record: PersonRecord, *, limit: int = 5, include_non_matches: bool = False) -> list[Candidate]:
        """Persons in the index this record may be, best first, with weight and decision.

        Only ``match`` and ``review`` candidates are returned unless ``include_non_matches``.
        """
        model = self._require_model()
        q = RecordTable(self.vocab, [record], frozen=True)
        rows: set[int] = set()
        blocks, max_block = self._blocks, self.max_block
        for key in row_keys(q, 0, self.passes):
            lst = blocks.get(key)
            if lst is not None and len(lst) <= max_block:
                rows.update(lst)
        if not rows:
            return []
        ib = np.fromiter(rows, dtype=np.int64, count=len(rows))
        levels = compare_pairs(q, np.zeros(len(ib), dtype=np.int64), self._index, ib)
        w = model.weights(levels)
        return self._candidates(w, levels, [self._row_person[i] for i in ib], [self._index.record_ids[i] for i in ib], self.index_size, limit, include_non_matches)

    def match_many(self, records: Sequence[PersonRecord], *, limit: int = 5, include_non_matches: bool = False) -> list[list[Candidate]]:
        """:meth:`match` for a batch of queries in one vectorised comparison (what a pipeline
        worker that drains a queue should call: the per-call overhead is paid once)."""
        model = self._require_model()
        if not records:
            return []
        q = RecordTable(self.vocab, records, frozen=True)
        blocks, max_block = self._blocks, self.max_block
        qa: list[np.ndarray] = []
        rb: list[np.ndarray] = []
        for i in range(len(q)):
            rows: set[int] = set()
            for key in row_keys(q, i, self.passes):
                lst = blocks.get(key)
                if lst is not None and len(lst) <= max_block:
                    rows.update(lst)
            if rows:
                rb.append(np.fromiter(rows, dtype=np.int64, count=len(rows)))
                qa.append(np.full(len(rows), i, dtype=np.int64))
        out: list[list[Candidate]] = [[] for _ in range(len(q))]
        if not qa:
            return out
        ia, ib = np.concatenate(qa), np.concatenate(rb)
        levels = compare_pairs(q, ia, self._index, ib)
        w = model.weights(levels)
        n = self.index_size
        bounds = np.flatnonzero(np.diff(ia)) + 1
        for seg in np.split(np.arange(len(ia)), bounds):
            rows_ = ib[seg]
            out[int(ia[seg[0]])] = self._candidates(
                w[seg], levels[seg], [self._row_person[i] for i in rows_], [self._index.record_ids[i] for i in rows_], n, limit, include_non_matches
            )
        return out

    def score(
        self,
        record: PersonRecord,
        candidates: Sequence[PersonRecord],
        person_ids: Sequence[str] | None = None,
        *,
        index_size: int,
        limit: int = 5,
        include_non_matches: bool = False,
    ) -> list[Candidate]:
        """Score ``record`` against candidate records fetched by the caller (e.g. from the
        database rows that share a blocking key); ``index_size`` is the number of persons in
        that index, which sets the thresholds."""
        model = self._require_model()
        if not candidates:
            return []
        vocab = Vocabulary()
        tc = RecordTable(vocab, candidates)
        q = RecordTable(vocab, [record])
        levels = compare_pairs(q, np.zeros(len(tc), dtype=np.int64), tc, np.arange(len(tc)))
        w = model.weights(levels)
        pids = [str(p) for p in person_ids] if person_ids is not None else [c.record_id for c in candidates]
        return self._candidates(w, levels, pids, [c.record_id for c in candidates], index_size, limit, include_non_matches)

    def _candidates(
        self, w: np.ndarray, levels: np.ndarray, pids: list[str], rids: list[str], n: int, limit: int, include_all: bool
    ) -> list[Candidate]:
        decision = self.thresholds.decide(w, n)
        best: dict[str, int] = {}
        for k, pid in enumerate(pids):
            if not include_all and decision[k] == NON_MATCH:
                continue
            j = best.get(pid)
            if j is None or w[k] > w[j]:
                best[pid] = k
        order = sorted(best.values(), key=lambda k: -w[k])[:limit]
        return [Candidate(pids[k], rids[k], round(float(w[k]), 3), str(decision[k]), tuple(int(x) for x in levels[k])) for k in order]
