"""The linker: train once, then deduplicate, link, or match one record at a time.

Typical use::

    linker = Linker().fit(records)              # EM on the data itself, no labels needed
    pairs = linker.dedupe(records)              # batch: one list
    pairs = linker.link(list_a, list_b)         # batch: two lists
    for r in records: linker.add(r)             # incremental index (person_id = record_id)
    linker.match(new_record)                    # -> [Candidate(person_id, weight, decision), ...]

The incremental index is in memory, keyed by the same blocking keys the batch uses
(:meth:`Linker.blocking_keys`). A database-backed index stores those keys in a table
``(key, person_id)``, fetches the candidates' records for a query's keys, and scores them with
:meth:`Linker.score`, which is exactly what :meth:`Linker.match` does in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import numpy as np

from hub.dedup.blocking import KNOWN_PASSES, PASSES, BlockingPass, dedupe_pairs, link_pairs, row_keys
from hub.dedup.compare import CONCEPTS, LEVELS, compare_pairs
from hub.dedup.fellegi_sunter import MATCH, NON_MATCH, REVIEW, FSModel, Thresholds, estimate_m_em, estimate_u
from hub.dedup.records import PersonRecord, RecordTable, Vocabulary

__all__ = ["Linker", "Candidate", "LinkPair", "Progress", "MATCH", "REVIEW", "NON_MATCH"]

Progress = Callable[[str, int, int], None]
"""Progress callback: (stage, done, total)."""

MIN_TRAINING_RECORDS = 500
#: pseudo-pairs of the prior (random people's levels) in a household's given-name/birth-date distribution
_RELATIVES_PRIOR = 50.0
_CHUNK = 500_000  # pairs compared per step: bounds memory, gives the progress bar its ticks


@dataclass(frozen=True, slots=True)
class Candidate:
    """A person in the index that a queried record may be: best weight over the person's records."""

    person_id: str
    record_id: str
    weight: float
    decision: str  # "match" | "review" | "non_match"
    levels: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class LinkPair:
    """One linked pair of a batch run; ``id_a``/``id_b`` are the callers' record ids."""

    id_a: str
    id_b: str
    weight: float
    decision: str


def _noop(stage: str, done: int, total: int) -> None:
    return None


