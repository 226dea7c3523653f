"""Multi-pass blocking: which record pairs get compared at all.

Comparing every record with every other is N² (5·10¹¹ pairs for a million persons). Blocking
compares only records that share a *blocking key*. One key is never enough: any single field
can be wrong (a typo in the birth year, a new family name after marriage, a move), so several
passes are used, each keyed on different fields, and a pair is compared if it shares a key in
ANY pass. A true pair is lost only if every pass misses it.

Names are blocked on their Kölner Phonetik code, never on the raw spelling, so that
``Meyer``/``Maier`` and ``Schmidt``/``Schmitt`` meet. Phonetics is used only here, not in the
score (see :mod:`hub.dedup.phonetic`).

Keys are plain strings ``"<pass>:<value>"`` so that the master person index can store them in a
database table ``(key, person_id)`` with an index on ``key`` and run exactly the same candidate
search as the in-memory index.

A key shared by more than ``max_block`` records (a very common name in one birth year, a care
home's address) says too little to be worth the quadratic cost; such blocks are skipped and the
pairs in them must be found by another pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from hub.dedup.records import UNSEEN, RecordTable

__all__ = ["PASSES", "INDEX_PASSES", "KNOWN_PASSES", "BlockingPass", "row_keys", "table_keys", "dedupe_pairs", "link_pairs"]


@dataclass(frozen=True, slots=True)
class BlockingPass:
    name: str
    doc: str
    keys: Callable[[RecordTable, int], list[str]]


def _year(t: RecordTable, i: int) -> str:
    return t.dob[i][:4]


def _fam_year(t: RecordTable, i: int) -> list[str]:
    y = _year(t, i)
    return [f"{p}|{y}" for p in t.family_phon[i]] if y else []


def _fam_initial_year(t: RecordTable, i: int) -> list[str]:
    g, y = t.given[i], _year(t, i)
    return [f"{p}|{g[0]}|{y}" for p in t.family_phon[i]] if g and y else []


def _postcode_dob(t: RecordTable, i: int) -> list[str]:
    p, d = t.postcode[i], t.dob[i]
    return [f"{p}|{d}"] if p and d else []


def _given_family_phon(t: RecordTable, i: int) -> list[str]:
    # the two sounds in sorted order: "Ryan Clarke" and "Clarke, Ryan" (names swapped) meet
    g = t.given_phon[i]
    return [f"{min(g, p)}|{max(g, p)}" for p in t.family_phon[i]] if g else []


def _given_initial_dob(t: RecordTable, i: int) -> list[str]:
    g, d = t.given[i], t.dob[i]
    return [f"{g[0]}|{d}"] if g and d else []


def _family_initial_dob(t: RecordTable, i: int) -> list[str]:
    f, d = t.family[i], t.dob[i]
    return [f"{f[0]}|{d}"] if f and d else []


def _postcode_name(t: RecordTable, i: int) -> list[str]:
    p = t.postcode[i]
    if not p:
        return []
    g = t.given_phon[i]
    return [f"{p}|{c}" for c in dict.fromkeys((g, *t.family_phon[i]) if g else t.family_phon[i])]


def _street_house(t: RecordTable, i: int) -> list[str]:
    # vocabulary codes are per process; a key that may be stored must be the text itself
    s, h = t.street[i], t.house_code[i]
    if not s or h < 0 or h == UNSEEN:
        return []
    return [f"{s}|{t.vocab.value(int(h))}"]


def _postcode_house(t: RecordTable, i: int) -> list[str]:
    p, h = t.postcode[i], t.house_code[i]
    if not p or h < 0 or h == UNSEEN:
        return []
    return [f"{p}|{t.vocab.value(int(h))}"]


def _street_city(t: RecordTable, i: int) -> list[str]:
    s, c = t.street[i], t.city[i]
    return [f"{s}|{c}"] if s and c else []


def _city_house(t: RecordTable, i: int) -> list[str]:
    c, h = t.city[i], t.house_code[i]
    if not c or h < 0 or h == UNSEEN:
        return []
    return [f"{c}|{t.vocab.value(int(h))}"]


def _ids(t: RecordTable, i: int) -> list[str]:
    return list(t.id_keys[i])


PASSES: tuple[BlockingPass, ...] = (
    BlockingPass("fy", "sound of each family/birth-name part + birth year", _fam_year),
    BlockingPass("gd", "first letter of the given name + date of birth (survives a new family name)", _given_initial_dob),
    BlockingPass("pd", "postcode + date of birth (survives new names)", _postcode_dob),
    BlockingPass("gf", "sounds of the given name and of each family-name part, in either order (survives a wrong birth date, the names swapped)", _given_family_phon),
    BlockingPass("fd", "first letter of the family name + date of birth (survives a new given name spelling)", _family_initial_dob),
    BlockingPass("pn", "postcode + sound of the given name or of a family-name part (survives a wrong birth date with a new given or family name, the names swapped)", _postcode_name),
    BlockingPass("ah", "street + house number (survives errors in names and date of birth)", _street_house),
    BlockingPass("ph", "postcode + house number (survives errors in names, date of birth and street)", _postcode_house),
    # the two address passes above both need the house number, and one of them the postcode:
    # a record whose house number is missing or mistyped AND whose birth date or names are
    # wrong too was never compared with its partner. Street + city and city + house number are
    # the remaining pairs of address fields that identify a building or a street (postcode +
    # city says too little); in a large city their blocks exceed max_block and are skipped,
    # where they are small (a street, a town) they are cheap
    BlockingPass("sc", "street + city (survives a missing or mistyped house number and postcode, with errors in names and date of birth)", _street_city),
    BlockingPass("ch", "city + house number (survives a mistyped street and postcode, with errors in names and date of birth)", _city_house),
    BlockingPass("ix", "an identifier within its scheme", _ids),
)


#: ``fy`` narrowed by the given name's first letter, for the master person index (below)
FIY = BlockingPass("fiy", "sound of each family/birth-name part + first letter of the given name + birth year", _fam_initial_year)

#: every pass a model file may name, by name
KNOWN_PASSES: dict[str, BlockingPass] = {p.name: p for p in (*PASSES, FIY)}

#: The passes of the master person index, which looks up one record at a time against up to millions.
#: ``fy`` (family-name sound + birth year) put two thirds of a lookup's ~52 candidate rows on the table
#: at 1M persons and 42 % of its CPU; in 10,000 lookups of mistyped known persons it alone found 3 of
#: 9,849 matches and 12 of 118 review candidates -- nearly all of them with the given name's first letter
#: intact (moved, given name mistyped beyond its sound, birth date mistyped). ``fiy`` keeps those at a
#: twentieth of the block size. ``sc``/``ch`` are left out: their blocks grow with the size of a city.
INDEX_PASSES: tuple[str, ...] = ("fiy", "gd", "pd", "gf", "fd", "pn", "ah", "ph", "ix")


def row_keys(t: RecordTable, i: int, passes: Sequence[BlockingPass] = PASSES) -> list[str]:
    """All blocking keys of row ``i``, each prefixed with its pass name."""
    out: list[str] = []
    for p in passes:
        out.extend(f"{p.name}:{k}" for k in p.keys(t, i))
    return out


def table_keys(t: RecordTable, rows: Sequence[int] | range | None = None, passes: Sequence[BlockingPass] = PASSES) -> tuple[np.ndarray, np.ndarray]:
    """(row numbers, keys) for every key of every row, as two aligned arrays."""
    if rows is not None:
        rr: list[int] = []
        kk: list[str] = []
        for i in rows:
            ks = row_keys(t, i, passes)
            rr.extend([i] * len(ks))
            kk.extend(ks)
        return np.asarray(rr, dtype=np.int64), np.asarray(kk, dtype=object)
    # whole table: one pass at a time, cached on the table (training and scoring block the
    # same table with different sets of passes)
    cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = t.__dict__.setdefault("_key_cache", {})
    parts_r, parts_k = [], []
    for p in passes:
        hit = cache.get((p.name, len(t)))
        if hit is None:
            rr, kk = [], []
            for i in range(len(t)):
                ks = p.keys(t, i)
                if ks:
                    rr.extend([i] * len(ks))
                    kk.extend(f"{p.name}:{k}" for k in ks)
            hit = (np.asarray(rr, dtype=np.int64), np.asarray(kk, dtype=object))
            cache[(p.name, len(t))] = hit
        parts_r.append(hit[0])
        parts_k.append(hit[1])
    if not parts_r:
        return np.zeros(0, np.int64), np.zeros(0, object)
    return np.concatenate(parts_r), np.concatenate(parts_k)


def dedupe_pairs(t: RecordTable, max_block: int = 500, passes: Sequence[BlockingPass] = PASSES) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (i < j) within one table: every pair that shares a key of some pass."""
    rows, keys = table_keys(t, None, passes)
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    group, _ = pd.factorize(keys)
    order = np.lexsort((rows, group))
    g, r = group[order], rows[order]
    sizes = np.bincount(g)
    keep = sizes[g] <= max_block
    g, r = g[keep], r[keep]
    n = len(t)
    codes: list[np.ndarray] = []
    alive = np.arange(len(g) - 1)
    lag = 1
    while len(alive):
        alive = alive[alive + lag < len(g)]
        alive = alive[g[alive] == g[alive + lag]]
        if not len(alive):
            break
        i, j = r[alive], r[alive + lag]
        ne = i != j  # a record with two keys in one block (two family-name parts with one sound)
        codes.append(i[ne] * n + j[ne])
        lag += 1
    if not codes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    code = np.unique(np.concatenate(codes))
    return code // n, code % n


def link_pairs(
    ta: RecordTable, tb: RecordTable, max_block: int = 500, passes: Sequence[BlockingPass] = PASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (row of ta, row of tb) that share a key of some pass."""
    ra, ka = table_keys(ta, None, passes)
    rb, kb = table_keys(tb, None, passes)
    if len(ra) == 0 or len(rb) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes, _ = pd.factorize(np.concatenate([ka, kb]))
    ga, gb = codes[: len(ka)], codes[len(ka) :]
    na = np.bincount(ga, minlength=codes.max() + 1)
    nb = np.bincount(gb, minlength=codes.max() + 1)
    ok = (na <= max_block) & (nb <= max_block)
    fa = pd.DataFrame({"g": ga[ok[ga]], "a": ra[ok[ga]]})
    fb = pd.DataFrame({"g": gb[ok[gb]], "b": rb[ok[gb]]})
    merged = fa.merge(fb, on="g", how="inner")
    nbr = len(tb)
    code = np.unique(merged["a"].to_numpy(np.int64) * nbr + merged["b"].to_numpy(np.int64))
    return code // nbr, code % nbr
