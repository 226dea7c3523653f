"""Comparison levels: how alike two records are, one discrete level per concept.

Fellegi–Sunter needs, for every compared pair, a small discrete outcome per *concept*; the model
then learns how often each outcome happens among true matches (m) and among random pairs (u).
A concept is something that is true or false about a person as a whole, so correlated fields are
compared together: street, house number, postcode and city form ONE concept (an address), because
they agree or disagree together (a move changes all four); scoring them as four independent
pieces of evidence would count one fact four times.

Level 0 always means "cannot compare" (a value is missing on either side) and contributes no
weight. Level 1 is the strongest agreement, the last level is full disagreement.

Everything is vectorised over arrays of pairs: string similarity runs in rapidfuzz's C++
(``process.cpdist``), equality on integer codes from the shared vocabulary.
"""

from __future__ import annotations

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import JaroWinkler

from hub.dedup.records import RecordTable

__all__ = ["CONCEPTS", "LEVELS", "NAME_JW_HIGH", "NAME_JW_LOW", "STREET_JW", "CITY_JW", "compare_pairs", "jaro_winkler"]

# Thresholds on Jaro-Winkler similarity of the match keys. 0.92 catches one typo in a name of
# six letters or more; 0.80 catches two typos or a shortened name; below that a name is different.
NAME_JW_HIGH = 0.92
NAME_JW_LOW = 0.80
STREET_JW = 0.88  # streets are long; one typo in "lindenstr" is 0.96, two ~0.9
CITY_JW = 0.90

CONCEPTS: tuple[str, ...] = ("given_name", "family_name", "birth_date", "address", "ids")
LEVELS: dict[str, tuple[str, ...]] = {
    "given_name": ("missing", "exact", "token", "fuzzy_high", "fuzzy_low", "different"),
    # token: a shared word of a double name or a birth name equal to the other's family name
    "family_name": ("missing", "exact", "token", "fuzzy_high", "fuzzy_low", "different"),
    # one_digit: one wrong digit or two adjacent digits swapped (1980 -> 1908). Two unrelated
    # wrong digits are "different": random birth dates differ in two digits often enough (1 %)
    # that such a level rewards coincidences more than it rescues typos.
    "birth_date": ("missing", "exact", "day_month_swapped", "one_digit", "different"),
    # street_house: same building, postcode/city mistyped or missing; house_area: same house number
    # in the same postcode area but the street name unrecognisable; street: same street, another
    # house number; area: same postcode or city only
    "address": ("missing", "exact", "street_house", "house_area", "street", "area", "different"),
    "ids": ("missing", "equal", "different"),
}


def jaro_winkler(a: np.ndarray, b: np.ndarray, workers: int = 1) -> np.ndarray:
    """Element-wise Jaro-Winkler similarity of two equal-length string arrays (0..1)."""
    if len(a) == 0:
        return np.zeros(0, dtype=np.float32)
    return process.cpdist(list(a), list(b), scorer=JaroWinkler.normalized_similarity, workers=workers, dtype=np.float32)


def _eq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Equal codes, both present."""
    return (a == b) & (a >= 0)


def _any_token(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Some token code of a equals some token code of b (-1 is padding)."""
    out = np.zeros(len(a), dtype=bool)
    for i in range(a.shape[1]):
        ai = a[:, i]
        if not (ai >= 0).any():
            continue
        for j in range(b.shape[1]):
            out |= (ai == b[:, j]) & (ai >= 0)
    return out


def _name_levels(
    code_a: np.ndarray, code_b: np.ndarray, tok_a: np.ndarray, tok_b: np.ndarray, key_a: np.ndarray, key_b: np.ndarray, workers: int
) -> np.ndarray:
    n = len(code_a)
    lev = np.full(n, 5, dtype=np.int8)
    present = (code_a >= 0) & (code_b >= 0)
    exact = present & (code_a == code_b)
    token = present & ~exact & _any_token(tok_a, tok_b)
    rest = np.flatnonzero(present & ~exact & ~token)
    lev[~present] = 0
    lev[exact] = 1
    lev[token] = 2
    if len(rest):
        sim = jaro_winkler(key_a[rest], key_b[rest], workers)
        sub = np.full(len(rest), 5, dtype=np.int8)
        sub[sim >= NAME_JW_LOW] = 4
        sub[sim >= NAME_JW_HIGH] = 3
        lev[rest] = sub
    return lev


def _dob_levels(da: np.ndarray, db: np.ndarray) -> np.ndarray:
    n = len(da)
    lev = np.full(n, 4, dtype=np.int8)
    present = (da[:, 0] >= 0) & (db[:, 0] >= 0)
    diff = da != db
    ham = diff.sum(axis=1)
    swapped = (
        (ham > 0)
        & ~diff[:, :4].any(axis=1)
        & (da[:, 4:6] == db[:, 6:8]).all(axis=1)
        & (da[:, 6:8] == db[:, 4:6]).all(axis=1)
    )
    transposed = np.zeros(n, dtype=bool)
    two = ham == 2
    if two.any():
        for p in range(7):
            transposed |= two & diff[:, p] & diff[:, p + 1] & (da[:, p] == db[:, p + 1]) & (da[:, p + 1] == db[:, p])
    lev[(ham == 1) | transposed] = 3
    lev[swapped] = 2
    lev[ham == 0] = 1
    lev[~present] = 0
    return lev