class Linker:
    """Fellegi–Sunter record linkage of German person records with multi-pass blocking.

    Parameters
    ----------
    model:
        trained parameters (from :meth:`fit` or :meth:`FSModel.from_dict`); ``None`` until fitted.
    thresholds:
        decision margins over the prior ``log2 N`` (see :class:`Thresholds`).
    max_block:
        blocks with more records than this are skipped (too unselective to be worth N²).
    workers:
        threads for string similarity in batch runs (rapidfuzz); ``-1`` = all cores.
    """

    def __init__(
        self,
        model: FSModel | None = None,
        *,
        thresholds: Thresholds | None = None,
        max_block: int = 500,
        passes: Sequence[BlockingPass] = PASSES,
        workers: int = 1,
    ) -> None:
        self.model = model
        self.thresholds = thresholds or Thresholds()
        self.max_block = max_block
        self.passes = tuple(passes)
        self.workers = workers
        self.vocab = Vocabulary()
        # incremental index
        self._index = RecordTable(self.vocab)
        self._row_person: list[str] = []
        self._persons: dict[str, int] = {}
        self._blocks: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ training
    def fit(
        self,
        records: Sequence[PersonRecord],
        other: Sequence[PersonRecord] | None = None,
        *,
        n_random: int = 1_000_000,
        max_em_pairs: int = 2_000_000,
        seed: int = 0,
        progress: Progress = _noop,
    ) -> "Linker":
        """Estimate u from random pairs and m by EM on the blocked pairs of ``records`` (and
        ``other`` for linkage). Returns ``self``."""
        ta = RecordTable(self.vocab, records)
        tb = RecordTable(self.vocab, other) if other is not None else ta
        return self._fit_tables(ta, tb, other is None, n_random=n_random, max_em_pairs=max_em_pairs, seed=seed, progress=progress)

    def _fit_tables(
        self,
        ta: RecordTable,
        tb: RecordTable,
        same: bool,
        *,
        n_random: int,
        max_em_pairs: int,
        seed: int,
        progress: Progress,
        candidates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> "Linker":
        """``candidates`` = (ia, ib, levels) of the blocked pairs when the caller has them
        already (dedupe): they are not blocked and compared a second time."""
        if len(ta) < 2 or len(tb) < 1:
            raise ValueError("training needs at least two records")
        if min(len(ta), len(tb)) < MIN_TRAINING_RECORDS:
            # too few random pairs for u and too few matches for EM: use the parameters
            # learned from the seeded German synthetic registers instead
            self.model = default_model()
            return self
        rng = np.random.default_rng(seed)
        n_random = int(min(n_random, len(ta) * len(tb)))
        ri = rng.integers(0, len(ta), n_random)
        rj = rng.integers(0, len(tb), n_random)
        if same:
            keep = ri != rj
            ri, rj = ri[keep], rj[keep]
        progress("train: random pairs", 0, 2)
        u = estimate_u(self._levels(ta, ri, tb, rj))
        progress("train: EM", 1, 2)
        m = self._em_by_passes(ta, tb, same, u, max_em_pairs, rng)
        lam = 0.0
        if same:
            # a list with duplicates: duplicates whose given name and birth date were both
            # mistyped look like households; estimate h on one record per found person
            m0 = FSModel(m=m, u=u)
            if candidates is None:
                ia, ib = dedupe_pairs(ta, self.max_block, self.passes)
                lv = self._levels(ta, ia, ta, ib)
            else:
                ia, ib, lv = candidates
            w = m0.weights(lv)
            keep = _representatives(len(ta), ia, ib, w >= self.thresholds.match_at(len(ta)))
            h = self._household_rates(ta, u, keep)
        else:
            h = (self._household_rates(ta, u) + self._household_rates(tb, u)) / 2
        self.model = FSModel(
            m=m, u=u, lam=lam, household_rates=h, meta={"n_a": len(ta), "n_b": len(tb), "random_pairs": int(len(ri)), "seed": seed}
        )
        progress("train: EM", 2, 2)
        return self

    def _em_by_passes(
        self, ta: RecordTable, tb: RecordTable, same: bool, u: dict[str, np.ndarray], max_pairs: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """m by EM, each concept learned from blocked pairs whose blocking key does not involve it.

        Pairs found by a key agree on that key's fields by construction, so those fields tell
        EM nothing about matches; worse, in data full of households and common names the
        pairs that agree on family name and address, or on given and family name, form
        clusters of their own that a mixture model takes for the matches. So (as Splink does):

        * given name, family name, address, ids are learned from the pairs that share the
          birth date and an initial (passes ``gd``, ``fd``), with birth date hidden.
          Two classes: relatives rarely share a birth date, and a household class here would
          take the true matches whose given name was replaced (family name and address agree,
          given name differs, and the birth date that would tell them apart is hidden);
        * birth date is learned from the pairs that share the sound of given and family name
          (pass ``gf``), with a (constrained) household class: in a list full of relatives,
          two of them with similar-sounding given names share family name and address.
        """
        sessions = (
            ({"gd", "fd"}, ("given_name", "family_name", "address", "ids"), ("given_name", "family_name", "address", "ids"), False),
            ({"gf"}, ("given_name", "family_name", "birth_date", "address", "ids"), ("birth_date",), True),
        )
        m = {name: v.copy() for name, v in u.items()}
        for pass_names, see, learn, households in sessions:
            passes = [p for p in self.passes if p.name in pass_names]
            if not passes:
                continue
            ia, ib = dedupe_pairs(ta, self.max_block, passes) if same else link_pairs(ta, tb, self.max_block, passes)
            if len(ia) > max_pairs:
                pick = rng.choice(len(ia), max_pairs, replace=False)
                ia, ib = ia[pick], ib[pick]
            lv = self._levels(ta, ia, tb, ib)
            for c, name in enumerate(CONCEPTS):
                if name not in see:
                    lv[:, c] = 0  # hidden: "cannot compare" contributes nothing to EM
            est, _ = estimate_m_em(lv, u, households=households)
            for name in learn:
                m[name] = est[name]
        return m

    def _household_rates(self, t: RecordTable, u: dict[str, np.ndarray], rows: np.ndarray | None = None) -> np.ndarray:
        """How often two records of one list (or of its ``rows``) are two members of one
        household whose given names compare at level ``g`` and birth dates at level ``d``: the
        share of all pairs, as an array ``[g, d]``.

        Household members = same family name, street and house number, and not one person
        entered twice (given name and birth date both agreeing) nor two records that say nothing
        (both missing). Given name and birth date are taken as independent among relatives; each
        one's distribution over levels is measured on them, smoothed towards how random people
        compare (``u``, without the agreeing levels) so that a level seen rarely in a small list
        does not count as impossible."""
        ng, nd = len(LEVELS["given_name"]), len(LEVELS["birth_date"])
        out = np.zeros((ng, nd))
        rows = np.arange(len(t)) if rows is None else rows
        n = len(rows)
        if n < 2:
            return out
        ok = (t.family_code[rows] >= 0) & (t.street_code[rows] >= 0) & (t.house_code[rows] >= 0)
        rows = rows[ok]
        if len(rows) < 2:
            return out
        key = t.family_code[rows].astype(np.int64) * 2**21 + t.street_code[rows] % 2**21
        key = key * 2**21 + t.house_code[rows] % 2**21
        order = np.argsort(key, kind="stable")
        k, r = key[order], rows[order]
        ia_l: list[np.ndarray] = []
        ib_l: list[np.ndarray] = []
        alive = np.arange(len(k) - 1)
        lag = 1
        while len(alive) and lag <= self.max_block:
            alive = alive[alive + lag < len(k)]
            alive = alive[k[alive] == k[alive + lag]]
            ia_l.append(r[alive])
            ib_l.append(r[alive + lag])
            lag += 1
        if not ia_l or not sum(len(x) for x in ia_l):
            return out
        ia, ib = np.concatenate(ia_l), np.concatenate(ib_l)
        lv = self._levels(t, ia, t, ib)
        g, d = lv[:, CONCEPTS.index("given_name")], lv[:, CONCEPTS.index("birth_date")]
        relatives = ~((g == 0) & (d == 0)) & ~((g <= 2) & (g >= 1) & (d == 1))
        g, d = g[relatives], d[relatives]
        if not len(g):
            return out

        def marginal(levels: np.ndarray, width: int, u_c: np.ndarray, agree: int) -> np.ndarray:
            # over the levels where both have a value; "missing" is as likely as between random
            # people, so its entry is 1 (the model divides by u = 1 there too)
            prior = u_c.astype(np.float64).copy()
            prior[: agree + 1] = 0.0  # relatives are two people: no prior mass on agreeing
            prior /= max(prior.sum(), 1e-300)
            counts = np.bincount(levels, minlength=width).astype(np.float64)
            counts[0] = 0.0
            out = (counts + _RELATIVES_PRIOR * prior) / (counts.sum() + _RELATIVES_PRIOR)
            out[0] = 1.0
            return out

        pg = marginal(g, ng, u["given_name"], 2)
        pd_ = marginal(d, nd, u["birth_date"], 1)
        return (len(g) / (n * (n - 1) / 2)) * np.outer(pg, pd_)

    def _levels(self, ta: RecordTable, ia: np.ndarray, tb: RecordTable, ib: np.ndarray, progress: Progress = _noop, stage: str = "") -> np.ndarray:
        out = np.empty((len(ia), 5), dtype=np.int8)
        for s in range(0, len(ia), _CHUNK):
            out[s : s + _CHUNK] = compare_pairs(ta, ia[s : s + _CHUNK], tb, ib[s : s + _CHUNK], self.workers)
            if stage:
                progress(stage, min(s + _CHUNK, len(ia)), len(ia))
        return out

    def _require_model(self) -> FSModel:
        if self.model is None:
            raise RuntimeError("the linker has no model yet: call fit() or pass a trained FSModel")
        return self.model

    # ------------------------------------------------------------------ batch
    def dedupe(
        self,
        records: Sequence[PersonRecord],
        *,
        fit: bool = False,
        include_non_matches: bool = False,
        cluster: bool = True,
        progress: Progress = _noop,
    ) -> list[LinkPair]:
        """Pairs of records in one list that are the same person (decision match or review).

        With ``fit=True`` (or no model yet) the model is first trained on ``records`` themselves.
        With ``cluster`` (default) the matches are closed transitively: if A=B and B=C were
        matched, A=C is a match too unless A and C compared directly fall below the review
        threshold (two duplicates of one person may differ in more fields than either differs
        from the original).
        """
        t = RecordTable(self.vocab, records)
        progress("blocking", 0, 1)
        ia, ib = dedupe_pairs(t, self.max_block, self.passes)
        progress("blocking", 1, 1)
        levels = self._levels(t, ia, t, ib, progress, "comparing")
        if fit or self.model is None:
            self._fit_tables(
                t, t, True, n_random=1_000_000, max_em_pairs=2_000_000, seed=0, progress=progress, candidates=(ia, ib, levels)
            )
        return self._decide(t, ia, t, ib, len(t), include_non_matches, progress, cluster=cluster, levels=levels)

    def link(
        self,
        a: Sequence[PersonRecord],
        b: Sequence[PersonRecord],
        *,
        fit: bool = False,
        include_non_matches: bool = False,
        one_to_one: bool = True,
        progress: Progress = _noop,
    ) -> list[LinkPair]:
        """Pairs (record of ``a``, record of ``b``) that are the same person.

        With ``one_to_one`` (the default: two registers that are each free of duplicates) a
        record is linked automatically to at most one record of the other list, the one with the
        highest weight; its other ``match`` pairs are demoted to ``review``.
        """
        ta = RecordTable(self.vocab, a)
        tb = RecordTable(self.vocab, b)
        progress("blocking", 0, 1)
        ia, ib = link_pairs(ta, tb, self.max_block, self.passes)
        progress("blocking", 1, 1)
        if fit or self.model is None:
            self._fit_tables(ta, tb, False, n_random=1_000_000, max_em_pairs=2_000_000, seed=0, progress=progress)
        return self._decide(ta, ia, tb, ib, max(len(ta), len(tb)), include_non_matches, progress, one_to_one=one_to_one)

    def score_pairs(self, ta: RecordTable, ia: np.ndarray, tb: RecordTable, ib: np.ndarray, progress: Progress = _noop) -> np.ndarray:
        """Match weights (bits) of the given pairs."""
        return self._require_model().weights(self._levels(ta, ia, tb, ib, progress, "comparing"))

    def _decide(
        self,
        ta: RecordTable,
        ia: np.ndarray,
        tb: RecordTable,
        ib: np.ndarray,
        n: int,
        include_all: bool,
        progress: Progress,
        *,
        one_to_one: bool = False,
        cluster: bool = False,
        levels: np.ndarray | None = None,
    ) -> list[LinkPair]:
        if levels is None:
            w = self.score_pairs(ta, ia, tb, ib, progress)
        else:
            w = self._require_model().weights(levels)
        pairs = len(ta) * len(tb) if ta is not tb else len(ta) * (len(ta) - 1) // 2
        n = _effective_n(w, pairs, n)
        decision = self.thresholds.decide(w, n, one_to_one=one_to_one)
        if one_to_one:
            t = self.thresholds
            odds = _one_to_one_odds(ia, ib, w, len(ta), len(tb), pairs / n)
            # the posterior of the pair among its records' other candidates replaces the bare
            # weight-over-prior; weak evidence stays with a person however lonely the pair
            decision[(odds >= t.link_margin) & (w >= t.review_at(n))] = MATCH
            decision[(decision == MATCH) & (odds < t.link_margin)] = REVIEW
            _one_to_one(ia, ib, w, decision)
        if cluster:
            ia, ib, w, decision = self._close_clusters(ta, ia, ib, w, decision, n)
        keep = np.arange(len(w)) if include_all else np.flatnonzero(decision != NON_MATCH)
        ida, idb = ta.record_ids, tb.record_ids
        return [LinkPair(ida[ia[k]], idb[ib[k]], round(float(w[k]), 3), str(decision[k])) for k in keep]

    def _close_clusters(
        self, t: RecordTable, ia: np.ndarray, ib: np.ndarray, w: np.ndarray, decision: np.ndarray, n: int, max_size: int = 20
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Transitive closure of the match pairs within clusters of at most ``max_size``."""
        m = np.flatnonzero(decision == MATCH)
        if not len(m):
            return ia, ib, w, decision
        parent = list(range(len(t)))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for k in m:
            ra, rb = find(int(ia[k])), find(int(ib[k]))
            if ra != rb:
                parent[ra] = rb
        members: dict[int, list[int]] = {}
        for x in {int(v) for v in ia[m]} | {int(v) for v in ib[m]}:
            members.setdefault(find(x), []).append(x)
        # only pairs inside a cluster of 3+ can be promoted: index those, not all candidates
        in_big = np.zeros(len(t), dtype=bool)
        for rows in members.values():
            if 3 <= len(rows) <= max_size:
                in_big[rows] = True
        sel = np.flatnonzero(in_big[ia] & in_big[ib])
        known = {(int(ia[k]), int(ib[k])): int(k) for k in sel}
        new_a: list[int] = []
        new_b: list[int] = []
        promote: list[int] = []
        for rows in members.values():
            if len(rows) < 3 or len(rows) > max_size:
                continue
            rows.sort()
            for x in range(len(rows)):
                for y in range(x + 1, len(rows)):
                    k = known.get((rows[x], rows[y]))
                    if k is None:
                        new_a.append(rows[x])
                        new_b.append(rows[y])
                    elif decision[k] != MATCH:
                        promote.append(k)
        # an inferred pair must not contradict itself: its own posterior odds may be somewhat
        # below the automatic threshold (its partners vouch for it), but not far below
        accept_at = self.thresholds.prior_bits(n) + self.thresholds.closure_margin
        review_at = self.thresholds.review_at(n)
        for k in promote:
            if w[k] >= accept_at:
                decision[k] = MATCH
        if new_a:
            na, nb = np.asarray(new_a, dtype=np.int64), np.asarray(new_b, dtype=np.int64)
            nw = self.score_pairs(t, na, t, nb)
            nd = np.where(nw >= accept_at, MATCH, np.where(nw >= review_at, REVIEW, NON_MATCH)).astype(object)
            ia, ib = np.concatenate([ia, na]), np.concatenate([ib, nb])
            w, decision = np.concatenate([w, nw]), np.concatenate([decision, nd])
        return ia, ib, w, decision

    # ------------------------------------------------------------------ incremental
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

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, object]:
        """Model and settings (not the index) as JSON-ready data."""
        t = self.thresholds
        return {
            "model": self._require_model().to_dict(),
            "thresholds": {
                "match_margin": t.match_margin,
                "link_margin": t.link_margin,
                "review_margin": t.review_margin,
                "closure_margin": t.closure_margin,
                "min_n": t.min_n,
            },
            "max_block": self.max_block,
            "passes": [p.name for p in self.passes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "Linker":
        passes = [KNOWN_PASSES[n] for n in data.get("passes", [p.name for p in PASSES])]
        return cls(
            FSModel.from_dict(data["model"]),
            thresholds=Thresholds(**data.get("thresholds", {})),
            max_block=int(data.get("max_block", 500)),
            passes=passes,
        )

    def explain(self, levels: Sequence[int]) -> dict[str, tuple[str, float]]:
        """Level name and weight per concept for a candidate's ``levels``."""
        return self._require_model().explain(np.asarray(levels))


@lru_cache(maxsize=1)
def default_model() -> FSModel:
    """Parameters for inputs too small to train on, shipped as package data (default_model.json).

    They were learned from seeded synthetic German registers by tools/train_person_model.py, which
    needs the test extras (Faker); a plain install only reads the file.
    """
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).with_name("default_model.json")).read_text(encoding="utf-8"))
    return FSModel.from_dict(data["model"])


