"""Person records as the linkage engine sees them.

:class:`PersonRecord` is the input: what a Fachverfahren, a CSV file or the master person index
knows about one person, unnormalised. :class:`RecordTable` is the same data normalised once and
stored column-wise (numpy arrays), because every later step — blocking, pair comparison, EM —
works on thousands to millions of rows at a time and must not normalise or look up strings per
pair. A table can grow (:meth:`RecordTable.extend`), which is what the incremental index uses.

All tables that are compared with each other must share one :class:`Vocabulary`: equality of
names, streets and postcodes is tested on the integer codes it hands out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Iterable, Mapping, Sequence

import numpy as np

from hub.dedup.normalise import (
    date_key,
    house_number_key,
    match_key,
    postcode_key,
    split_name,
    split_street_house_number,
    street_key,
)
from hub.dedup.phonetic import cologne

__all__ = ["PersonRecord", "Vocabulary", "RecordTable", "UNSEEN", "GIVEN_TOKENS", "FAMILY_TOKENS"]

GIVEN_TOKENS = 3  # given-name words kept for token comparison ("Anna Maria Luise")
FAMILY_TOKENS = 5  # family-name words + birth-name words kept ("Müller-Lüdenscheidt", geb. "Schmidt")


@dataclass(slots=True)
class PersonRecord:
    """One person as one source system knows them.

    ``birth_name`` (*Geburtsname*) is kept apart from ``family_name`` because it is the only
    name that does not change at marriage: a person who is ``Schmidt`` at the Jobcenter and
    ``Müller`` at a provider that still has the maiden name is linked through it.
    ``ids`` maps an identifier scheme (``"kundennummer"``, ``"bg_nummer"``, a provider's local
    id scheme) to the value; values are only ever compared within the same scheme.
    """

    record_id: str
    given_name: str | None = None
    family_name: str | None = None
    birth_name: str | None = None
    birth_date: str | date | None = None
    street: str | None = None
    house_number: str | None = None
    postcode: str | None = None
    city: str | None = None
    ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, record_id: str, data: Mapping[str, object], id_schemes: Iterable[str] = ()) -> "PersonRecord":
        """Build a record from a dict whose keys are field names; keys listed in ``id_schemes``
        (or prefixed ``id:``) become identifiers. Empty strings count as missing."""

        def get(name: str) -> str | None:
            v = data.get(name)
            if v is None:
                return None
            s = str(v).strip()
            return s or None

        ids: dict[str, str] = {}
        for k, v in data.items():
            scheme = k[3:] if k.startswith("id:") else (k if k in id_schemes else None)
            if scheme and v is not None and str(v).strip():
                ids[scheme] = str(v).strip()
        return cls(
            record_id=str(record_id),
            given_name=get("given_name"),
            family_name=get("family_name"),
            birth_name=get("birth_name"),
            birth_date=get("birth_date"),
            street=get("street"),
            house_number=get("house_number"),
            postcode=get("postcode"),
            city=get("city"),
            ids=ids,
        )


UNSEEN = 2_000_000_000  # code of a query string the vocabulary has never seen: equals nothing stored


class Vocabulary:
    """Maps normalised strings to dense integer codes; ``""`` is always ``-1`` (missing)."""

    __slots__ = ("_codes", "_values")

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._values: list[str] = []

    def code(self, value: str, add: bool = True) -> int:
        """The code of ``value``; with ``add=False`` an unknown value gets :data:`UNSEEN`
        instead of a new code, so that looking up queries does not grow the vocabulary."""
        if not value:
            return -1
        c = self._codes.get(value)
        if c is None:
            if not add:
                return UNSEEN
            c = len(self._values)
            self._codes[value] = c
            self._values.append(value)
        return c

    def value(self, code: int) -> str:
        return self._values[code] if code >= 0 else ""

    def __len__(self) -> int:
        return len(self._values)


# Column name -> (dtype, trailing shape). Object columns hold Python strings / tuples.
_COLUMNS: dict[str, tuple[object, tuple[int, ...]]] = {
    "given": (object, ()),  # match key of the whole given name
    "given_code": (np.int32, ()),
    "given_tok": (np.int32, (GIVEN_TOKENS,)),
    "family": (object, ()),  # match key of the family name without particles
    "family_code": (np.int32, ()),
    "birth_code": (np.int32, ()),
    "family_tok": (np.int32, (FAMILY_TOKENS,)),  # family tokens then birth-name tokens
    "dob": (object, ()),  # "YYYYMMDD" or ""
    "dob_digits": (np.int8, (8,)),
    "street": (object, ()),
    "street_code": (np.int32, ()),
    "house_code": (np.int32, ()),
    "postcode": (object, ()),
    "postcode_code": (np.int32, ()),
    "city": (object, ()),
    "city_code": (np.int32, ()),
    # blocking material
    "family_phon": (object, ()),  # tuple of Kölner codes of family and birth-name tokens
    "given_phon": (object, ()),  # Kölner code of the first given name
    "ids": (object, ()),  # dict scheme -> value code
    "has_ids": (np.bool_, ()),
    "id_keys": (object, ()),  # tuple of "scheme=value" strings, for blocking
}


def _pad(codes: list[int], width: int) -> list[int]:
    return (codes + [-1] * width)[:width]


class RecordTable:
    """Normalised records, column-wise, growable.

    ``record_ids[i]`` is the caller's id of row ``i``. Columns are numpy arrays of length
    ``len(table)`` (views onto a buffer that doubles when full, so appending one record at a time
    stays amortised O(1)).
    """

    def __init__(self, vocab: Vocabulary, records: Sequence[PersonRecord] = (), *, frozen: bool = False) -> None:
        self.vocab = vocab
        self.frozen = frozen  # a query table: do not add its strings to the vocabulary
        self._n = 0
        self._cap = 0
        self._buf: dict[str, np.ndarray] = {}
        self.record_ids: list[str] = []
        self._grow(max(1, len(records)))
        if records:
            self.extend(records)

    # -- storage -----------------------------------------------------------------
    def _grow(self, need: int) -> None:
        cap = max(need, self._cap * 2)
        new: dict[str, np.ndarray] = {}
        for name, (dtype, shape) in _COLUMNS.items():
            arr = np.empty((cap, *shape), dtype=dtype)
            if name in self._buf:
                arr[: self._n] = self._buf[name][: self._n]
            new[name] = arr
        self._buf = new
        self._cap = cap

    def __len__(self) -> int:
        return self._n

    def __getattr__(self, name: str) -> np.ndarray:
        buf = self.__dict__.get("_buf")
        if buf is not None and name in buf:
            return buf[name][: self.__dict__["_n"]]
        raise AttributeError(name)

    def extend(self, records: Iterable[PersonRecord]) -> range:
        """Normalise and append ``records``; return the range of their row numbers."""
        rows = [self._normalise(r) for r in records]
        start = self._n
        if start + len(rows) > self._cap:
            self._grow(start + len(rows))
        if rows:
            for name in _COLUMNS:
                col = self._buf[name]
                values = [row[name] for row in rows]
                if col.dtype == object:
                    # element by element: numpy would turn a list of equal-length tuples into 2-D
                    for k, value in enumerate(values, start):
                        col[k] = value
                else:
                    col[start : start + len(rows)] = values
            self._n += len(rows)
        return range(start, self._n)

    def append(self, record: PersonRecord) -> int:
        return self.extend([record]).start

    # -- normalisation -------------------------------------------------------------
    def _normalise(self, r: PersonRecord) -> dict[str, object]:
        add = not self.frozen
        vocab = self.vocab

        def v(value: str) -> int:
            return vocab.code(value, add)

        self.record_ids.append(str(r.record_id))
        given = split_name(r.given_name)
        family = split_name(r.family_name)
        birth = split_name(r.birth_name)
        if birth.key == family.key:
            birth = split_name(None)  # "geb. Müller" on a Müller says nothing new
        dob = date_key(r.birth_date)
        street_raw, house_raw = r.street, r.house_number
        if street_raw and not house_raw:
            street_raw, house_raw = split_street_house_number(street_raw)
        street = street_key(street_raw)
        postcode = postcode_key(r.postcode)
        city = match_key(r.city)
        fam_tokens = list(family.tokens[:3]) + list(birth.tokens[:2])
        ids = {s: v(f"{s}\x1f{val.strip()}") for s, val in r.ids.items() if val and val.strip()}
        return {
            "given": given.key,
            "given_code": v(given.key),
            "given_tok": _pad([v(t) for t in given.tokens], GIVEN_TOKENS),
            "family": family.key,
            "family_code": v(family.key),
            "birth_code": v(birth.key),
            "family_tok": _pad([v(t) for t in fam_tokens], FAMILY_TOKENS),
            "dob": dob,
            "dob_digits": [int(c) for c in dob] if dob else [-1] * 8,
            "street": street,
            "street_code": v(street),
            "house_code": v(house_number_key(house_raw)),
            "postcode": postcode,
            "postcode_code": v(postcode),
            "city": city,
            "city_code": v(city),
            "family_phon": tuple(dict.fromkeys(c for c in (cologne(t) for t in fam_tokens) if c)),
            "given_phon": cologne(given.tokens[0]) if given.tokens else "",
            "ids": ids,
            "has_ids": bool(ids),
            "id_keys": tuple(f"{s}={val.strip()}" for s, val in r.ids.items() if val and val.strip()),
        }
