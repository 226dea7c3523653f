"""How much recall the padded FEBRL4 household test (tests/dedup/test_quality.py) allows at all.

Pads FEBRL4 exactly as the test does (20 relatives per record on each side: the record's family name
and address, another given name and birth date) and compares every true pair (a, b) with the
relatives of b (and of a) using the hub's comparison levels (hub.dedup.compare, the levels issue 5
prescribes). A true pair is *tied* when some relative compares with the other record at least as well
on every concept: relatives and partner then have the same levels, so any decision on these levels
(Fellegi-Sunter or otherwise) links the relative whenever it links the partner. Such a pair can be
linked only by linking >= 1 relative too, i.e. at the price of precision.

    .venv/bin/python tools/household_ceiling.py     (needs the test extras: recordlinkage)
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.dedup.compare import CONCEPTS, LEVELS, compare_pairs  # noqa: E402
from hub.dedup.records import RecordTable, Vocabulary  # noqa: E402
from tests.dedup.helpers import febrl4, pad_with_households  # noqa: E402

# level order per concept, best first (missing = no evidence sits between agreement and disagreement)
RANK = {c: {name: i for i, name in enumerate(order)} for c, order in {
    "given_name": ("exact", "token", "fuzzy_high", "fuzzy_low", "missing", "different"),
    "family_name": ("exact", "token", "fuzzy_high", "fuzzy_low", "missing", "different"),
    "birth_date": ("exact", "day_month_swapped", "one_digit", "missing", "different"),
    "address": ("exact", "street_house", "house_area", "street", "area", "missing", "different"),
    "ids": ("equal", "missing", "different"),
}.items()}


def at_least_as_good(rel: np.ndarray, true: np.ndarray) -> bool:
    return all(RANK[c][LEVELS[c][rel[k]]] <= RANK[c][LEVELS[c][true[k]]] for k, c in enumerate(CONCEPTS))


def main() -> None:
    a, b, truth = febrl4()
    pool = sorted({r.given_name for r in a if r.given_name} | {r.given_name for r in b if r.given_name})
    taken: dict[str, set[str]] = {}
    pa = pad_with_households(a, 20, pool, seed=1, prefix="ha", taken=taken)
    pb = pad_with_households(b, 20, pool, seed=2, prefix="hb", taken=taken)
    vocab = Vocabulary()
    ta, tb = RecordTable(vocab, pa), RecordTable(vocab, pb)
    ia = {r.record_id: i for i, r in enumerate(pa)}
    ib = {r.record_id: i for i, r in enumerate(pb)}
    rel_a: dict[str, list[int]] = {}
    rel_b: dict[str, list[int]] = {}
    for r in pa[len(a):]:
        rel_a.setdefault(r.record_id[2:].rsplit("-", 1)[0], []).append(ia[r.record_id])
    for r in pb[len(b):]:
        rel_b.setdefault(r.record_id[2:].rsplit("-", 1)[0], []).append(ib[r.record_id])
    tied, patterns = 0, Counter()
    for x, y in sorted(truth):
        i, j = ia[x], ib[y]
        true = compare_pairs(ta, np.array([i]), tb, np.array([j]))[0]
        rb = rel_b.get(y, [])
        ra = rel_a.get(x, [])
        vs_b = compare_pairs(ta, np.full(len(rb), i), tb, np.array(rb)) if rb else np.zeros((0, len(CONCEPTS)), np.int8)
        vs_a = compare_pairs(ta, np.array(ra), tb, np.full(len(ra), j)) if ra else np.zeros((0, len(CONCEPTS)), np.int8)
        if any(at_least_as_good(r, true) for r in vs_b) or any(at_least_as_good(r, true) for r in vs_a):
            tied += 1
            patterns[(LEVELS["given_name"][true[0]], LEVELS["birth_date"][true[2]])] += 1
    n = len(truth)
    print(f"true pairs: {n}; tied with or beaten by a relative on every concept: {tied}")
    for (g, d), k in patterns.most_common():
        print(f"  given name {g:<10} birth date {d:<18} {k}")
    print(f"recall ceiling without linking a relative: {(n - tied) / n:.4f} (bar: 0.99)")


if __name__ == "__main__":
    main()