def _representatives(n: int, ia: np.ndarray, ib: np.ndarray, linked: np.ndarray) -> np.ndarray:
    """One row per connected component of the ``linked`` pairs (all rows if none are linked)."""
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(ia[linked], ib[linked]):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.asarray([x for x in range(n) if find(x) == x], dtype=np.int64)


def _effective_n(w: np.ndarray, pairs: int, n: int, iterations: int = 50) -> int:
    """The N of the prior for a batch: all pairs / expected number of matching pairs.

    The thresholds are margins over log2 N because, with every record having one partner among
    N, the prior odds of a pair are 1 : N. When only some records have a partner (a list padded
    with other people, a register of which a tenth are duplicates) the prior odds of a pair are
    (matching pairs) : (all pairs). The number of matching pairs is estimated without labels as
    the sum of the pairs' posterior probabilities, iterated to a fixed point from ``n`` partners;
    never less than ``n`` (more matches than records would lower the bar, not raise it)."""
    if pairs <= 0 or len(w) == 0:
        return n
    matches = float(min(n, pairs))
    for _ in range(iterations):
        prior = math.log2(pairs / max(matches, 1.0))
        new = float((1.0 / (1.0 + np.exp2(np.clip(prior - w, -60, 60)))).sum())
        if abs(new - matches) < 0.5:
            matches = new
            break
        matches = new
    return max(n, int(round(pairs / max(matches, 1.0))))