def _address_levels(ta: RecordTable, ia: np.ndarray, tb: RecordTable, ib: np.ndarray, workers: int) -> np.ndarray:
    n = len(ia)
    sa, sb = ta.street_code[ia], tb.street_code[ib]
    street_present = (sa >= 0) & (sb >= 0)
    street_ok = _eq(sa, sb)
    fuzzy = np.flatnonzero(street_present & ~street_ok)
    if len(fuzzy):
        street_ok[fuzzy] = jaro_winkler(ta.street[ia[fuzzy]], tb.street[ib[fuzzy]], workers) >= STREET_JW
    house_eq = _eq(ta.house_code[ia], tb.house_code[ib])
    pa, pb = ta.postcode_code[ia], tb.postcode_code[ib]
    pc_eq = _eq(pa, pb)
    ca, cb = ta.city_code[ia], tb.city_code[ib]
    city_present = (ca >= 0) & (cb >= 0)
    city_ok = _eq(ca, cb)
    fuzzy = np.flatnonzero(city_present & ~city_ok)
    if len(fuzzy):
        city_ok[fuzzy] = jaro_winkler(ta.city[ia[fuzzy]], tb.city[ib[fuzzy]], workers) >= CITY_JW
    area = pc_eq | city_ok
    lev = np.full(n, 6, dtype=np.int8)
    lev[area] = 5
    lev[street_ok & area] = 4
    lev[house_eq & pc_eq & ~street_ok] = 3
    lev[street_ok & house_eq] = 2
    lev[street_ok & house_eq & pc_eq] = 1
    present = street_present | ((pa >= 0) & (pb >= 0)) | city_present
    lev[~present] = 0
    return lev


def _id_levels(ta: RecordTable, ia: np.ndarray, tb: RecordTable, ib: np.ndarray) -> np.ndarray:
    ids_a, ids_b = ta.ids, tb.ids
    lev = np.zeros(len(ia), dtype=np.int8)
    # most records carry no ids: only look at pairs where both sides have some
    both = np.flatnonzero(ta.has_ids[ia] & tb.has_ids[ib])
    for k in both:
        a, b = ids_a[ia[k]], ids_b[ib[k]]
        common = a.keys() & b.keys()
        if common:  # one scheme that differs outweighs another that agrees: a person has one id per scheme
            lev[k] = 1 if all(a[s] == b[s] for s in common) else 2
    return lev


def _apply_swaps(out: np.ndarray, ta: RecordTable, ia: np.ndarray, tb: RecordTable, ib: np.ndarray, workers: int) -> None:
    """Given and family name typed into each other's field ("Clarke, Ryan" vs "Ryan Clarke").

    Where the crossed comparison agrees on both names (at least fuzzily) and better than the
    straight one, the crossed levels are used: the person is the same, only the form was not.
    """
    cand = np.flatnonzero((out[:, 0] >= 3) | (out[:, 1] >= 3))
    if not len(cand):
        return
    a, b = ia[cand], ib[cand]
    width = min(ta.given_tok.shape[1], tb.family_tok.shape[1])
    gx = _name_levels(
        ta.given_code[a], tb.family_code[b], ta.given_tok[a][:, :width], tb.family_tok[b][:, :width], ta.given[a], tb.family[b], workers
    )
    fx = _name_levels(
        ta.family_code[a], tb.given_code[b], ta.family_tok[a][:, :width], tb.given_tok[b][:, :width], ta.family[a], tb.given[b], workers
    )
    # crossed: at least one name agrees closely across the fields (a swap, possibly with the
    # other name also changed), and the crossed comparison is better than the straight one
    g0, f0 = out[cand, 0], out[cand, 1]
    close = ((gx >= 1) & (gx <= 3)) | ((fx >= 1) & (fx <= 3))
    better = close & (gx > 0) & (fx > 0) & (g0 > 0) & (f0 > 0) & ((gx.astype(np.int16) + fx) < (g0.astype(np.int16) + f0))
    out[cand[better], 0] = gx[better]
    out[cand[better], 1] = fx[better]


def compare_pairs(ta: RecordTable, ia: np.ndarray, tb: RecordTable, ib: np.ndarray, workers: int = 1) -> np.ndarray:
    """Comparison levels of the pairs ``(ta[ia[k]], tb[ib[k]])``.

    Returns an ``int8`` array of shape ``(len(ia), len(CONCEPTS))``; column order is
    :data:`CONCEPTS`, level meanings are :data:`LEVELS`. Both tables must share a vocabulary.
    """
    if ta.vocab is not tb.vocab:
        raise ValueError("tables compared with each other must share one Vocabulary")
    ia = np.asarray(ia, dtype=np.int64)
    ib = np.asarray(ib, dtype=np.int64)
    out = np.empty((len(ia), len(CONCEPTS)), dtype=np.int8)
    if len(ia) == 0:
        return out
    out[:, 0] = _name_levels(
        ta.given_code[ia], tb.given_code[ib], ta.given_tok[ia], tb.given_tok[ib], ta.given[ia], tb.given[ib], workers
    )
    out[:, 1] = _name_levels(
        ta.family_code[ia], tb.family_code[ib], ta.family_tok[ia], tb.family_tok[ib], ta.family[ia], tb.family[ib], workers
    )
    _apply_swaps(out, ta, ia, tb, ib, workers)
    out[:, 2] = _dob_levels(ta.dob_digits[ia], tb.dob_digits[ib])
    out[:, 3] = _address_levels(ta, ia, tb, ib, workers)
    out[:, 4] = _id_levels(ta, ia, tb, ib)
    return out
