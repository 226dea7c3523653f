"""Batch linkage: all pairs of one list (dedupe) or of two lists (link), decided together.

Blocking, comparison, the prior N of the batch, one-to-one assignment between two registers and
the transitive closure of clusters of duplicates: what ``hub dedup batch`` (hub/dedup/batch.py)
runs. A batch may train the model on its own input first, hence the base class.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from hub.dedup.blocking import dedupe_pairs, link_pairs
from hub.dedup.fellegi_sunter import MATCH, NON_MATCH, REVIEW
from hub.dedup.linking.base import LinkPair, Progress, _noop
from hub.dedup.linking.training import Training
from hub.dedup.records import PersonRecord, RecordTable


class BatchLinkage(Training):
    """:meth:`dedupe` and :meth:`link`: every candidate pair of a batch, decided at once."""

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