def _one_to_one_odds(ia: np.ndarray, ib: np.ndarray, w: np.ndarray, na: int, nb: int, matches: float) -> np.ndarray:
    """Posterior log2-odds of each candidate pair when each record has at most one partner.

    Record ``a`` has a partner with prior probability ``p = matches / na``, any of the ``nb``
    records equally. Given the weights (log2 likelihood ratios) of its candidates ``c``,

        P(partner = b) = 2**w_ab / (K_a + sum_c 2**w_ac),   K_a = nb (1 - p) / p,

    because every other record of the other list is as good as a non-candidate. So the pair is
    weighed against the prior odds of ``a`` having no partner (``K_a``) AND against its rivals:
    with every record having a partner (FEBRL4: ``K`` of a few dozen instead of 5,000) the best
    candidate wins on modest evidence unless another one comes close; with few records having
    one (a register padded with relatives: ``K`` about the number of pairs per match) it is the
    bare ``w - log2 N`` of the thresholds, lowered further by rivals. Both records' rivals count
    (``b`` has its own prior and candidates); the larger of the two priors is taken."""
    if len(w) == 0:
        return np.zeros(0)
    m = max(float(matches), 1.0)
    k = max(nb * max(na - m, 0.0) / m, na * max(nb - m, 0.0) / m, 1.0)
    top = float(w.max())
    e = np.exp2(np.clip(w - top, -1000.0, 0.0))  # scaled by 2**-top: no overflow
    ra = np.bincount(ia, weights=e)[ia] - e
    rb = np.bincount(ib, weights=e)[ib] - e
    rest = np.maximum(ra, 0.0) + np.maximum(rb, 0.0) + k * np.exp2(-top)
    with np.errstate(divide="ignore"):
        return (w - top) - np.log2(np.maximum(rest, 1e-300))


def _one_to_one(ia: np.ndarray, ib: np.ndarray, w: np.ndarray, decision: np.ndarray) -> None:
    """Keep each record's best match only (greedy by weight); demote the others to review."""
    m = np.flatnonzero(decision == MATCH)
    used_a: set[int] = set()
    used_b: set[int] = set()
    for k in m[np.argsort(-w[m], kind="stable")]:
        a, b = int(ia[k]), int(ib[k])
        if a in used_a or b in used_b:
            decision[k] = REVIEW
        else:
            used_a.add(a)
            used_b.add(b)


def posterior_probability(weight: float, n: int) -> float:
    """P(same person) for a weight in an index of ``n`` persons (prior odds 1 : n)."""
    x = weight - math.log2(max(n, 1))
    return 1.0 / (1.0 + 2.0 ** (-x))
