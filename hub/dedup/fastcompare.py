"""One query against a few dozen candidates: comparison levels without numpy, from a stored form.

Why this module exists: the master person index compares ONE incoming record with the few dozen
records that share a blocking key with it. :func:`hub.dedup.compare.compare_pairs` is built for
millions of pairs; for 50 it spends its time in numpy's per-call overhead, and it needs every
candidate normalised into a :class:`~hub.dedup.records.RecordTable` first, which costs more than
the comparison. So the index stores each record's normalised comparison fields once, as a short
string (:func:`encode`), and compares them here with plain Python and rapidfuzz.

This is a second implementation of the same levels, so it is checked against the first:
:func:`self_check` compares both on built-in probe pairs (the index falls back to the vectorised
path if they disagree, e.g. after comparison levels were changed in compare.py and not here), and
tests/dedup/test_fastcompare.py compares them on thousands of synthetic pairs. The normalised
form is taken from a RecordTable row, so normalisation itself is never duplicated; a fingerprint
of the normaliser's output on probe records (:data:`VERSION`) is stored with each form, and forms
written by another normaliser are recomputed from the record's data.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from types import SimpleNamespace
from typing import Callable, NamedTuple, Sequence

import numpy as np
from rapidfuzz.distance import JaroWinkler

from hub.dedup import compare
from hub.dedup.blocking import BlockingPass, row_keys
from hub.dedup.records import PersonRecord, RecordTable, Vocabulary

__all__ = ["Norm", "Row", "normal_form", "normal_forms", "encode", "decode", "row", "form_of", "levels", "self_check", "version"]


class Norm(NamedTuple):
    """The comparison fields of one record, as strings ("" = missing).

    ``given_tok``/``family_tok`` keep their positions (the name-swap check compares the first
    three of each), ``""`` where the table has padding."""

    given: str
    given_tok: tuple[str, ...]
    family: str
    family_tok: tuple[str, ...]
    dob: str
    street: str
    house: str
    postcode: str
    city: str
    ids: tuple[tuple[str, str], ...]  # (scheme, value), sorted


def _row_form(t: RecordTable, i: int) -> Norm:
    value = t.vocab.value
    ids = t.ids[i]
    return Norm(
        str(t.given[i]),
        tuple(value(int(c)) for c in t.given_tok[i]),
        str(t.family[i]),
        tuple(value(int(c)) for c in t.family_tok[i]),
        str(t.dob[i]),
        str(t.street[i]),
        value(int(t.house_code[i])),
        str(t.postcode[i]),
        str(t.city[i]),
        # the vocabulary holds "scheme\x1fvalue"; within one scheme the value alone decides
        tuple(sorted((s, value(int(c))[len(s) + 1 :]) for s, c in ids.items())) if ids else (),
    )


def normal_forms(records: Sequence[PersonRecord]) -> tuple[RecordTable, list[Norm]]:
    """Normalise ``records`` (one RecordTable with its own vocabulary) and read their forms."""
    t = RecordTable(Vocabulary(), records)
    return t, [_row_form(t, i) for i in range(len(t))]


def normal_form(record: PersonRecord) -> Norm:
    return normal_forms([record])[1][0]


def _one_row(record: PersonRecord) -> SimpleNamespace:
    """One record normalised into a stand-in for a one-row RecordTable: the same column values
    (RecordTable's own normalisation), as tuples instead of numpy arrays, which is what makes a
    single record cheap (a RecordTable allocates and slices a dozen arrays)."""
    stub = SimpleNamespace(vocab=Vocabulary(), frozen=False, record_ids=[])
    cols = RecordTable._normalise(stub, record)  # type: ignore[arg-type]
    return SimpleNamespace(vocab=stub.vocab, **{k: (v,) for k, v in cols.items()})


def keys_and_form(record: PersonRecord, passes: Sequence[BlockingPass]) -> tuple[list[str], Norm]:
    """Blocking keys (``"<pass>:<value>"``) and the normalised form of one record."""
    if _fast_single():
        t = _one_row(record)
    else:
        t = RecordTable(Vocabulary(), [record])
    return row_keys(t, 0, passes), _row_form(t, 0)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def _fast_single() -> bool:
    """The stand-in gives the same keys and forms as a RecordTable on the probe records."""
    try:
        records = _probe_records()
        t = RecordTable(Vocabulary(), records)
        for i, r in enumerate(records):
            one = _one_row(r)
            if row_keys(one, 0) != row_keys(t, i) or _row_form(one, 0) != _row_form(t, i):  # type: ignore[arg-type]
                return False
        return True
    except Exception:  # noqa: BLE001 - records.py changed shape: use the RecordTable
        return False


# -- stored form -------------------------------------------------------------------------------
# A form is stored as one string of fields separated by _SEP; token lists are stored "wrapped"
# (_TOK before and after every token) so that "is this token among those" is one substring test
# on the stored string, and a lookup decodes a candidate with a single str.split.
_SEP, _TOK = "\x1f", "\x1e"
Row = list  # a decoded form: the fields of _fields(), _SEP-split


def _wrap(tokens: Sequence[str]) -> str:
    t = [x for x in tokens if x]
    return _TOK + _TOK.join(t) + _TOK if t else ""


def _fields(n: Norm, tag: str = "") -> list[str]:
    return [
        version() + tag, n.given, _wrap(n.given_tok), _wrap(n.given_tok[:3]), n.family, _wrap(n.family_tok), _wrap(n.family_tok[:3]),
        n.dob, n.street, n.house, n.postcode, n.city,
        json.dumps(n.ids, ensure_ascii=False, separators=(",", ":")) if n.ids else "",
    ]


_WIDTH = 13
_FORMAT = 2  # of the stored string; part of version()


def encode(n: Norm, tag: str = "") -> str | None:
    """The stored string of a form (prefixed with :func:`version` and ``tag``, which says with
    which blocking keys the record was filed), or None if a value contains a separator character
    (the index then recomputes that record from its data)."""
    values = (n.given, *n.given_tok, n.family, *n.family_tok, n.dob, n.street, n.house, n.postcode, n.city)
    if any(_SEP in v or _TOK in v for v in values) or any(_SEP in s or _SEP in v for s, v in n.ids):
        return None
    return _SEP.join(_fields(n, tag))


def row(n: Norm) -> Row:
    """The decoded form of ``n`` without the round trip through a string."""
    return _fields(n)


def decode(s: str) -> Row | None:
    """The decoded form of a stored string, or None if it was written by another normaliser."""
    p = s.split(_SEP)
    v = version()
    return p if len(p) == _WIDTH and p[0][: len(v)] == v else None


def form_of(r: Row) -> Norm:
    """The :class:`Norm` of a decoded form (for tests and explanations)."""

    def unwrap(w: str, width: int) -> tuple[str, ...]:
        t = w.strip(_TOK).split(_TOK) if w else []
        return tuple(t + [""] * (width - len(t)))

    from hub.dedup.records import FAMILY_TOKENS, GIVEN_TOKENS

    return Norm(
        r[1], unwrap(r[2], GIVEN_TOKENS), r[4], unwrap(r[5], FAMILY_TOKENS), r[7], r[8], r[9], r[10], r[11],
        tuple((a, b) for a, b in json.loads(r[12])) if r[12] else (),
    )


_PROBES: tuple[dict[str, object], ...] = (
    {"given_name": "Anna-Lena", "family_name": "Müller-Lüdenscheidt", "birth_name": "Schmidt", "birth_date": "1980-03-07", "street": "Hauptstraße 5a", "postcode": "01067", "city": "Dresden"},
    {"given_name": "anna lena", "family_name": "Mueller", "birth_date": "07.03.1980", "street": "Hauptstr.", "house_number": "5 A", "postcode": "1067", "city": "Dresden"},
    {"given_name": "Lena", "family_name": "Schmitt", "birth_name": "Müller", "birth_date": "1980-07-03", "street": "Hauptstrasse", "house_number": "5", "postcode": "01069", "city": "Dresdn"},
    {"given_name": "Jürgen", "family_name": "von der Heide", "birth_date": "1975-12-01", "street": "Am Markt", "house_number": "1", "city": "Köln"},
    {"given_name": "Heide", "family_name": "Jürgen", "birth_date": "1975-12-10", "postcode": "50667", "ids": {"kundennummer": "123D456789"}},
    {"given_name": "Jurgen", "family_name": "Heide", "birth_date": "1957-12-01", "street": "Am Markt 1", "postcode": "50667", "city": "Koeln", "ids": {"kundennummer": "123D456789", "bg": "1"}},
    {"given_name": "Hans Peter", "family_name": "Maier", "birth_date": "1990-01-02", "street": "Lindenstraße", "house_number": "12", "postcode": "80331", "city": "München"},
    {"given_name": "Hans", "family_name": "Meyer", "birth_date": "1990-02-01", "street": "Lindenstr.", "house_number": "12", "postcode": "80331", "city": "Muenchen", "ids": {"kundennummer": "999"}},
    {"given_name": "Peter", "family_name": "Mayr", "birth_date": "1909-01-02", "street": "Lindenweg", "house_number": "21", "postcode": "80333"},
    {"given_name": "Ayşe", "family_name": "Yılmaz", "birth_date": "2001-11-30", "street": "Ölmühlenweg", "house_number": "7-9", "postcode": "44135", "city": "Dortmund"},
    {"given_name": "Ayse", "family_name": "Yilmaz-Öztürk", "birth_date": "2001-11-03", "street": "Oelmuehlenweg", "house_number": "7", "postcode": "44137", "city": "Dortmund"},
    {"family_name": "Weiß", "birth_date": "1966-06-06"},
    {"given_name": "Ute", "family_name": "Weiss", "birth_name": "Weiß", "city": "Berlin"},
    {"given_name": "Karl-Heinz", "family_name": "Schulze", "street": "Bahnhofstraße", "house_number": "3", "postcode": "10115", "city": "Berlin", "ids": {"bg": "2"}},
    {"given_name": "Karl Heinz", "family_name": "Schultze", "birth_date": "1948-02-29", "street": "Bahnhofstr", "house_number": "3", "postcode": "10115", "city": "Berlin", "ids": {"bg": "3"}},
    {"given_name": "Schulze", "family_name": "Karl", "birth_date": "1948-02-29", "street": "Bahnhofplatz", "house_number": "30", "postcode": "10117", "city": "Berlin-Mitte"},
    {},
)


def _probe_records() -> list[PersonRecord]:
    return [
        PersonRecord(record_id=f"probe{i}", ids=dict(d.get("ids") or {}), **{k: v for k, v in d.items() if k != "ids"})  # type: ignore[arg-type]
        for i, d in enumerate(_PROBES)
    ]


@lru_cache(maxsize=1)
def version() -> str:
    """Fingerprint of the normaliser: a hash of the forms of the probe records."""
    _, forms = normal_forms(_probe_records())
    return "n" + hashlib.sha1(f"{_FORMAT}{forms!r}".encode("utf-8")).hexdigest()[:8]


# -- comparison --------------------------------------------------------------------------------
def _f32_at_least(threshold: float) -> float:
    """compare.py compares float32 similarities with the threshold, in float32 (numpy casts the
    Python float to the array's dtype): the smallest float64 ``x`` with
    ``float32(x) >= float32(threshold)``, so that the same test runs on plain floats."""
    f = np.float32(threshold)
    prev = np.nextafter(f, np.float32(-np.inf))
    mid = (float(prev) + float(f)) / 2.0  # exact in float64; above it rounds to f
    odd = int(np.frombuffer(np.float32(f).tobytes(), dtype=np.uint32)[0]) & 1
    return float(np.nextafter(mid, np.inf)) if odd else mid  # a tie rounds to the even one


@lru_cache(maxsize=None)
def _thresholds(high: float, low: float, street: float, city: float) -> tuple[float, float, float, float]:
    return _f32_at_least(high), _f32_at_least(low), _f32_at_least(street), _f32_at_least(city)


def _tokens(w: str) -> list[str]:
    """The wrapped tokens of a wrapped list, each searchable in another wrapped list."""
    return [_TOK + t + _TOK for t in w.strip(_TOK).split(_TOK)] if w else []


def levels(q: Row, cands: Sequence[Row]) -> list[tuple[int, int, int, int, int]]:
    """Comparison levels of ``q`` against each candidate (decoded forms); the same numbers as
    :func:`hub.dedup.compare.compare_pairs` (columns :data:`hub.dedup.compare.CONCEPTS`)."""
    return [lv for _, lv, _ in _compare(q, cands, None, 0.0)]


class Weights:
    """The model's weight of every level pattern, and for every (birth date, address, ids)
    levels the best weight any name levels could add to them (to skip comparing the names when
    even that is too little). Both come from FSModel.weights itself: exact, whatever it computes."""

    def __init__(self, weights: Callable[[np.ndarray], np.ndarray]) -> None:
        dims = [len(compare.LEVELS[c]) for c in compare.CONCEPTS]
        grid = np.stack(np.meshgrid(*[np.arange(k) for k in dims], indexing="ij"), axis=-1).reshape(-1, len(dims))
        w = np.asarray(weights(grid.astype(np.int8)), dtype=np.float64).reshape(dims)
        self.dims = dims
        self.exact = w.ravel().tolist()  # index (((g*F + f)*D + d)*A + a)*I + i
        self.bound = w.max(axis=(0, 1)).ravel().tolist()  # index (d*A + a)*I + i


def scores(q: Row, cands: Sequence[Row], weights: Weights, at: float) -> list[tuple[int, tuple[int, int, int, int, int], float]]:
    """(position, levels, weight) of the candidates whose weight is at least ``at``."""
    return _compare(q, cands, weights, at)


def _compare(q: Row, cands: Sequence[Row], weights: Weights | None, at: float) -> list[tuple[int, tuple[int, int, int, int, int], float]]:
    """Candidates share names, streets and cities (they share a blocking key), so each string
    similarity is computed once per distinct candidate value. With ``weights``, a candidate is
    dropped as soon as its birth date, address and ids leave it short of ``at`` whatever its
    names (compared last: they cost the most)."""
    if weights is not None:
        _, F, D, A, I = weights.dims  # noqa: N806, E741
        exact, bound = weights.exact, weights.bound
        DAI, AI = D * A * I, A * I  # noqa: N806
    jw = JaroWinkler.normalized_similarity
    high, low, street_at, city_at = _thresholds(compare.NAME_JW_HIGH, compare.NAME_JW_LOW, compare.STREET_JW, compare.CITY_JW)
    _, qg, qgt, qgt3, qf, qft, qft3, qd, qs, qh, qp, qc, qids = q
    qgt, qgt3, qft, qft3 = _tokens(qgt), _tokens(qgt3), _tokens(qft), _tokens(qft3)
    qids_d = dict(json.loads(qids)) if qids else None
    qy, qmd, qdm = qd[:4], qd[4:6], qd[6:8]
    # per distinct candidate value: the fuzzy level of a name against the query's given (g)
    # and family (f) name, whether a street / city is close enough
    fuzzy_g: dict[str, int] = {}
    fuzzy_f: dict[str, int] = {}
    street_near: dict[str, bool] = {}
    city_near: dict[str, bool] = {}
    out: list[tuple[int, tuple[int, int, int, int, int], float]] = []
    append = out.append
    for k, c in enumerate(cands):
        _, cg, cgt, cgt3, cf, cft, cft3, cd, cs, ch, cp, cc, cids = c
        # birth date
        if not qd or not cd:
            d = 0
        elif qd == cd:
            d = 1
        elif qy == cd[:4] and qmd == cd[6:8] and qdm == cd[4:6]:
            d = 2
        else:
            diff = [k for k in range(8) if qd[k] != cd[k]]
            if len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and qd[diff[0]] == cd[diff[1]] and qd[diff[1]] == cd[diff[0]]):
                d = 3
            else:
                d = 4
        # address: one concept
        if not ((qs and cs) or (qp and cp) or (qc and cc)):
            a = 0
        else:
            if qs and cs:
                street_ok = street_near.get(cs)
                if street_ok is None:
                    street_ok = street_near[cs] = qs == cs or jw(qs, cs) >= street_at
            else:
                street_ok = False
            house_eq = qh and qh == ch
            pc_eq = qp and qp == cp
            if street_ok and house_eq:
                a = 1 if pc_eq else 2
            elif house_eq and pc_eq:
                a = 3
            else:
                if pc_eq:
                    area = True
                elif qc and cc:
                    area = city_near.get(cc)
                    if area is None:
                        area = city_near[cc] = qc == cc or jw(qc, cc) >= city_at
                else:
                    area = False
                a = (4 if street_ok else 5) if area else 6
        # ids, within a scheme
        i = 0
        if qids_d and cids:
            common = [v == qids_d[s] for s, v in json.loads(cids) if s in qids_d]
            if common:
                i = 1 if all(common) else 2
        if weights is not None and bound[d * AI + a * I + i] < at:
            continue
        # given name, family name: missing / exact / shared token / fuzzy high / fuzzy low / different
        if not qg or not cg:
            g = 0
        elif qg == cg:
            g = 1
        elif any(x in cgt for x in qgt):
            g = 2
        else:
            g = fuzzy_g.get(cg)
            if g is None:
                x = jw(qg, cg)
                g = fuzzy_g[cg] = 3 if x >= high else (4 if x >= low else 5)
        if not qf or not cf:
            f = 0
        elif qf == cf:
            f = 1
        elif any(x in cft for x in qft):
            f = 2
        else:
            f = fuzzy_f.get(cf)
            if f is None:
                x = jw(qf, cf)
                f = fuzzy_f[cf] = 3 if x >= high else (4 if x >= low else 5)
        if (g >= 3 or f >= 3) and g and f:
            # given and family name typed into each other's field
            if qg == cf:
                gx = 1
            elif any(x in cft3 for x in qgt3):
                gx = 2
            else:
                gx = fuzzy_g.get(cf)
                if gx is None:
                    x = jw(qg, cf)
                    gx = fuzzy_g[cf] = 3 if x >= high else (4 if x >= low else 5)
            if qf == cg:
                fx = 1
            elif any(x in cgt3 for x in qft3):
                fx = 2
            else:
                fx = fuzzy_f.get(cg)
                if fx is None:
                    x = jw(qf, cg)
                    fx = fuzzy_f[cg] = 3 if x >= high else (4 if x >= low else 5)
            if (gx <= 3 or fx <= 3) and gx + fx < g + f:
                g, f = gx, fx
        if weights is None:
            append((k, (g, f, d, a, i), 0.0))
        else:
            w = exact[(g * F + f) * DAI + d * AI + a * I + i]
            if w >= at:
                append((k, (g, f, d, a, i), w))
    return out


def self_check() -> str | None:
    """None if :func:`levels` agrees with compare.compare_pairs on every probe pair (in both
    directions), else a description of the first disagreement."""
    from hub.dedup.compare import CONCEPTS, compare_pairs

    records = _probe_records()
    t, forms = normal_forms(records)
    n = len(records)
    ia = np.repeat(np.arange(n), n)
    ib = np.tile(np.arange(n), n)
    want = compare_pairs(t, ia, t, ib)
    if want.shape[1] != 5 or tuple(CONCEPTS) != ("given_name", "family_name", "birth_date", "address", "ids"):
        return f"compare.py has other concepts: {CONCEPTS}"
    rows = [row(f) for f in forms]
    for a in range(n):
        got = levels(rows[a], rows)
        for b in range(n):
            if tuple(int(x) for x in want[a * n + b]) != got[b]:
                return f"{records[a]} vs {records[b]}: compare_pairs {want[a * n + b].tolist()}, fastcompare {list(got[b])}"
    return None
